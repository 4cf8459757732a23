"""What the dashboard asks of the bot (dashboards.ports): ticket actions, broadcasts, the rule bench and
re-running the messages kept raw."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.errors import InputError
from bot.media import NotAnImage, check_image
from bot.services import Services
from bot.tickets import TicketActions, TicketNotFound, TicketStateError
from classifiers import describe_rules
from classifiers.model import RED_FLAGS
from dashboards.ports import ActionRefused, RerunOutcome, RuleEdit, TranscriptOutcome
from storage.repos import broadcasts as broadcasts_repo
from storage.repos import directory as directory_repo
from storage.repos import messages as messages_repo
from storage.repos import outbox as outbox_repo


class StaffTicketActions:
    """The ticket workflow's staff actions, with its refusals turned into the dashboard's ActionRefused."""

    def __init__(self, actions: TicketActions) -> None:
        self._actions = actions

    async def _guard(self, action: Awaitable[None]) -> None:
        try:
            await action
        except (TicketNotFound, TicketStateError) as exc:
            raise ActionRefused(str(exc)) from exc

    async def transfer(self, ticket_id: int, *, to_member: str, actor: str) -> None:
        await self._guard(self._actions.transfer(ticket_id, to_member=to_member, actor=actor))

    async def escalate(self, ticket_id: int, *, actor: str, reason: str) -> None:
        await self._guard(self._actions.escalate(ticket_id, actor=actor, reason=reason))

    async def approve_extension(self, ticket_id: int, *, actor: str, working_days: int) -> None:
        await self._guard(self._actions.approve_extension(ticket_id, actor=actor, working_days=working_days))

    async def add_note(self, ticket_id: int, *, actor: str, text: str) -> None:
        await self._guard(self._actions.add_note(ticket_id, actor=actor, text=text))

    async def available(self, ticket_id: int) -> list[str]:
        return await self._actions.available(ticket_id)

    async def accept(self, ticket_id: int, *, actor: str) -> None:
        await self._guard(self._actions.accept(ticket_id, actor=actor))

    async def progress(self, ticket_id: int, *, actor: str, text: str) -> None:
        await self._guard(self._actions.progress(ticket_id, actor=actor, text=text))

    async def resolve(
        self, ticket_id: int, *, actor: str, note: str, image: bytes | None = None, filename: str = ""
    ) -> None:
        if image is not None:
            await self._checked(image)
        await self._guard(self._actions.resolve(ticket_id, actor=actor, note=note, image=image, filename=filename))

    async def waive_photo(self, ticket_id: int, *, actor: str, reason: str) -> None:
        await self._guard(self._actions.waive_photo(ticket_id, actor=actor, reason=reason))

    async def upload_photo(self, ticket_id: int, *, actor: str, image: bytes, filename: str) -> None:
        await self._checked(image)
        await self._guard(self._actions.upload_photo(ticket_id, actor=actor, image=image, filename=filename))

    async def close(self, ticket_id: int, *, actor: str, text: str) -> None:
        await self._guard(self._actions.close(ticket_id, actor=actor, text=text))

    async def reopen(self, ticket_id: int, *, actor: str, reason: str) -> None:
        await self._guard(self._actions.reopen(ticket_id, actor=actor, reason=reason))

    async def split(self, ticket_id: int, *, reporter: str, actor: str) -> int:
        try:
            return await self._actions.split(ticket_id, reporter=reporter, actor=actor)
        except (TicketNotFound, TicketStateError) as exc:
            raise ActionRefused(str(exc)) from exc

    async def merge(self, ticket_id: int, *, into: int, actor: str) -> None:
        await self._guard(self._actions.merge(ticket_id, into=into, actor=actor))

    async def open_from_message(self, message_id: int, *, kind: str, category: str | None, actor: str) -> int:
        try:
            return await self._actions.open_from_message(message_id, kind=kind, category=category, actor=actor)
        except (TicketNotFound, TicketStateError) as exc:
            raise ActionRefused(str(exc)) from exc

    @staticmethod
    async def _checked(image: bytes) -> None:
        try:
            await asyncio.to_thread(check_image, image)  # by content, never by name; decoding is CPU work
        except NotAnImage as exc:
            raise ActionRefused(str(exc)) from exc


class StaffBroadcaster:
    """Notices to many groups and clarifications to one, through the paced outbox, with a record; at once or
    at a chosen time (the outbox rows wait until then), and cancelled before they go."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def preview(self, *, kind: str, text: str) -> str:
        return self._services.workflow.notifier.broadcast_text(kind=kind, text=text.strip())

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
        if kind not in ("notice", "clarification"):
            raise ActionRefused(f"未知的发布类型:{kind}")
        if not text.strip():
            raise ActionRefused("发布内容不能为空。")
        if not groups:
            raise ActionRefused("请至少选择一个群。")
        if kind == "clarification" and len(groups) != 1:
            raise ActionRefused("澄清正名只能发到一个群。")
        services = self._services
        now = services.clock.now()
        if send_at is not None and send_at <= now:
            send_at = None  # its time has come: at once
        async with services.sessions() as session:
            record = await broadcasts_repo.add_broadcast(
                session,
                at=now,
                username=actor,
                kind=kind,
                text=text.strip(),
                send_at=send_at,
                audience=audience,
                members=members,
            )
            sent_to: list[str] = []
            outbox_ids: list[int] = []
            for name in groups:
                group = await directory_repo.get_group(session, name)
                if group is None:
                    raise ActionRefused(f"找不到群:{name}")
                assert record.id is not None
                outbox_id = await services.workflow.notifier.broadcast(
                    session, record_id=record.id, kind=kind, group=group, text=text.strip(), not_before=send_at
                )
                if outbox_id is not None:
                    outbox_ids.append(outbox_id)
                    sent_to.append(group.name)
            await broadcasts_repo.set_delivery(session, record, groups=sent_to, outbox_ids=outbox_ids)
            await session.commit()
            assert record.id is not None
            return record.id

    async def cancel(self, broadcast_id: int, *, actor: str) -> int:
        services = self._services
        now = services.clock.now()
        async with services.sessions() as session:
            record = await broadcasts_repo.get_broadcast(session, broadcast_id)
            if record is None:
                raise ActionRefused(f"找不到第 {broadcast_id} 次群发。")
            if record.cancelled_at is not None:
                raise ActionRefused("这次群发已经取消过了。")
            if record.send_at is None or record.send_at <= now:
                raise ActionRefused("这次群发已经开始发送，无法取消。")
            withdrawn = await outbox_repo.cancel_pending(session, outbox_ids=list(record.outbox_ids))
            await broadcasts_repo.mark_cancelled(session, record, at=now, username=actor)
            await session.commit()
            return withdrawn


