"""The local group simulator: a web page that looks like the configured WeChat groups.

A newcomer speaks as any roster member or a new villager (text, photo, private chat with the bot) and
sees the bot's answers live. It binds to loopback only: it is a demo and test tool, not a dashboard.

Exactly once, across crashes: ``POST /api/send`` answers only after the message is committed (a 503 says
"not stored, send it again"), and a client may give each message an ``id`` so that sending it again after
a lost answer stores it once. With a ``journal`` file the chat survives a restart, kill -9 included: every
entry is appended (and flushed) as it is shown, and a reply whose outbox dedupe key was shown before is
dropped, so a reply re-sent after a crash (sent, then killed before it was marked sent) appears once.

Memory is bounded: the page shows the last ``history`` entries of each chat (and their photos); older ones
stay in the journal only. What exactly once needs (the ids and reply keys seen) is kept whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.adapters.base import AdapterHealth, AdapterState, MessageHandler
from bot.clock import Clock
from bot.messages import IncomingMessage, MessageKind, OutgoingMessage, RoomMember

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("sim_static")
BOT_NAME = "监督服务机器人"
HISTORY = 200
"""Entries of each chat the simulator keeps in memory (its page shows these)."""
ROLES_TTL = 5.0
"""Seconds the simulator's copy of the speakers' roles is used before it is read again."""

PeopleProvider = Callable[[], Awaitable[dict[str, list[dict[str, str]]]]]
"""Returns, per group name, the roster people who may speak there: [{"name", "role"}]."""


@dataclass(slots=True)
class SimEntry:
    seq: int
    chat: str
    sender: str
    role: str
    text: str
    image: str | None
    at: str
    from_bot: bool
    mentions: list[str]
    key: str | None = None
    """A reply's outbox dedupe key, or the id a client gave a message it sent."""


