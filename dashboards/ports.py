"""What the dashboard needs from the rest of the service, declared here and implemented in ``bot/``.

The dashboard never sends to WeChat or changes a ticket's state itself: it asks through these
interfaces, which the entry point wires to the ticket workflow, the outbox and the classifier.
Every method receives the acting staff member's username as ``actor`` so the workflow can record it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


class ActionRefused(Exception):
    """The workflow refused a staff action; the message (Simplified Chinese) is shown to the user."""


class TicketActions(Protocol):
    """Staff actions on a ticket; each records a TicketEvent and may queue outbox messages."""

    async def transfer(self, ticket_id: int, *, to_member: str, actor: str) -> None:
        """Reassign to another cadre (a member's name)."""

    async def escalate(self, ticket_id: int, *, actor: str, reason: str) -> None:
        """Raise one level: village → township → county."""

    async def approve_extension(self, ticket_id: int, *, actor: str, working_days: int) -> None:
        """Move the deadline by ``working_days`` working days."""

    async def add_note(self, ticket_id: int, *, actor: str, text: str) -> None:
        """An internal note in the ticket's history (never posted to the group)."""

    async def available(self, ticket_id: int) -> list[str]:
        """The actions the ticket's state allows staff now (the page offers only these): names of
        accept, progress, resolve, attach_photo, waive_photo, extend, escalate, transfer, close, reopen,
        note, split, merge."""
        ...

    async def accept(self, ticket_id: int, *, actor: str) -> None:
        """受理."""

    async def progress(self, ticket_id: int, *, actor: str, text: str) -> None:
        """A progress note, posted where the reporters are."""

    async def resolve(
        self, ticket_id: int, *, actor: str, note: str, image: bytes | None = None, filename: str = ""
    ) -> None:
        """办结, with a photo (announced with it) or without (the ticket waits for its photo, 待补照片)."""

    async def waive_photo(self, ticket_id: int, *, actor: str, reason: str) -> None:
        """Announce a resolution waiting for its photo without one."""

    async def upload_photo(self, ticket_id: int, *, actor: str, image: bytes, filename: str) -> None:
        """Attach a photo; it never resolves the ticket (a ticket waiting for its photo is announced)."""

    async def close(self, ticket_id: int, *, actor: str, text: str) -> None:
        """Archive a resolution still waiting for ratings."""

    async def reopen(self, ticket_id: int, *, actor: str, reason: str) -> None:
        """Back to 办理中 at the same level with a new deadline."""

    async def split(self, ticket_id: int, *, reporter: str, actor: str) -> int:
        """Split one reporter's report (name) off into its own ticket; returns the new ticket's number."""
        ...

    async def merge(self, ticket_id: int, *, into: int, actor: str) -> None:
        """Ticket ``ticket_id`` is the same problem as ``into``: its reporters join it, it closes as merged."""

    async def open_from_message(self, message_id: int, *, kind: str, category: str | None, actor: str) -> int:
        """立案: open a ticket (``demand``, ``consult`` or ``clue``) from a stored message the bot did not turn
        into one, with its sender as the reporter, acknowledged as the bot acknowledges a report (a clue or a
        private message: confidential, never in a group). Returns the new ticket's number; refused (Chinese)
        when the message already belongs to a ticket."""
        ...


class Broadcaster(Protocol):
    def preview(self, *, kind: str, text: str) -> str:
        """The message exactly as a group will see it (the bot's template around ``text``)."""
        ...

    async def broadcast(
        self,
        *,
        actor: str,
        kind: str,
        text: str,
        groups: list[str],
        send_at: datetime | None = None,
        audience: str = "",
        members: int | None = None,
    ) -> int:
        """Queue ``text`` to each group through the paced outbox and record a Broadcast row.

        ``kind`` is ``notice`` (any groups) or ``clarification`` (澄清, exactly one group). ``send_at`` (in
        the future) schedules it: the outbox rows wait until then. ``audience`` (Chinese) and ``members``
        are what the confirmation named. Returns the Broadcast id.
        """
        ...

    async def cancel(self, broadcast_id: int, *, actor: str) -> int:
        """Cancel a scheduled broadcast before it goes; returns how many groups' messages were withdrawn.

        Raises ActionRefused when it is not scheduled, already cancelled or its time has come.
        """
        ...


class RuleBench(Protocol):
    def classify(self, text: str, role: str | None) -> dict[str, Any]:
        """The taxonomy contract dict: labels, category, severity, matches [{rule, keywords}]."""
        ...

    async def dry_run(
        self, *, days: int, county: str | None, township: str | None, village: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Re-classify stored messages of the last ``days`` days in scope with the current rules.

        Returns up to ``limit`` messages whose outcome would change, each
        ``{"message_id", "at", "group", "sender", "text", "old_labels", "new_labels", "new_matches"}``.
        """
        ...

    def status(self) -> dict[str, Any]:
        """``{"version": str, "reload_error": str | None}``: the rules in use, and why the last edit of the
        rule files was not taken (None when it was)."""
        ...

    def rules(self) -> list[dict[str, Any]]:
        """Every rule: ``{"id", "label", "text", "shadow": bool, "file"}`` (``text`` as staff wrote it)."""
        ...

    async def set_shadow(self, rule_id: str, shadow: bool, *, actor: str) -> None:
        """Switch a rule into or out of shadow mode (fires into shadow_matches only)."""


@dataclass(frozen=True)
class RuleEdit:
    """A change from the rule editor, as staff typed it; the bot checks it with the rule loader's own
    validation (numbers are parsed there, so a bad weight is refused with the field named)."""

    rule_id: str = ""
    """The rule changed; empty for a new rule."""
    target: str = ""
    """A new rule's label, or ``category:<name>`` (ignored for an existing rule)."""
    description: str = ""
    """The Chinese description (``note_zh``)."""
    any: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    weight: str = ""
    window: str = ""
    """Empty: no proximity limit."""
    shadow: bool = False


@dataclass(frozen=True)
class DryRunChange:
    message_id: int
    at: datetime
    group: str
    sender: str
    text: str
    old_labels: tuple[str, ...]
    new_labels: tuple[str, ...]
    gained: bool
    """True: the edit makes the message flag (a label or the rule's match it did not have); False: it stops."""


@dataclass(frozen=True)
class DryRunResult:
    days: int
    scanned: int
    gained: int
    lost: int
    page: int
    pages: int
    changes: tuple[DryRunChange, ...]
    """This page's changes, newest message first."""


class RuleEditor(Protocol):
    """Editing rule files from the dashboard: cards, a dry run before saving, versions and rollback.

    Every refusal is an ActionRefused with a Chinese message naming the field. A saved edit is written to the
    same TOML file (comments kept), recorded as a version, and the running rules are swapped at once; an edit
    the loader refuses never replaces the rules in use.
    """

    def cards(self) -> list[dict[str, Any]]:
        """Every rule: ``{"id", "label", "description", "any", "all", "none", "weight", "window", "shadow",
        "severity", "file"}`` (terms as written)."""
        ...

    async def dry_run(
        self,
        edit: RuleEdit,
        *,
        days: int,
        county: str | None,
        township: str | None,
        village: str | None,
        page: int,
        per_page: int,
    ) -> DryRunResult:
        """The stored messages of the last ``days`` days in scope that the edit would newly flag or stop flagging."""
        ...

    async def save(self, edit: RuleEdit, *, actor: str, reason: str) -> str:
        """Write, swap in and record the edit; returns the rule's id (a new rule's is made here)."""
        ...

    async def rollback(self, version_id: int, *, actor: str, reason: str) -> None:
        """Bring every rule file back to how it was right after version ``version_id``."""


@dataclass(frozen=True)
class RerunOutcome:
    handled: int
    """Messages now classified, flagged and handed to the ticket workflow."""
    failed: int
    """Messages that failed again and stay kept raw."""
    remaining: int
    """Messages still kept raw after the run."""


@dataclass(frozen=True)
class TranscriptOutcome:
    handled: bool
    """The transcript went through the ticket workflow (its first one): a demand's ticket opened then."""
    labels: tuple[str, ...]
    """What the classifier made of it."""


class Pipeline(Protocol):
    async def rerun_kept_raw(self, *, actor: str) -> RerunOutcome:
        """Run every message kept raw after a failure through the whole inbound pipeline again:
        classification, flags, tickets and the bot's replies, as if each had just arrived."""
        ...

    async def transcribe(self, message_id: int, *, text: str, actor: str) -> TranscriptOutcome:
        """What a staff member heard in a voice message: it becomes the message's text and is classified,
        flagged and ticketed as typed text would be (a second edit opens no second ticket). Raises
        ActionRefused (Chinese) for an empty or too long text or a message that is not a voice message."""
        ...

    async def voice_audio(self, media_path: str | None) -> Path | None:
        """The playable WAV of a stored voice file, decoded on first use and cached on disk; None when the
        file is missing or does not decode."""
        ...


@dataclass(frozen=True)
class ModelStatus:
    mode: str
    """``model`` (the trained model decides) or ``rules_only`` (no usable model file)."""
    version: str | None
    trained_at: datetime | None
    examples: int | None
    error: str | None
    """Why the bot runs on rules alone, or why the last reload was refused."""
    training: bool
    """A retraining is running now."""
    progress: str
    """The running retraining's current step, or the last one's outcome (Simplified Chinese)."""


class ModelTeacher(Protocol):
    """The classifier's trained model as staff see it: its state, and retraining it in the background."""

    def status(self) -> ModelStatus: ...

    async def start_retraining(self, *, actor: str) -> bool:
        """Retrain from the project's labelled data plus staff feedback, in the background; the new model
        is installed only if it is not worse on the set-aside data. False if one is already running."""
        ...


@dataclass(frozen=True)
class RosterRow:
    """One row of an uploaded roster as the bot read it: the person, or why the row cannot be taken."""

    line: int
    name: str = ""
    role: str = ""
    village: str = ""
    township: str = ""
    county: str = ""
    group: str = ""
    categories: tuple[str, ...] = ()
    is_head: bool = False
    platform_id: str = ""
    error: str | None = None
    """Simplified Chinese; a row with an error is never applied."""


class Roster(Protocol):
    """The bot's roster of who is who (villager, party member, cadre, staff), as staff keep it.

    Changes take effect in the running bot at once (its directory cache is dropped) and are written back to
    the configured roster file, so a restart keeps them.
    """

    def preview(self, data: bytes) -> list[RosterRow]:
        """Check an uploaded CSV with the same rules as the roster file at start-up; every row is returned,
        the bad ones with their error (a problem with the whole file is one row with ``line`` 0 or 1)."""
        ...

    async def apply(self, rows: list[RosterRow], *, actor: str) -> int:
        """Add or update these people (rows without an error); returns how many."""
        ...

    async def assign(
        self, platform_id: str, *, role: str, categories: tuple[str, ...], is_head: bool, actor: str
    ) -> None:
        """Give a person the bot met in a group (a villager by default) a role on the roster, in their group's
        village. Raises ActionRefused (Chinese) for an unknown person or role."""

    def export(self, rows: list[RosterRow]) -> str:
        """A roster CSV of ``rows`` that ``preview`` reads back as the same people."""
        ...
