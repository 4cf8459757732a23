"""What the dashboard asks of the bot (dashboards.ports): ticket actions, broadcasts, the rule bench and
re-running the messages kept raw."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from bot.media import NotAnImage, check_image
from bot.services import Services
from bot.tickets import TicketActions, TicketNotFound, TicketStateError
from classifiers import describe_rules, restore, set_rule_shadow
from classifiers.model import RED_FLAGS
from dashboards.ports import ActionRefused, RerunOutcome
from storage.repos import broadcasts as broadcasts_repo
from storage.repos import directory as directory_repo
from storage.repos import messages as messages_repo


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
    """Notices to many groups and clarifications to one, through the paced outbox, with a record."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def broadcast(self, *, actor: str, kind: str, text: str, groups: list[str]) -> int:
        if kind not in ("notice", "clarification"):
            raise ActionRefused(f"未知的发布类型:{kind}")
        if not text.strip():
            raise ActionRefused("发布内容不能为空。")
        if not groups:
            raise ActionRefused("请至少选择一个群。")
        if kind == "clarification" and len(groups) != 1:
            raise ActionRefused("澄清正名只能发到一个群。")
        services = self._services
        async with services.sessions() as session:
            record = await broadcasts_repo.add_broadcast(
                session, at=services.clock.now(), username=actor, kind=kind, text=text.strip()
            )
            sent_to: list[str] = []
            outbox_ids: list[int] = []
            for name in groups:
                group = await directory_repo.get_group(session, name)
                if group is None:
                    raise ActionRefused(f"找不到群:{name}")
                assert record.id is not None
                outbox_id = await services.workflow.notifier.broadcast(
                    session, record_id=record.id, kind=kind, group=group, text=text.strip()
                )
                if outbox_id is not None:
                    outbox_ids.append(outbox_id)
                    sent_to.append(group.name)
            await broadcasts_repo.set_delivery(session, record, groups=sent_to, outbox_ids=outbox_ids)
            await session.commit()
            assert record.id is not None
            return record.id


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
        holder = self._services.classifiers
        try:
            path, previous = set_rule_shadow(holder.rules_dir, rule_id, shadow)
        except (KeyError, OSError) as exc:
            raise ActionRefused(f"无法修改规则 {rule_id}:{exc}") from exc
        if not holder.reload():
            restore(path, previous)
            holder.reload()
            raise ActionRefused(f"规则文件校验失败,已恢复原规则:{holder.last_error or ''}")


class StaffPipeline:
    """The inbound pipeline as staff drive it: messages kept raw after a failure, run through again."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def rerun_kept_raw(self, *, actor: str) -> RerunOutcome:
        result = await self._services.ingest.rerun_kept_raw()
        return RerunOutcome(handled=result.handled, failed=result.failed, remaining=result.remaining)