class SimAdapter:
    def __init__(
        self,
        account: str,
        *,
        groups: list[str],
        people: PeopleProvider,
        media_root: Path,
        clock: Clock,
        bind: str = "127.0.0.1",
        port: int = 8081,
        poll_seconds: float = 20.0,
        journal: Path | None = None,
        history: int = HISTORY,
    ) -> None:
        if history < 1:
            raise ValueError("history must be at least 1")
        self.account = account
        self._groups = groups
        self._people = people
        self._media_root = media_root
        self._clock = clock
        self._bind, self._port = bind, port
        self._history = history
        self._chats: dict[str, deque[SimEntry]] = {}
        """Per chat, its last ``history`` entries in order."""
        self._last_seq = 0
        self._seq = itertools.count(1)
        self._uploads: dict[str, bytes] = {}
        self._sent_keys: dict[str, str] = {}
        """Outbox dedupe key → the id returned when it was shown."""
        self._accepted_ids: set[str] = set()
        """Client ids of messages acknowledged as stored."""
        self._shown_ids: set[str] = set()
        self._roles: dict[str, str] = {}
        self._roles_at = -ROLES_TTL - 1.0
        self._roles_lock = asyncio.Lock()
        self._journal = journal
        self._on_message: MessageHandler | None = None
        self._runner: web.AppRunner | None = None
        self._state = AdapterState.STOPPED
        self._since = clock.now()
        self._changed = asyncio.Condition()
        self._poll_seconds = poll_seconds
        self._closing = False
        self.open_polls = 0
        """Long polls waiting right now (tests wait for one before stopping)."""
        self.url = ""
        self._load_journal()

    # --- Adapter protocol ---------------------------------------------------------------------------

    async def start(self, on_message: MessageHandler) -> None:
        self._on_message = on_message
        self._closing = False
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/api/state", self._state_api)
        app.router.add_get("/api/messages", self._messages_api)
        app.router.add_post("/api/send", self._send_api)
        app.router.add_get("/media/{key}", self._upload_file)
        app.router.add_get("/bot-media/{path:.+}", self._bot_file)
        app.router.add_static("/static", STATIC)
        # A request still open when the simulator stops gets this long; the long polls are answered at once.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._bind, self._port)
        await site.start()
        port = self._runner.addresses[0][1] if self._runner.addresses else self._port
        self.url = f"http://{self._bind}:{port}/"
        self._state, self._since = AdapterState.CONNECTED, self._clock.now()

    async def stop(self) -> None:
        # Answer the open long polls now: otherwise the server's clean-up waits for each to time out.
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._state, self._since = AdapterState.STOPPED, self._clock.now()

    async def send(self, message: OutgoingMessage) -> str | None:
        key = message.dedupe_key
        if key and key in self._sent_keys:
            return self._sent_keys[key]  # shown before (then a crash): redelivery is dropped
        chat = message.chat_id if message.is_group else f"private:{message.chat_id}"
        image = f"/bot-media/{message.image_path}" if message.image_path else None
        entry = await self._append(
            chat, BOT_NAME, "bot", message.text or "", image, True, list(message.mention_names), key=key
        )
        return f"sim-{entry.seq}"

    @property
    def delivered(self) -> list[SimEntry]:
        """What the simulator still shows (from the journal too): the last ``history`` entries of each chat,
        in the order they were shown."""
        return sorted(self._kept(), key=lambda e: e.seq)

    def _kept(self) -> Iterator[SimEntry]:
        for entries in self._chats.values():
            yield from entries

    async def download(self, message: IncomingMessage) -> bytes:
        if message.attachment_ref and message.attachment_ref in self._uploads:
            return self._uploads[message.attachment_ref]
        raise FileNotFoundError(message.attachment_ref or "no attachment")

    async def room_members(self, group_id: str) -> list[RoomMember]:
        people = await self._people()
        return [RoomMember(p["name"], p["name"]) for p in people.get(group_id, [])]

    def health(self) -> AdapterHealth:
        return AdapterHealth(self.account, "sim", self._state, self._since, self.url)

    # --- web ------------------------------------------------------------------------------------------

    def _load_journal(self) -> None:
        if self._journal is None or not self._journal.is_file():
            return
        with self._journal.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    record = json.loads(line)
                    if "accepted" in record:
                        self._accepted_ids.add(str(record["accepted"]))
                        continue
                    entry = SimEntry(**record)
                except (ValueError, TypeError):
                    # a line cut short by a kill: the entry was not shown, so nothing depended on it
                    log.warning("%s:%d: unreadable simulator journal line skipped", self._journal, number)
                    continue
                self._remember(entry)
        self._seq = itertools.count(self._last_seq + 1)

    def _write(self, record: dict[str, Any]) -> None:
        """Append a journal line before it counts; a kill -9 loses nothing the OS was handed (no fsync: a
        demo and test tool, a power cut may lose the last lines)."""
        if self._journal is None:
            return
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        with self._journal.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _remember(self, entry: SimEntry) -> None:
        chat = self._chats.get(entry.chat)
        if chat is None:
            chat = self._chats[entry.chat] = deque()
        chat.append(entry)
        if len(chat) > self._history:
            self._forget(chat.popleft())
        self._last_seq = max(self._last_seq, entry.seq)
        if entry.key is not None:
            if entry.from_bot:
                self._sent_keys[entry.key] = f"sim-{entry.seq}"
            else:
                self._shown_ids.add(entry.key)

    def _forget(self, entry: SimEntry) -> None:
        """An entry leaves the page: so does its photo (its key stays, for exactly once)."""
        if entry.image and entry.image.startswith("/media/"):
            self._uploads.pop(entry.image.removeprefix("/media/"), None)

    async def _append(
        self,
        chat: str,
        sender: str,
        role: str,
        text: str,
        image: str | None,
        from_bot: bool,
        mentions: list[str],
        *,
        key: str | None = None,
    ) -> SimEntry:
        async with self._changed:
            entry = SimEntry(
                next(self._seq), chat, sender, role, text, image, self._clock.now().isoformat(), from_bot, mentions, key
            )
            self._write(_as_json(entry))
            self._remember(entry)
            self._changed.notify_all()
        return entry

    async def _page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _state_api(self, request: web.Request) -> web.Response:
        people = await self._people()
        return web.json_response(
            {"bot": BOT_NAME, "groups": [{"name": g, "people": people.get(g, [])} for g in self._groups]}
        )

    async def _messages_api(self, request: web.Request) -> web.Response:
        """Long poll: waits up to ``poll_seconds`` (20 s) for entries after ``after``, or until the stop."""
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="after must be a number") from None

        def _newer() -> list[SimEntry]:
            if after >= self._last_seq:
                return []
            newer: list[SimEntry] = []
            for entries in self._chats.values():
                for entry in reversed(entries):  # each chat's entries are in order: stop at the first seen
                    if entry.seq <= after:
                        break
                    newer.append(entry)
            return sorted(newer, key=lambda e: e.seq)

        self.open_polls += 1
        try:
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._closing or bool(_newer())), timeout=self._poll_seconds
                    )
        finally:
            self.open_polls -= 1
        return web.json_response([_as_json(e) for e in _newer()])

    async def _send_api(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id = str(form.get("id", "")).strip() or None
        if client_id is not None and client_id in self._accepted_ids:
            return web.json_response({"ok": True, "duplicate": True})
        sender = str(form.get("sender", "")).strip()
        chat = str(form.get("chat", "")).strip()
        text = str(form.get("text", "")).strip()
        upload: Any = form.get("image")
        voice: Any = form.get("voice")  # a voice message (SILK), e.g. from a test or a script
        is_voice = upload is None and voice is not None and hasattr(voice, "file")
        if is_voice:
            upload = voice
        if not sender or not chat:
            raise web.HTTPBadRequest(text="sender and chat are required")
        is_private = chat.startswith("private:")
        if not is_private and chat not in self._groups:
            raise web.HTTPBadRequest(text=f"unknown group {chat}")
        data: bytes | None = None
        name: str | None = None
        ref: str | None = None
        if upload is not None and hasattr(upload, "file"):
            data = upload.file.read()
            name = upload.filename
            ref = uuid.uuid4().hex
            self._uploads[ref] = data
        if not text and data is None:
            raise web.HTTPBadRequest(text="say something or attach a photo")
        role = await self._role_of(sender)
        image_url = f"/media/{ref}" if ref else None
        # Shown at once, so the bot's answer comes below it; a message sent again by id is shown once.
        shown = client_id is None or client_id not in self._shown_ids
        if shown:
            shown_text, shown_image = ("[语音]", None) if is_voice else (text, image_url)
            await self._append(
                f"private:{sender}" if is_private else chat,
                sender,
                role,
                shown_text,
                shown_image,
                False,
                [],
                key=client_id,
            )
        incoming = IncomingMessage(
            platform_id=f"sim-id-{client_id}" if client_id else f"sim-{uuid.uuid4().hex}",
            account=self.account,
            at=self._clock.now(),
            kind=MessageKind.VOICE if is_voice else MessageKind.IMAGE if data is not None else MessageKind.TEXT,
            text=text,
            sender_id=sender,
            sender_name=sender,
            group_id=None if is_private else chat,
            group_topic=None if is_private else chat,
            attachment_ref=ref,
            attachment_name=name,
            media=data,
        )
        if self._on_message is not None:
            # Awaited, not spawned: the service's handler queues it at once (in order, per chat: a task per
            # message let later messages of a group be handled before earlier ones), then returns once it is
            # committed, so the answer below acknowledges only a stored message.
            try:
                await self._on_message(incoming)
            except Exception as exc:
                log.warning("message from %s in %s not stored: %s", sender, chat, exc)
                raise web.HTTPServiceUnavailable(text="not stored (the bot is stopping): send it again") from exc
            finally:
                if not shown and ref is not None:
                    self._uploads.pop(ref, None)  # a photo sent again: the page shows the first one
        if client_id is not None:
            self._write({"accepted": client_id})
            self._accepted_ids.add(client_id)
        return web.json_response({"ok": True})

    async def _upload_file(self, request: web.Request) -> web.Response:
        data = self._uploads.get(request.match_info["key"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg")

    async def _bot_file(self, request: web.Request) -> web.FileResponse:
        root = self._media_root.resolve()
        target = (root / request.match_info["path"]).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(target)

    async def _role_of(self, name: str) -> str:
        """The role shown beside a speaker. From a copy of the roster at most ROLES_TTL old, loaded by one
        request at a time: loading it for every message took a database connection per message from the
        pipeline (at 200 msg/s the pool ran dry and messages failed). The bot's own view of a sender's role
        comes from its directory, not from here."""
        if time.monotonic() - self._roles_at > ROLES_TTL:
            async with self._roles_lock:
                if time.monotonic() - self._roles_at > ROLES_TTL:
                    roles: dict[str, str] = {}
                    for people in (await self._people()).values():
                        for person in people:
                            roles.setdefault(person["name"], person["role"])
                    self._roles, self._roles_at = roles, time.monotonic()
        return self._roles.get(name, "villager")


def _as_json(entry: SimEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "chat": entry.chat,
        "sender": entry.sender,
        "role": entry.role,
        "text": entry.text,
        "image": entry.image,
        "at": entry.at,
        "from_bot": entry.from_bot,
        "mentions": entry.mentions,
        "key": entry.key,
    }
