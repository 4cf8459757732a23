"""Names: room topics, contact and member names, member lists, and resolving a group name or a mention.

Payloads are cached for ``CACHE_TTL`` seconds and dropped when the service says they changed (``dirty``,
room topic/join/leave events).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import grpclib.exceptions

from bot.adapters.base import AdapterError
from bot.adapters.wechaty.connection import Link
from bot.adapters.wechaty.convert import contact_display_name, member_display_name
from bot.adapters.wechaty.wire import CACHE_SIZE, CACHE_TTL, CALL_ERRORS, MEMBER_LOOKUPS, PayloadType


class TtlCache:
    """A small dict with expiry, for contact, room and member payloads."""

    def __init__(self, ttl: float = CACHE_TTL, size: int = CACHE_SIZE) -> None:
        self._ttl = ttl
        self._size = size
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._items) >= self._size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (time.monotonic() + self._ttl, value)

    def drop(self, match: Callable[[Any], bool]) -> None:
        for key in [k for k in self._items if match(k)]:
            del self._items[key]


class Names:
    def __init__(self, link: Link, *, log: logging.Logger) -> None:
        self._link = link
        self._log = log
        self._contacts = TtlCache()
        self._rooms = TtlCache()
        self._members = TtlCache()
        self._member_lists = TtlCache()
        """room id → list of member ids"""

    def forget(self, payload_type: Any, payload_id: str) -> None:
        if payload_type == PayloadType.CONTACT:
            self._contacts.drop(lambda key: key == payload_id)
            self._members.drop(lambda key: key[1] == payload_id)
        elif payload_type in (PayloadType.ROOM, PayloadType.ROOM_MEMBER):
            self._rooms.drop(lambda key: key == payload_id)
            self._members.drop(lambda key: key[0] == payload_id)
            self._member_lists.drop(lambda key: key == payload_id)

    async def room_topic(self, room_id: str) -> str | None:
        cached = self._rooms.get(room_id)
        if cached is not None:
            return str(cached)
        room = await self._link.best_effort(lambda stub: stub.room_payload(id=room_id), f"room {room_id}")
        if room is None:
            return None
        self._rooms.put(room_id, room.topic)
        return room.topic

    async def contact_name(self, contact_id: str) -> str:
        cached = self._contacts.get(contact_id)
        if cached is not None:
            return str(cached)
        contact = await self._link.best_effort(
            lambda stub: stub.contact_payload(id=contact_id), f"contact {contact_id}"
        )
        if contact is None:
            return contact_id
        name = contact_display_name(contact.name, contact.alias, contact_id)
        self._contacts.put(contact_id, name)
        return name

    async def member_name(self, room_id: str, contact_id: str) -> str:
        """The name shown in the group: the member's group nickname, else the contact's name."""
        cached = self._members.get((room_id, contact_id))
        if cached is not None:
            return str(cached)
        member = await self._link.best_effort(
            lambda stub: stub.room_member_payload(id=room_id, member_id=contact_id),
            f"member {contact_id} of {room_id}",
        )
        name = member_display_name(member.room_alias, member.name) if member is not None else ""
        if not name:
            name = await self.contact_name(contact_id)
        elif member is not None:
            self._members.put((room_id, contact_id), name)
        return name

    async def sender_name(self, room_id: str | None, sender_id: str) -> str:
        if not sender_id:
            return ""
        if room_id:
            return await self.member_name(room_id, sender_id)
        return await self.contact_name(sender_id)

    async def member_ids(self, room_id: str, *, fresh: bool = False) -> list[str]:
        cached = None if fresh else self._member_lists.get(room_id)
        if cached is None:
            reply = await self._link.unary(lambda stub: stub.room_member_list(id=room_id))
            cached = list(reply.member_ids)
            self._member_lists.put(room_id, cached)
        return list(cached)

    async def member_names(self, room_id: str, member_ids: list[str]) -> list[str]:
        limit = asyncio.Semaphore(MEMBER_LOOKUPS)

        async def one(member_id: str) -> str:
            async with limit:
                return await self.member_name(room_id, member_id)

        return list(await asyncio.gather(*(one(m) for m in member_ids)))

    async def room_id(self, chat_id: str) -> str:
        """``chat_id`` itself when it is a room id, else the id of the one room with that topic."""
        if self._rooms.get(chat_id) is not None:
            return chat_id
        try:
            room = await self._link.unary(lambda stub: stub.room_payload(id=chat_id))
        except grpclib.exceptions.GRPCError:
            room = None
        if room is not None and room.id:
            self._rooms.put(chat_id, room.topic)
            return chat_id
        rooms = await self._link.unary(lambda stub: stub.room_list())
        matches = [room_id for room_id in rooms.ids if await self.room_topic(room_id) == chat_id]
        if len(matches) != 1:
            how = "no group" if not matches else f"{len(matches)} groups"
            raise AdapterError(f"account {self._link.account}: {how} with the id or name {chat_id!r}")
        return matches[0]

    async def mention_ids(
        self, room_id: str, mention_ids: tuple[str, ...], mention_names: tuple[str, ...]
    ) -> list[str]:
        """Member ids to @: given ids that are members, else the one member with the given name."""
        try:
            members = await self.member_ids(room_id)
        except CALL_ERRORS as exc:
            self._log.warning(
                "account %s: members of %s unknown (%s); mentions sent as given",
                self._link.account,
                room_id,
                self._link.describe(exc),
            )
            return list(mention_ids)
        wanted = list(itertools.zip_longest(mention_ids, mention_names, fillvalue=""))
        names: dict[str, list[str]] | None = None
        resolved: list[str] = []
        for member_id, name in wanted:
            if member_id in members:
                resolved.append(member_id)
                continue
            if names is None:
                names = {}
                for candidate, candidate_name in zip(members, await self.member_names(room_id, members), strict=True):
                    names.setdefault(candidate_name, []).append(candidate)
            found = names.get(name or member_id, [])
            if len(found) == 1:
                resolved.append(found[0])
            else:
                self._log.info(
                    "account %s: cannot @%s in %s (%s); mentioned by name only",
                    self._link.account,
                    name or member_id,
                    room_id,
                    "no such member" if not found else "name not unique",
                )
        return list(dict.fromkeys(resolved))