class StaffRuleBench:
    """Try the live rules on a text, or over stored messages, without changing anything."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def classify(self, text: str, role: str | None) -> dict[str, Any]:
        result = self._services.classifiers.current.classify(text, role=role)
        contract = result.to_contract(None)
        contract.pop("id", None)
        contract["shadow_matches"] = [{"rule": m.rule, "keywords": list(m.keywords)} for m in result.shadow_matches]
        contract["normalized"] = self._services.classifiers.current.normalize(text)
        return contract

    async def dry_run(
        self, *, days: int, county: str | None, township: str | None, village: str | None, limit: int
    ) -> list[dict[str, Any]]:
        services = self._services
        classifier = services.classifiers.current
        end = services.clock.now()
        start = end - timedelta(days=max(1, days))
        changes: list[dict[str, Any]] = []
        async with services.sessions() as session:
            rows = await messages_repo.messages_with_classification(
                session, start=start, end=end, county=county, township=township, village=village
            )
        for message, old in rows:
            result = classifier.classify(message.text, role=message.role)
            old_labels = list(old.labels) if old is not None else []
            if old_labels == list(result.labels):
                continue
            changes.append(
                {
                    "message_id": message.id,
                    "at": message.at.astimezone(services.clock.tz).isoformat(),
                    "group": message.group_name,
                    "sender": message.sender_name,
                    "text": message.text,
                    "old_labels": old_labels,
                    "new_labels": list(result.labels),
                    "new_matches": [{"rule": m.rule, "keywords": list(m.keywords)} for m in result.matches],
                    "newly_flagged": any(label in RED_FLAGS for label in result.labels)
                    and not any(label in RED_FLAGS for label in old_labels),
                }
            )
            if len(changes) >= limit:
                break
        return changes

    def status(self) -> dict[str, Any]:
        holder = self._services.classifiers
        return {"version": holder.current.version, "reload_error": holder.last_error}

    def rules(self) -> list[dict[str, Any]]:
        holder = self._services.classifiers
        return describe_rules(holder.current, holder.rules_dir)

    async def set_shadow(self, rule_id: str, shadow: bool, *, actor: str) -> None:
        """Through the rule editor, so the switch is checked, swapped in and kept as a version like any edit."""
        editor = self._services.rule_editor
        card = next((c for c in editor.cards() if c["id"] == rule_id), None)
        if card is None:
            raise ActionRefused("未找到该规则")
        if card["shadow"] == shadow:
            return
        edit = RuleEdit(
            rule_id=rule_id,
            description=card["description"],
            any=tuple(card["any"]),
            none=tuple(card["none"]),
            weight=repr(card["weight"]),
            window=str(card["window"] or ""),
            shadow=shadow,
        )
        await editor.save(edit, actor=actor, reason="开启试运行" if shadow else "关闭试运行")


class StaffPipeline:
    """The inbound pipeline as staff drive it: messages kept raw after a failure, run through again."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def rerun_kept_raw(self, *, actor: str) -> RerunOutcome:
        result = await self._services.ingest.rerun_kept_raw()
        return RerunOutcome(handled=result.handled, failed=result.failed, remaining=result.remaining)

    async def transcribe(self, message_id: int, *, text: str, actor: str) -> TranscriptOutcome:
        try:
            done = await self._services.ingest.transcribe(message_id, text, by=actor)
        except InputError as exc:
            raise ActionRefused(str(exc)) from exc
        return TranscriptOutcome(handled=done.handled, labels=done.labels)

    async def voice_audio(self, media_path: str | None) -> Path | None:
        root = self._services.media.root.resolve()
        if not media_path or not (root / media_path).resolve().is_relative_to(root):
            return None  # only files of the media store, decoded into it
        audio = await asyncio.to_thread(self._services.ingest.voice.decode, media_path)
        return self._services.media.path(audio.audio_path) if audio.audio_path else None
