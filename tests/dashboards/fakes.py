"""Recording fakes of the dashboard's ports, and a clock the tests can move."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboards.ports import ActionRefused, ModelStatus, RerunOutcome, TranscriptOutcome


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 9, 10, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class RecordingTicketActions:
    calls: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    refuse: str | None = None
    ops: tuple[str, ...] = (
        "accept",
        "progress",
        "resolve",
        "attach_photo",
        "extend",
        "escalate",
        "transfer",
        "note",
        "split",
        "merge_into",
    )
    """What ``available`` answers: the state machine's ops for an active ticket, by default."""

    def _record(self, name: str, ticket_id: int, **kwargs: Any) -> None:
        if self.refuse:
            raise ActionRefused(self.refuse)
        self.calls.append((name, ticket_id, kwargs))

    async def transfer(self, ticket_id: int, *, to_member: str, actor: str) -> None:
        self._record("transfer", ticket_id, to_member=to_member, actor=actor)

    async def escalate(self, ticket_id: int, *, actor: str, reason: str) -> None:
        self._record("escalate", ticket_id, actor=actor, reason=reason)

    async def approve_extension(self, ticket_id: int, *, actor: str, working_days: int) -> None:
        self._record("approve_extension", ticket_id, actor=actor, working_days=working_days)

    async def add_note(self, ticket_id: int, *, actor: str, text: str) -> None:
        self._record("add_note", ticket_id, actor=actor, text=text)

    async def available(self, ticket_id: int) -> list[str]:
        return list(self.ops)

    async def accept(self, ticket_id: int, *, actor: str) -> None:
        self._record("accept", ticket_id, actor=actor)

    async def progress(self, ticket_id: int, *, actor: str, text: str) -> None:
        self._record("progress", ticket_id, actor=actor, text=text)

    async def resolve(
        self, ticket_id: int, *, actor: str, note: str, image: bytes | None = None, filename: str = ""
    ) -> None:
        self._record("resolve", ticket_id, actor=actor, note=note, size=len(image or b""), filename=filename)

    async def waive_photo(self, ticket_id: int, *, actor: str, reason: str) -> None:
        self._record("waive_photo", ticket_id, actor=actor, reason=reason)

    async def upload_photo(self, ticket_id: int, *, actor: str, image: bytes, filename: str) -> None:
        self._record("upload_photo", ticket_id, actor=actor, size=len(image), filename=filename)

    async def close(self, ticket_id: int, *, actor: str, text: str) -> None:
        self._record("close", ticket_id, actor=actor, text=text)

    async def reopen(self, ticket_id: int, *, actor: str, reason: str) -> None:
        self._record("reopen", ticket_id, actor=actor, reason=reason)

    async def split(self, ticket_id: int, *, reporter: str, actor: str) -> int:
        self._record("split", ticket_id, actor=actor, reporter=reporter)
        return 99

    async def merge(self, ticket_id: int, *, into: int, actor: str) -> None:
        self._record("merge", ticket_id, actor=actor, into=into)

    async def open_from_message(self, message_id: int, *, kind: str, category: str | None, actor: str) -> int:
        self._record("open_from_message", message_id, kind=kind, category=category, actor=actor)
        return 900 + message_id


@dataclass
class RecordingBroadcaster:
    calls: list[dict[str, Any]] = field(default_factory=list)

    cancelled: list[int] = field(default_factory=list)

    def preview(self, *, kind: str, text: str) -> str:
        return f"【{'通知' if kind == 'notice' else '澄清'}】{text}"

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
        call: dict[str, Any] = {"actor": actor, "kind": kind, "text": text, "groups": list(groups)}
        if send_at is not None:
            call["send_at"] = send_at
        self.calls.append(call)
        return len(self.calls)

    async def cancel(self, broadcast_id: int, *, actor: str) -> int:
        self.cancelled.append(broadcast_id)
        return 1


