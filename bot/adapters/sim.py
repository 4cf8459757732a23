"""The local group simulator: a web page that looks like the configured WeChat groups.

A newcomer speaks as any roster member or a new villager (text, photo, private chat with the bot) and
sees the bot's answers live. It binds to loopback only: it is a demo and test tool, not a dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
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
    ) -> None:
        self.account = account
        self._groups = groups
        self._people = people
        self._media_root = media_root
        self._clock = clock
        self._bind, self._port = bind, port
        self._entries: list[SimEntry] = []
        self._seq = itertools.count(1)
        self._uploads: dict[str, bytes] = {}
        self._sent_keys: set[str] = set()
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
        if message.dedupe_key and message.dedupe_key in self._sent_keys:
            return None  # already shown: the simulator makes redelivery after a crash harmless
        if message.dedupe_key:
            self._sent_keys.add(message.dedupe_key)
        chat = message.chat_id if message.is_group else f"private:{message.chat_id}"
        image = f"/bot-media/{message.image_path}" if message.image_path else None
        await self._append(chat, BOT_NAME, "bot", message.text or "", image, True, list(message.mention_names))
        return f"sim-{uuid.uuid4().hex[:12]}"

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

    async def _append(
        self, chat: str, sender: str, role: str, text: str, image: str | None, from_bot: bool, mentions: list[str]
    ) -> SimEntry:
        entry = SimEntry(
            next(self._seq), chat, sender, role, text, image, self._clock.now().isoformat(), from_bot, mentions
        )
        async with self._changed:
            self._entries.append(entry)
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
            return [e for e in self._entries if e.seq > after]

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
        sender = str(form.get("sender", "")).strip()
        chat = str(form.get("chat", "")).strip()
        text = str(form.get("text", "")).strip()
        upload: Any = form.get("image")
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
        await self._append(f"private:{sender}" if is_private else chat, sender, role, text, image_url, False, [])
        incoming = IncomingMessage(
            platform_id=f"sim-{uuid.uuid4().hex}",
            account=self.account,
            at=self._clock.now(),
            kind=MessageKind.IMAGE if data is not None else MessageKind.TEXT,
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
            # Awaited, not spawned: the service's handler only queues it (in order, per chat), and a task per
            # message let later messages of a group be handled before earlier ones.
            await self._on_message(incoming)
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
        for people in (await self._people()).values():
            for person in people:
                if person["name"] == name:
                    return person["role"]
        return "villager"


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
    }
