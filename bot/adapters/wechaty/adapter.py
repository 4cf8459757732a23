"""``WechatyAdapter``: one WeChat account through a Wechaty puppet service (the ``Adapter`` protocol).

It composes the package's parts: ``Link`` (the supervised connection), ``Names`` (topics, names,
mentions), ``Transfers`` (files both ways) and the pure functions of ``convert``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpclib.exceptions

from bot.adapters.base import AdapterError, AdapterHealth, AdapterState, MessageHandler
from bot.adapters.wechaty import convert
from bot.adapters.wechaty.connection import Connection, Link
from bot.adapters.wechaty.names import Names
from bot.adapters.wechaty.sent import PartState, SentJournal
from bot.adapters.wechaty.transfers import Transfers
from bot.adapters.wechaty.wire import (
    CALL_ERRORS,
    CONVERT_ATTEMPTS,
    LINK_ERRORS,
    TOKEN_OK,
    Transient,
    WechatyConnectError,
    Wire,
    parse_endpoint,
)
from bot.messages import IncomingMessage, MessageKind, OutgoingMessage, RoomMember

LOGGER = "bot.adapters.wechaty"
"""One logger for the whole package (operators filter on it)."""


class WechatyAdapter:
    """One WeChat account through a Wechaty puppet service; satisfies ``bot.adapters.base.Adapter``.

    ``start`` verifies endpoint, TLS and token with a ``version`` call and raises ``WechatyConnectError``
    when the service answers but refuses; when nothing answers it logs, returns, and keeps connecting in
    the background (``health()`` says RECONNECTING). Afterwards a supervisor holds the event stream and
    reconnects with backoff ``reconnect_min`` → ``reconnect_max`` on any loss, each attempt on a fresh
    channel. A worker turns message events into ``IncomingMessage`` in arrival order and calls the
    handler; nothing a handler raises stops it. The service's puppet is never stopped by ``stop`` (a
    gateway keeps the WeChat session for the next start).

    ``tls`` with no ``ssl_context`` trusts the system's CAs; an ``ssl_context`` (which implies TLS) gets
    ALPN ``h2`` set on it. ``tls_server_name`` overrides the name the server certificate must carry
    (default: the endpoint host; the Wechaty community certificate says ``insecure``). ``media_root`` is
    where relative image paths of outgoing messages live (the bot's media store). ``sent_journal`` is the
    file that records what was sent by outbox dedupe key (see ``sent``), so that a row sent again after a
    crash is dropped, even by a new process; without it that only holds within this process.
    """

    adapter_name = "wechaty"

    def __init__(
        self,
        account: str,
        *,
        endpoint: str,
        token: str,
        tls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        reconnect_min: float = 1.0,
        reconnect_max: float = 10.0,
        logger: logging.Logger | None = None,
        tls_server_name: str | None = None,
        media_root: Path | None = None,
        sent_journal: Path | None = None,
    ) -> None:
        self.account = account
        self._endpoint = endpoint
        host, port = parse_endpoint(endpoint)
        if not token or not TOKEN_OK.match(token):
            raise WechatyConnectError(
                f"account {account}: the Wechaty token for {endpoint} is empty or has spaces or non-ASCII "
                "characters (it is sent as gRPC metadata)"
            )
        self.media_root = media_root
        self._log = logger or logging.getLogger(LOGGER)
        self._link = Link(
            account,
            endpoint=endpoint,
            host=host,
            port=port,
            token=token,
            tls=tls,
            ssl_context=ssl_context,
            tls_server_name=tls_server_name,
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            log=self._log,
            listener=self,
        )
        self._names = Names(self._link, log=self._log)
        self._transfers = Transfers(self._link, log=self._log)
        self._sent = SentJournal(sent_journal, log=self._log)
        self._handler: MessageHandler | None = None
        self._queue: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ Adapter protocol

    async def start(self, on_message: MessageHandler) -> None:
        if self._tasks:
            raise AdapterError(f"account {self.account}: the Wechaty adapter is already started")
        link = self._link
        self._handler = on_message
        link.stopping = False
        link.logged_in = asyncio.Event()
        self._queue = asyncio.Queue()
        link.set_state(AdapterState.STARTING, f"connecting to {self._endpoint}")
        first: Connection | None = None
        try:
            first = await link.connect()
        except WechatyConnectError as exc:
            link.set_state(AdapterState.FAILED, str(exc))
            self._log.error("%s", exc)
            raise
        except Transient as exc:
            link.set_state(AdapterState.RECONNECTING, f"{self._endpoint} not answering: {exc}")
            self._log.warning(
                "account %s: the Wechaty puppet service at %s is not answering (%s); "
                "retrying every %.0f-%.0f s in the background",
                self.account,
                self._endpoint,
                exc,
                link.reconnect_min,
                link.reconnect_max,
            )
        self._tasks = [
            asyncio.create_task(link.supervise(first), name=f"wechaty-supervisor-{self.account}"),
            asyncio.create_task(self._work(), name=f"wechaty-worker-{self.account}"),
        ]

    async def stop(self) -> None:
        link = self._link
        link.stopping = True
        if link.logged_in is not None:
            link.logged_in.set()  # wakes a worker waiting for a login; it sees stopping and ends
        tasks, self._tasks = self._tasks, []
        # Worker first, while its calls' channel is still open; then the supervisor. grpclib turns a
        # cancellation that meets a closing connection into StreamTerminatedError, so cancel until done.
        for task in reversed(tasks):
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if not task.cancelled() and task.exception() is not None:
                self._log.error("account %s: %s ended with %r", self.account, task.get_name(), task.exception())
        await link.drop()
        link.set_state(AdapterState.STOPPED, "stopped")

    def health(self) -> AdapterHealth:
        return self._link.health(self.adapter_name)

    async def send(self, message: OutgoingMessage) -> str | None:
        """Text (with @mentions) and/or an image; with both, the text goes first and its id is returned.

        For a group, ``chat_id`` may also be the group's name (a group the bot has not heard from yet),
        and a mention id that is no member id (a roster person who never spoke) is looked up by the
        matching entry of ``mention_names`` among the group's members; one that cannot be found is left
        out of the mention list (the text still reads "@name"). A relative ``image_path`` is taken from
        ``media_root``.
        """
        if message.text is None and message.image_path is None:
            raise AdapterError(f"account {self.account}: nothing to send to {message.chat_id}")
        first_id: str | None = None
        key = message.dedupe_key
        try:
            chat_id: str | None = None
            if message.text is not None:
                chat_id = chat_id or await self._chat_id(message)
                first_id = await self._once(key, "text", message, lambda: self._send_text(chat_id or "", message))
            if message.image_path is not None:
                chat_id = chat_id or await self._chat_id(message)
                path = self._image_file(message.image_path)
                image_id = await self._once(
                    key, "image", message, lambda: self._transfers.send_file(chat_id or "", path)
                )
                first_id = first_id or image_id
        except CALL_ERRORS as exc:
            raise AdapterError(
                f"account {self.account}: sending to {message.chat_id} through {self._endpoint} failed: "
                f"{self._link.describe(exc)}"
            ) from exc
        return first_id

    async def _chat_id(self, message: OutgoingMessage) -> str:
        return await self._names.room_id(message.chat_id) if message.is_group else message.chat_id

    async def _send_text(self, chat_id: str, message: OutgoingMessage) -> str | None:
        mentions = list(message.mention_ids)
        if message.is_group and (message.mention_ids or message.mention_names):
            mentions = await self._names.mention_ids(chat_id, message.mention_ids, message.mention_names)
        reply = await self._link.unary(
            lambda stub: stub.message_send_text(conversation_id=chat_id, text=message.text or "", mentonal_ids=mentions)
        )
        return reply.id or None

    async def _once(
        self,
        key: str | None,
        part: str,
        message: OutgoingMessage,
        call: Callable[[], Awaitable[str | None]],
    ) -> str | None:
        """Send one part of a row at most once per dedupe key, across restarts (the sent journal)."""
        if not key:
            return await call()
        name = f"{key}#{part}"
        state, known_id = self._sent.state(name)
        if state == PartState.SENT:
            self._log.info("account %s: %s was sent before (%s); dropped", self.account, name, known_id)
            return known_id
        if state == PartState.IN_DOUBT:
            self._log.warning(
                "account %s: the %s of %s to %s was being sent when the bot stopped; not sending it again "
                "(check the chat if it is missing)",
                self.account,
                part,
                key,
                message.chat_name or message.chat_id,
            )
            return None
        await self._sent.sending(name)
        try:
            platform_id = await call()
        except BaseException:
            # The call raised: the outbox retries the row, and this part must go then. (A cancellation
            # mid-call is a stop, not a crash; the retry may double it, as any at-least-once retry does.)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sent.failed(name))
            raise
        await self._sent.sent(name, platform_id)
        return platform_id

    async def download(self, message: IncomingMessage) -> bytes:
        if message.media is not None:
            return message.media
        ref = message.attachment_ref or message.platform_id
        try:
            data = await self._transfers.download(ref, image=message.kind == MessageKind.IMAGE)
        except CALL_ERRORS as exc:
            raise AdapterError(
                f"account {self.account}: downloading message {ref} from {self._endpoint} failed: "
                f"{self._link.describe(exc)}"
            ) from exc
        if not data:
            raise AdapterError(f"account {self.account}: message {ref} has no downloadable content")
        return data

    async def room_members(self, group_id: str) -> list[RoomMember]:
        try:
            room_id = await self._names.room_id(group_id)
            member_ids = await self._names.member_ids(room_id, fresh=True)
            names = await self._names.member_names(room_id, member_ids)
            return [RoomMember(platform_id=m, name=name) for m, name in zip(member_ids, names, strict=True)]
        except CALL_ERRORS as exc:
            raise AdapterError(
                f"account {self.account}: listing members of {group_id} failed: {self._link.describe(exc)}"
            ) from exc

    # ------------------------------------------------------------------ EventListener

    def message_arrived(self, message_id: str) -> None:
        if self._queue is not None:
            self._queue.put_nowait(message_id)

    def payload_dirty(self, payload_type: Any, payload_id: str) -> None:
        self._names.forget(payload_type, payload_id)

    # ------------------------------------------------------------------ messages

    async def _work(self) -> None:
        assert self._queue is not None
        while not self._link.stopping:
            message_id = await self._queue.get()
            try:
                message = await self._convert(message_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception("account %s: converting message %s failed; skipped", self.account, message_id)
                continue
            if message is None or self._handler is None:
                continue
            try:
                await self._handler(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception(
                    "account %s: the message handler failed on %s message %s from %s (%s) in %s; going on",
                    self.account,
                    message.kind,
                    message.platform_id,
                    message.sender_name,
                    message.sender_id,
                    message.group_topic or "a private chat",
                )

    async def _convert(self, message_id: str) -> IncomingMessage | None:
        """The message as ours, ``None`` for the bot's own; OTHER with ``raw`` when its payload won't load."""
        for attempt in range(1, CONVERT_ATTEMPTS + 1):
            try:
                payload = await self._link.unary(lambda stub: stub.message_payload(id=message_id))
                break
            except grpclib.exceptions.GRPCError as exc:
                return self._unreadable(message_id, exc)
            except LINK_ERRORS as exc:
                if attempt == CONVERT_ATTEMPTS:
                    return self._unreadable(message_id, exc)
                await self._link.wait_logged_in()
        if convert.is_own(payload, self._link.self_id):
            return None
        room_id = payload.room_id or None
        url_link: str | None = None
        mini_program: str | None = None
        if convert.wire_type(int(payload.type)) == Wire.MINI_PROGRAM:
            mini = await self._link.best_effort(
                lambda stub: stub.message_mini_program(id=message_id), f"mini-program of {message_id}"
            )
            mini_program = mini.mini_program if mini is not None else None
        elif convert.message_kind(int(payload.type)) == MessageKind.LINK:
            link = await self._link.best_effort(lambda stub: stub.message_url(id=message_id), f"link of {message_id}")
            url_link = link.url_link if link is not None else None
        topic = await self._names.room_topic(room_id) if room_id else None
        sender_name = await self._names.sender_name(room_id, payload.from_id)
        mention_names: tuple[str, ...] = ()
        if room_id and payload.mention_ids:
            mention_names = tuple([await self._names.member_name(room_id, m) for m in payload.mention_ids])
        return convert.to_incoming(
            payload,
            account=self.account,
            message_id=message_id,
            received_at=datetime.now(UTC),
            topic=topic,
            sender_name=sender_name,
            mention_names=mention_names,
            url_link=url_link,
            mini_program=mini_program,
        )

    def _unreadable(self, message_id: str, exc: BaseException) -> IncomingMessage:
        reason = self._link.describe(exc)
        self._log.warning(
            "account %s: the payload of message %s did not load (%s); passing it on as OTHER",
            self.account,
            message_id,
            reason,
        )
        return convert.unreadable(message_id, account=self.account, reason=reason, received_at=datetime.now(UTC))

    def _image_file(self, image_path: str) -> Path:
        path = Path(image_path)
        if not path.is_absolute() and self.media_root is not None:
            path = self.media_root / path
        return path