@dataclass
class FakeRuleBench:
    shadow: dict[str, bool] = field(default_factory=lambda: {"banquet.birthday": False, "clue.subsidy": False})
    calls: list[tuple[str, Any]] = field(default_factory=list)

    reload_error: str | None = None

    def status(self) -> dict[str, Any]:
        return {"version": "test", "reload_error": self.reload_error}

    def classify(self, text: str, role: str | None) -> dict[str, Any]:
        self.calls.append(("classify", (text, role)))
        if "寿" in text or "酒" in text:
            return {
                "labels": ["banquet"],
                "category": None,
                "severity": "high",
                "matches": [{"rule": "banquet.birthday", "keywords": ["寿"]}],
            }
        return {"labels": ["chat"], "category": None, "severity": None, "matches": []}

    async def dry_run(
        self, *, days: int, county: str | None, township: str | None, village: str | None, limit: int
    ) -> list[dict[str, Any]]:
        self.calls.append(("dry_run", (days, county, township, village, limit)))
        return [
            {
                "message_id": 1,
                "at": datetime(2026, 9, 9, 1, 0, tzinfo=UTC),
                "group": "石桥村监督服务群",
                "sender": "张三",
                "text": "明天家父八十大寿",
                "old_labels": ["chat"],
                "new_labels": ["banquet"],
                "new_matches": [],
            }
        ]

    def rules(self) -> list[dict[str, Any]]:
        return [
            {
                "id": "banquet.birthday",
                "label": "banquet",
                "text": "寿宴 | 大寿 | 摆酒",
                "shadow": self.shadow["banquet.birthday"],
                "file": "rules/banquet.toml",
            },
            {
                "id": "clue.subsidy",
                "label": "clue",
                "text": "低保 & 三套房",
                "shadow": self.shadow["clue.subsidy"],
                "file": "rules/clue.toml",
            },
        ]

    async def set_shadow(self, rule_id: str, shadow: bool, *, actor: str) -> None:
        self.calls.append(("set_shadow", (rule_id, shadow, actor)))
        self.shadow[rule_id] = shadow


@dataclass
class RecordingPipeline:
    """Records who re-ran the kept-raw messages; ``clear`` (async, returns how many) stands for the run."""

    calls: list[str] = field(default_factory=list)
    clear: Any = None
    transcripts: list[tuple[int, str, str]] = field(default_factory=list)
    audio: Path | None = None
    """What ``voice_audio`` answers for any stored voice file (None: it does not decode)."""

    async def rerun_kept_raw(self, *, actor: str) -> RerunOutcome:
        self.calls.append(actor)
        handled = await self.clear() if self.clear is not None else 0
        return RerunOutcome(handled=handled, failed=0, remaining=0)

    async def transcribe(self, message_id: int, *, text: str, actor: str) -> TranscriptOutcome:
        if not text.strip():
            raise ActionRefused("转写内容不能为空")
        self.transcripts.append((message_id, text, actor))
        return TranscriptOutcome(handled=len(self.transcripts) == 1, labels=("demand",))

    async def voice_audio(self, media_path: str | None) -> Path | None:
        return self.audio if media_path else None


@dataclass
class RecordingModelTeacher:
    """A model that never changes; records who asked to retrain, and refuses a second one while "running"."""

    retrain_calls: list[str] = field(default_factory=list)
    running: bool = False

    def status(self) -> ModelStatus:
        return ModelStatus(
            mode="model",
            version="abc123def456",
            trained_at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
            examples=6727,
            error=None,
            training=self.running,
            progress="交叉验证 / fold 2/5" if self.running else "",
        )

    async def start_retraining(self, *, actor: str) -> bool:
        if self.running:
            return False
        self.retrain_calls.append(actor)
        self.running = True
        return True


def fake_app(session_factory: Any, *, settings: Any = None, clock: Any = None, **ports: Any) -> Any:
    """The dashboard app wired to recording fakes; any port can be given instead (``rule_bench=…``)."""
    from dashboards.app import create_app
    from dashboards.settings import DashboardSettings

    wired: dict[str, Any] = {
        "ticket_actions": RecordingTicketActions(),
        "broadcaster": RecordingBroadcaster(),
        "rule_bench": FakeRuleBench(),
        "pipeline": RecordingPipeline(),
        "model_teacher": RecordingModelTeacher(),
    }
    if "roster" not in ports:
        from tests.dashboards.seed import staff_roster

        wired["roster"] = staff_roster(session_factory)[0]
    wired.update(ports)
    return create_app(
        session_factory=session_factory,
        settings=settings or DashboardSettings(session_minutes=60),
        clock=clock or FakeClock(),
        **wired,
    )
