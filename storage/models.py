"""Tables. One SQLModel class per stored thing; no behaviour beyond the columns."""

from __future__ import annotations

from datetime import date as calendar_date
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _dt(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


def _empty_list() -> list[Any]:
    return []


def _json() -> Any:
    # The column default matters for Core INSERTs (repositories' INSERT … ON CONFLICT), which skip
    # the model's default_factory.
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=_empty_list))


def _empty_dict() -> dict[str, Any]:
    return {}


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False, default=_empty_dict))


class Group(SQLModel, table=True):
    __tablename__ = "groups"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    platform_id: str | None = Field(default=None, index=True)
    account: str = ""
    county: str = ""
    township: str = ""
    village: str = ""
    quiet: bool = False
    configured: bool = True
    """False for a group the bot was found in but that the configuration does not know (unassigned)."""


class Member(SQLModel, table=True):
    __tablename__ = "members"
    id: int | None = Field(default=None, primary_key=True)
    platform_id: str = Field(unique=True, index=True)
    name: str = Field(index=True)
    role: str = "villager"
    county: str = ""
    township: str = ""
    village: str = ""
    group_name: str = ""
    categories: list[str] = _json()
    is_head: bool = False
    on_roster: bool = False


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("account", "platform_id", name="uq_messages_account_platform_id"),
        Index("ix_messages_group_at", "group_name", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account: str
    platform_id: str
    at: datetime = _dt(index=True, nullable=False)
    group_name: str | None = None
    private: bool = False
    sender_platform_id: str = ""
    sender_name: str = ""
    role: str = "villager"
    kind: str = "text"
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    media_path: str | None = None
    raw: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    unassigned: bool = False
    county: str = ""
    township: str = ""
    village: str = ""
    kept_raw: bool = False
    """True while the message is stored as it came because the pipeline failed on it: not classified,
    flagged or handed to the workflow until staff re-run it (`villagewatch reclassify --raw`, dashboard)."""


class Classification(SQLModel, table=True):
    __tablename__ = "classifications"
    message_id: int = Field(primary_key=True, foreign_key="messages.id")
    labels: list[str] = _json()
    category: str | None = None
    severity: str | None = None
    matches: list[dict[str, Any]] = _json()
    shadow_matches: list[dict[str, Any]] = _json()
    ruleset_version: str = ""
    review: list[str] = _json()
    model_version: str | None = None


class Flag(SQLModel, table=True):
    __tablename__ = "flags"
    __table_args__ = (Index("ix_flags_scope_at", "county", "township", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", unique=True)
    at: datetime = _dt(index=True, nullable=False)
    group_name: str | None = None
    sender_name: str = ""
    role: str = "villager"
    county: str = ""
    township: str = ""
    village: str = ""
    labels: list[str] = _json()
    severity: str = "normal"
    rules: list[str] = _json()
    keywords: list[str] = _json()
    verdict: str | None = None
    confidential: bool = False
    tier: str = "confirmed"  # "confirmed" (确认) or "review" (请核查: below the precise threshold)
    reasons: dict[str, list[str]] = _json_dict()
    from_image: bool = False
    """The flagged text was recognised in the message's image (OCR), not typed."""


class ImageText(SQLModel, table=True):
    """The text read from an image message (OCR): written ``pending`` with the message, in its transaction,
    so an image accepted but not yet read is read after a restart; ``done`` or ``failed`` in the same
    transaction that classifies the text, so it is classified exactly once."""

    __tablename__ = "image_texts"
    __table_args__ = (Index("ix_image_texts_pending", "status", "account"),)
    message_id: int = Field(primary_key=True, foreign_key="messages.id")
    account: str = ""
    status: str = "pending"  # pending | done | failed
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    error: str | None = None
    """Why a failed image could not be read: not_image, corrupt, too_large, too_many_pixels, timeout, …"""
    labels: list[str] = _json()
    """What the recognised text was classified as (shown with it)."""
    created_at: datetime = _dt(nullable=False)
    read_at: datetime | None = _dt()


class Banquet(SQLModel, table=True):
    """The details read from a banquet-flagged message (classifiers.banquet): one row per flagged message.

    Visibility follows the message's flag (join on ``message_id``); unknown details are NULL.
    """

    __tablename__ = "banquets"
    message_id: int = Field(primary_key=True, foreign_key="messages.id")
    date: calendar_date | None = Field(default=None, index=True)
    calendar: str | None = None
    date_text: str | None = None
    approximate: bool = False
    lunar: str | None = None
    time: str | None = None
    period: str | None = None
    place: str | None = None
    host: str | None = None
    relation: str | None = None
    event: str | None = None
    scale: str | None = None
    tables: int | None = None
    people: int | None = None


class VoiceNote(SQLModel, table=True):
    """A voice message's audio as the dashboard plays it, and what staff (or a speech service) heard in it.

    ``status``: ``ok`` (decoded; ``audio_path`` is the WAV in the media store), ``undecodable`` (kept as it
    came, ``error`` says why) or ``missing`` (the file never arrived). A transcript replaces the message's
    text, so it is classified, flagged and ticketed like typed text; ``transcript_source`` is ``staff`` or
    ``machine``.
    """

    __tablename__ = "voice_notes"
    message_id: int = Field(primary_key=True, foreign_key="messages.id")
    status: str = "ok"
    duration_ms: int | None = None
    audio_path: str | None = None
    error: str | None = None
    transcript: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    transcript_source: str | None = None
    transcript_by: str | None = None
    transcript_at: datetime | None = _dt()


class MessageCard(SQLModel, table=True):
    """What a shared link, mini-program or file shows on a page: title, description and host, or the file's
    name and size. The address itself is kept only as its host (a page never links to it)."""

    __tablename__ = "message_cards"
    message_id: int = Field(primary_key=True, foreign_key="messages.id")
    kind: str = "link"
    title: str = ""
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    host: str = ""
    file_name: str = ""
    size_bytes: int | None = None


class FlagReview(SQLModel, table=True):
    __tablename__ = "flag_reviews"
    id: int | None = Field(default=None, primary_key=True)
    flag_id: int = Field(foreign_key="flags.id", index=True)
    at: datetime = _dt(nullable=False)
    username: str
    verdict: str
    note: str = ""


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_status_deadline", "status", "deadline"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = "demand"
    category: str | None = None
    account: str = ""
    group_name: str | None = None
    county: str = ""
    township: str = ""
    village: str = ""
    assignee_name: str | None = None
    assignee_platform_id: str | None = None
    level: str = "village"
    status: str = Field(default="open", index=True)
    """open | accepted | resolved | closed (contracts.md); ``stage`` says which sub-state."""
    stage: str = Field(default="new", index=True)
    """new | in_progress | extension_requested | awaiting_photo | awaiting_rating | rated | no_answer"""
    overdue: bool = False
    confidential: bool = False
    priority: int = 0
    deadline: datetime | None = _dt()
    opened_at: datetime = _dt(index=True, nullable=False)
    first_response_at: datetime | None = _dt()
    resolved_at: datetime | None = _dt()
    closed_at: datetime | None = _dt()
    rating: str | None = None
    rating_requested_at: datetime | None = _dt()
    reminded_for: datetime | None = _dt()
    parent_id: int | None = Field(default=None, foreign_key="tickets.id")
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    norm_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    keywords: list[str] = _json()
    resolution_note: str | None = None
    photo_missing: bool = False
    version: int = 0
    """Bumped on every state change; updates check it so two cadres resolving at once resolve once."""


class TicketReporter(SQLModel, table=True):
    __tablename__ = "ticket_reporters"
    __table_args__ = (UniqueConstraint("ticket_id", "platform_id", name="uq_reporter_ticket_person"),)
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    platform_id: str
    name: str
    message_id: int | None = Field(default=None, foreign_key="messages.id")
    at: datetime = _dt(nullable=False)
    rating: str | None = None
    """This reporter's rating of the current resolution (cleared when the ticket is reopened)."""
    rated_at: datetime | None = _dt()


class TicketEvent(SQLModel, table=True):
    __tablename__ = "ticket_events"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    at: datetime = _dt(nullable=False)
    type: str
    actor: str = ""
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class TicketMessage(SQLModel, table=True):
    """Links every message about a ticket (reports, cadre replies, photos) to it, for the ticket page."""

    __tablename__ = "ticket_messages"
    __table_args__ = (UniqueConstraint("ticket_id", "message_id", name="uq_ticket_message"),)
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    """Indexed (migration 0014): a search hit asks which ticket its message belongs to, and whether a cadre may
    see it."""


class TicketPhoto(SQLModel, table=True):
    __tablename__ = "ticket_photos"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    path: str
    message_id: int | None = Field(default=None, foreign_key="messages.id")
    at: datetime = _dt(nullable=False)
    uploaded_by: str = ""


class Outbox(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "account", "not_before"),)
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True)
    """Derived from what caused the reply, so re-handling the same cause after a crash adds nothing."""
    account: str
    chat_id: str
    chat_name: str
    is_group: bool = True
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    image_path: str | None = None
    mention_ids: list[str] = _json()
    mention_names: list[str] = _json()
    created_at: datetime = _dt(nullable=False)
    not_before: datetime = _dt(nullable=False)
    status: str = "pending"
    attempts: int = 0
    sent_at: datetime | None = _dt()
    lease_until: datetime | None = _dt()
    last_error: str | None = None
    platform_message_id: str | None = None


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_users"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True)
    password_hash: str
    display_name: str = ""
    role: str = "township_staff"
    """admin | county_staff | township_staff | cadre"""
    county: str = ""
    township: str = ""
    village: str = ""
    member_name: str | None = None
    active: bool = True
    must_change_password: bool = False
    """The password was generated (the first admin, a reset): the user must choose their own at next login."""
    created_at: datetime = _dt(nullable=False)
    patrolled_to_flag_id: int = 0
    patrolled_at: datetime | None = _dt()


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _dt(index=True, nullable=False)
    username: str
    action: str
    target: str = ""
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class Broadcast(SQLModel, table=True):
    __tablename__ = "broadcasts"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _dt(nullable=False)
    username: str
    kind: str = "notice"
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    groups: list[str] = _json()
    outbox_ids: list[int] = _json()
    send_at: datetime | None = _dt()
    """When it goes: None (or the moment it was queued) for at once; later for a scheduled broadcast, whose
    outbox rows wait until then (their not_before), so it is sent once even across a crash."""
    audience: str = ""
    """Who it was addressed to, as staff chose it, in Chinese (e.g. "城关镇全部群")."""
    members: int | None = None
    """Members of the chosen groups known to the roster when it was confirmed."""
    cancelled_at: datetime | None = _dt()
    cancelled_by: str | None = None


class JobRun(SQLModel, table=True):
    """One row per scheduled job run; the unique key makes a job that runs twice act once.

    A claim is a lease: until ``done_at`` is set, ``owner`` holds the run until ``lease_until``; a run whose
    process died is taken over when the lease has expired, or at once by its owner restarting.
    """

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "run_key", name="uq_job_run"),)
    id: int | None = Field(default=None, primary_key=True)
    job: str
    run_key: str
    at: datetime = _dt(nullable=False)
    owner: str | None = None
    lease_until: datetime | None = _dt()
    done_at: datetime | None = _dt()


class Setting(SQLModel, table=True):
    """Small persistent state, e.g. the replay clock, so a second replay continues the first."""

    __tablename__ = "settings"
    key: str = Field(primary_key=True)
    value: str = ""


class DashboardSession(SQLModel, table=True):
    """A dashboard login. ``id`` is the SHA-256 of the cookie token, so a leaked table grants nothing."""

    __tablename__ = "dashboard_sessions"
    id: str = Field(primary_key=True)
    username: str
    csrf: str
    created_at: datetime = _dt(nullable=False)
    expires_at: datetime = _dt(index=True, nullable=False)


class LabelFeedback(SQLModel, table=True):
    """What staff taught the classifier about one message: the labels and category it should have had.

    Written by a correction on a flag (per label: the banquet is a false alarm, the demand stands) and by
    marking a missed message; the newest row per message is a training example for `villagewatch train`.
    """

    __tablename__ = "label_feedback"
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    at: datetime = _dt(nullable=False)
    username: str
    labels: list[str] = _json()
    category: str | None = None
    source: str = "correction"  # "correction" (of a flag) or "missed" (a message the classifier missed)
    note: str = ""


class RuleVersion(SQLModel, table=True):
    """One change of one rule file made from the dashboard (an edit, a new rule, a rollback).

    ``content`` is the whole file after the change and ``previous`` the whole file before it, so any version
    can be restored and every process sharing the database can bring its rule files to the newest one.
    ``file`` is the path inside the rules folder (``labels/banquet.toml``).
    """

    __tablename__ = "rule_versions"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _dt(nullable=False)
    username: str
    action: str  # "edit", "add" (a new rule) or "rollback"
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    rule_id: str = ""
    file: str = Field(index=True)
    content: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    previous: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    ruleset_version: str = ""
