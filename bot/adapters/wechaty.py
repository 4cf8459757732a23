"""WeChat through a Wechaty puppet service: one supervised gRPC connection per bot account.

This is the only module that imports ``wechaty_grpc`` (Wechaty's official protocol stubs, grpclib +
betterproto) and talks gRPC; it converts everything into ``bot.messages`` types at once. The PyPI
``wechaty`` package is deliberately not used: it cannot download images over ~20 KB, swallows handler
exceptions and waits a fixed 60 s to reconnect (see the design notes).

Wire facts this module relies on (verified against wechaty-puppet-service 1.19.9):

* the token travels as ``authorization: Wechaty <token>`` metadata; the endpoint is always explicit
  (a token without an endpoint would make other clients call an internet discovery service);
* message type numbers follow the TypeScript puppet (Text=7, Image=6), *not* the ``MessageType`` enum
  of the Python stubs, so they are mapped here with ``_Wire``;
* one event stream per service: a second client gets ``ALREADY_EXISTS``;
* the stubs' ``message_send_file_stream`` needs ``ServiceStub._stream_unary``, which betterproto 1.2.5
  does not have, and the stubs' server-streaming helpers are async generators that are awkward to
  cancel; the event stream and file transfers therefore use ``grpclib`` requests directly
  (``_run_session``, ``_read_stream``, ``_send_file``). No shim is needed for Python 3.11 itself.

Health: STARTING until the first login, CONNECTED while the event stream is open and the account logged
in, RECONNECTING while the service is unreachable or the account logged out, FAILED while the service
answers but refuses us (token, TLS; the supervisor still retries every ``reconnect_max`` seconds, so a
renewed token recovers without a restart), STOPPED after ``stop()``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import grpclib.exceptions
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.const import Cardinality, Status
from wechaty_grpc.wechaty import PuppetStub
from wechaty_grpc.wechaty import puppet as pb

from bot.adapters.base import AdapterError, AdapterHealth, AdapterState, MessageHandler
from bot.messages import IncomingMessage, MessageKind, OutgoingMessage, RoomMember

__all__ = ["WechatyAdapter", "WechatyConnectError"]

T = TypeVar("T")

_RPC_TIMEOUT = 30.0
"""Seconds for one unary call (payloads, sending text)."""
_VERIFY_TIMEOUT = 10.0
"""Seconds for the ``version`` call that checks endpoint, TLS and token."""
_TRANSFER_TIMEOUT = 300.0
"""Seconds for one file transfer either way."""
_UNARY_FILE_LIMIT = 2_500_000
"""Files up to this many bytes go as one base64 FileBox JSON (``MessageSendFile``); larger ones are
streamed: grpc-js servers refuse requests over 4 MB, and base64 adds a third."""
_CHUNK = 64 * 1024
_CACHE_TTL = 600.0
_CACHE_SIZE = 5000
_MEMBER_LOOKUPS = 8
"""Concurrent member-payload calls in ``room_members``."""
_CONVERT_ATTEMPTS = 3
_KEEPALIVE_TIME = 30.0
"""Seconds between HTTP/2 pings; a connection that does not answer one within 15 s is dropped and redialled
(a NAT or a gateway can lose a connection silently, and the event stream would wait forever)."""

# A quoted reply as puppets render it: 「高某林：路灯坏了」, a dashed line, then the reply.
_QUOTE = re.compile(r"^「(?P<quote>.*)」\n- - - - - - - - - - - - - - -\n(?P<reply>.*)$", re.DOTALL)
_TOKEN_OK = re.compile(r"^[\x21-\x7e]+$")


class WechatyConnectError(AdapterError):
    """The puppet service answered but cannot be used: wrong token, TLS mismatch, not a Wechaty service,
    or a malformed endpoint. Retrying will not help; the message names the endpoint and the cause."""


class _Wire(IntEnum):
    """Message types as numbered on the wire (the TypeScript ``wechaty-puppet`` enum)."""

    UNKNOWN = 0
    ATTACHMENT = 1
    AUDIO = 2
    CONTACT = 3
    CHAT_HISTORY = 4
    EMOTICON = 5
    IMAGE = 6
    TEXT = 7
    LOCATION = 8
    MINI_PROGRAM = 9
    GROUP_NOTE = 10
    TRANSFER = 11
    RED_ENVELOPE = 12
    RECALLED = 13
    URL = 14
    VIDEO = 15
    POST = 16


_KINDS = {
    _Wire.TEXT: MessageKind.TEXT,
    _Wire.IMAGE: MessageKind.IMAGE,
    _Wire.AUDIO: MessageKind.VOICE,
    _Wire.URL: MessageKind.LINK,
    _Wire.ATTACHMENT: MessageKind.FILE,
    _Wire.VIDEO: MessageKind.FILE,
}
_WITH_ATTACHMENT = {MessageKind.IMAGE, MessageKind.VOICE, MessageKind.FILE}


class _Event(IntEnum):
    """``EventResponse.type`` values."""

    HEARTBEAT = 1
    MESSAGE = 2
    DONG = 3
    ERROR = 16
    FRIENDSHIP = 17
    ROOM_INVITE = 18
    ROOM_JOIN = 19
    ROOM_LEAVE = 20
    ROOM_TOPIC = 21
    SCAN = 22
    READY = 23
    RESET = 24
    LOGIN = 25
    LOGOUT = 26
    DIRTY = 27


class _PayloadType(IntEnum):
    """``dirty`` event payload types (TypeScript numbering)."""

    MESSAGE = 1
    CONTACT = 2
    ROOM = 3
    ROOM_MEMBER = 4


class _Transient(Exception):
    """Nobody answered (refused, unreachable, timed out, busy): retry later."""


class _NotConnected(Exception):
    pass


_LINK_ERRORS = (
    _NotConnected,
    OSError,
    TimeoutError,
    grpclib.exceptions.StreamTerminatedError,
    grpclib.exceptions.ProtocolError,
)
"""The connection broke (as opposed to the service answering with an error)."""
_CALL_ERRORS = (*_LINK_ERRORS, grpclib.exceptions.GRPCError)


class _Channel(Channel):
    """A grpclib Channel whose sockets can be awaited until really closed.

    ``Channel.close()`` only starts closing (a TLS socket sends close_notify first) and grpclib offers
    no wait; an event loop that ends right after ``stop()`` would then leave a half-closed socket (a
    ResourceWarning). This hooks the protocol grpclib creates per connection (``_protocol_factory``).
    """

    def __init__(self, host: str, port: int, *, ssl: ssl.SSLContext | None, config: Configuration) -> None:
        super().__init__(host, port, ssl=ssl, config=config)
        self._live: set[object] = set()

    def _protocol_factory(self) -> Any:
        protocol = super()._protocol_factory()
        made, lost = protocol.connection_made, protocol.connection_lost

        def connection_made(transport: Any) -> None:
            self._live.add(protocol)
            made(transport)

        def connection_lost(exc: BaseException | None) -> None:
            self._live.discard(protocol)
            lost(exc)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol

    async def aclose(self, timeout: float = 2.0) -> None:
        self.close()
        deadline = time.monotonic() + timeout
        while self._live and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


@dataclass(slots=True)
class _Connection:
    channel: _Channel
    stub: PuppetStub


class _TtlCache:
    """A small dict with expiry, for contact, room and member payloads."""

    def __init__(self, ttl: float = _CACHE_TTL, size: int = _CACHE_SIZE) -> None:
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


def _parse_endpoint(endpoint: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<port>\d+)|(?P<host>[^:\s/\[\]]+):(?P<p>\d+)", endpoint)
    if not match:
        raise WechatyConnectError(f"Wechaty endpoint {endpoint!r} is not host:port (e.g. 127.0.0.1:8788)")
    host = match["v6"] or match["host"]
    port = int(match["port"] or match["p"])
    if not 0 < port < 65536:
        raise WechatyConnectError(f"Wechaty endpoint {endpoint!r}: port {port} is out of range")
    return host, port


def _to_datetime(timestamp: int) -> datetime:
    """Puppets send milliseconds (some seconds); 0 means unknown."""
    if timestamp <= 0:
        return datetime.now(UTC)
    seconds = timestamp / 1000 if timestamp > 100_000_000_000 else float(timestamp)
    return datetime.fromtimestamp(seconds, UTC)


async def _own_task(call: Coroutine[Any, Any, T]) -> T:
    """Run one gRPC call in a task of its own. When a connection drops, grpclib cancels every task inside
    a call on it and re-raises the cancellation as StreamTerminatedError; confined to this task, that
    never leaves a stray cancellation request on the caller's task (the bot's outbox, our worker)."""
    return await asyncio.create_task(call)


def _wire(value: int) -> _Wire | None:
    try:
        return _Wire(value)
    except ValueError:
        return None


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
    where relative image paths of outgoing messages live (the bot's media store).
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
    ) -> None:
        self.account = account
        self._endpoint = endpoint
        self._host, self._port = _parse_endpoint(endpoint)
        if not token or not _TOKEN_OK.match(token):
            raise WechatyConnectError(
                f"account {account}: the Wechaty token for {endpoint} is empty or has spaces or non-ASCII "
                "characters (it is sent as gRPC metadata)"
            )
        self._token = token
        self._metadata = {"authorization": f"Wechaty {token}"}
        self._tls = tls or ssl_context is not None
        self._ssl_context = ssl_context
        self._tls_server_name = tls_server_name
        self.media_root = media_root
        self._reconnect_min = max(0.05, reconnect_min)
        self._reconnect_max = max(self._reconnect_min, reconnect_max)
        self._log = logger or logging.getLogger(__name__)

        self._state = AdapterState.STOPPED
        self._since = datetime.now(UTC)
        self._detail = "not started"
        self._handler: MessageHandler | None = None
        self._conn: _Connection | None = None
        self._logged_in: asyncio.Event | None = None
        self._queue: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._self_id: str | None = None
        self._contacts = _TtlCache()
        self._rooms = _TtlCache()
        self._members = _TtlCache()
        self._member_lists = _TtlCache()
        """room id → list of member ids"""
        self._last_warning: tuple[str, float] = ("", 0.0)

    # ------------------------------------------------------------------ Adapter protocol

    async def start(self, on_message: MessageHandler) -> None:
        if self._tasks:
            raise AdapterError(f"account {self.account}: the Wechaty adapter is already started")
        self._handler = on_message
        self._stopping = False
        self._logged_in = asyncio.Event()
        self._queue = asyncio.Queue()
        self._set_state(AdapterState.STARTING, f"connecting to {self._endpoint}")
        first: _Connection | None = None
        try:
            first = await self._connect()
        except WechatyConnectError as exc:
            self._set_state(AdapterState.FAILED, str(exc))
            self._log.error("%s", exc)
            raise
        except _Transient as exc:
            self._set_state(AdapterState.RECONNECTING, f"{self._endpoint} not answering: {exc}")
            self._log.warning(
                "account %s: the Wechaty puppet service at %s is not answering (%s); "
                "retrying every %.0f-%.0f s in the background",
                self.account,
                self._endpoint,
                exc,
                self._reconnect_min,
                self._reconnect_max,
            )
        self._tasks = [
            asyncio.create_task(self._supervise(first), name=f"wechaty-supervisor-{self.account}"),
            asyncio.create_task(self._work(), name=f"wechaty-worker-{self.account}"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        if self._logged_in is not None:
            self._logged_in.set()  # wakes a worker waiting for a login; it sees _stopping and ends
        tasks, self._tasks = self._tasks, []
        # Worker first, while its calls' channel is still open; then the supervisor. grpclib turns a
        # cancellation that meets a closing connection into StreamTerminatedError, so cancel until done.
        for task in reversed(tasks):
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if not task.cancelled() and task.exception() is not None:
                self._log.error("account %s: %s ended with %r", self.account, task.get_name(), task.exception())
        await self._drop_connection()
        self._set_state(AdapterState.STOPPED, "stopped")

    def health(self) -> AdapterHealth:
        return AdapterHealth(
            account=self.account,
            adapter=self.adapter_name,
            state=self._state,
            since=self._since,
            detail=self._detail,
        )

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
        try:
            chat_id = await self._room_id(message.chat_id) if message.is_group else message.chat_id
            if message.text is not None:
                mentions = list(message.mention_ids)
                if message.is_group and (message.mention_ids or message.mention_names):
                    mentions = await self._mention_ids(chat_id, message.mention_ids, message.mention_names)
                reply = await self._unary(
                    lambda stub: stub.message_send_text(
                        conversation_id=chat_id, text=message.text or "", mentonal_ids=mentions
                    )
                )
                first_id = reply.id or None
            if message.image_path is not None:
                image_id = await self._send_file(chat_id, self._image_file(message.image_path))
                first_id = first_id or image_id
        except _CALL_ERRORS as exc:
            raise AdapterError(
                f"account {self.account}: sending to {message.chat_id} through {self._endpoint} failed: "
                f"{self._describe(exc)}"
            ) from exc
        return first_id

    async def download(self, message: IncomingMessage) -> bytes:
        if message.media is not None:
            return message.media
        ref = message.attachment_ref or message.platform_id
        try:
            data = b""
            if message.kind == MessageKind.IMAGE:
                try:
                    data = await self._read_stream(
                        "/wechaty.Puppet/MessageImageStream",
                        pb.MessageImageStreamRequest(id=ref, type=pb.ImageType.IMAGE_TYPE_HD),
                        pb.MessageImageStreamResponse,
                    )
                except grpclib.exceptions.GRPCError as exc:
                    self._log.info(
                        "account %s: image stream for %s failed (%s); trying the file stream",
                        self.account,
                        ref,
                        self._describe(exc),
                    )
            if not data:
                data = await self._read_stream(
                    "/wechaty.Puppet/MessageFileStream",
                    pb.MessageFileStreamRequest(id=ref),
                    pb.MessageFileStreamResponse,
                )
        except _CALL_ERRORS as exc:
            raise AdapterError(
                f"account {self.account}: downloading message {ref} from {self._endpoint} failed: {self._describe(exc)}"
            ) from exc
        if not data:
            raise AdapterError(f"account {self.account}: message {ref} has no downloadable content")
        return data

    async def room_members(self, group_id: str) -> list[RoomMember]:
        try:
            room_id = await self._room_id(group_id)
            member_ids = await self._member_ids(room_id, fresh=True)
            names = await self._member_names(room_id, member_ids)
            return [RoomMember(platform_id=m, name=name) for m, name in zip(member_ids, names, strict=True)]
        except _CALL_ERRORS as exc:
            raise AdapterError(
                f"account {self.account}: listing members of {group_id} failed: {self._describe(exc)}"
            ) from exc

    # ------------------------------------------------------------------ connection

    def _new_channel(self) -> _Channel:
        context: ssl.SSLContext | None = None
        if self._tls:
            context = self._ssl_context or ssl.create_default_context()
            context.set_alpn_protocols(["h2"])
        config = Configuration(
            _keepalive_time=_KEEPALIVE_TIME,
            _keepalive_timeout=15.0,
            _keepalive_permit_without_calls=True,
            # The event stream only receives; without these grpclib stops pinging after two pings.
            _http2_max_pings_without_data=0,
            _http2_min_sent_ping_interval_without_data=_KEEPALIVE_TIME,
            ssl_target_name_override=self._tls_server_name if context is not None else None,
        )
        return _Channel(self._host, self._port, ssl=context, config=config)

    async def _connect(self) -> _Connection:
        """A fresh channel whose ``version`` call succeeded, or ``_Transient`` / ``WechatyConnectError``."""
        channel = self._new_channel()
        stub = PuppetStub(channel, timeout=_RPC_TIMEOUT, metadata=self._metadata)
        try:
            async with asyncio.timeout(_VERIFY_TIMEOUT):
                version = await _own_task(stub.version())
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                channel.close()
                raise
            await channel.aclose()
            raise self._classify(exc) from exc
        self._log.info(
            "account %s: Wechaty puppet service at %s answers (puppet %s)",
            self.account,
            self._endpoint,
            version.version or "?",
        )
        return _Connection(channel=channel, stub=stub)

    def _classify(self, exc: BaseException) -> Exception:
        where = f"account {self.account}: the Wechaty puppet service at {self._endpoint}"
        if isinstance(exc, grpclib.exceptions.GRPCError):
            detail = self._scrub(exc.message or "")
            if exc.status == Status.UNAUTHENTICATED:
                return WechatyConnectError(f"{where} rejected the token ({detail}); check the token variable")
            if exc.status == Status.PERMISSION_DENIED:
                return WechatyConnectError(f"{where} denied access ({detail}); is the token still valid?")
            if exc.status == Status.UNIMPLEMENTED:
                return WechatyConnectError(f"{where} is a gRPC server but not a Wechaty puppet service ({detail})")
            if exc.status in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.RESOURCE_EXHAUSTED):
                return _Transient(f"{exc.status.name}: {detail}")
            return WechatyConnectError(f"{where} failed the version check: {exc.status.name} {detail}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return WechatyConnectError(
                f"{where}: its TLS certificate is not trusted ({exc.verify_message}); pass an ssl_context "
                "trusting its CA (and tls_server_name if the certificate names another host)"
            )
        if isinstance(exc, ssl.SSLError):
            hint = " — the service speaks plaintext: set tls = false" if "WRONG_VERSION" in str(exc) else ""
            return WechatyConnectError(f"{where}: TLS handshake failed ({exc.reason or exc}){hint}")
        if isinstance(exc, grpclib.exceptions.StreamTerminatedError | grpclib.exceptions.ProtocolError):
            hint = (
                "the service expects TLS (set tls = true), or it is not a gRPC service"
                if not self._tls
                else "TLS and HTTP/2 negotiated but the service hung up: is it a Wechaty puppet service?"
            )
            return WechatyConnectError(f"{where} accepted the connection but closed it ({exc}): {hint}")
        if isinstance(exc, TimeoutError):
            return _Transient(f"no answer within {_VERIFY_TIMEOUT:.0f} s")
        if isinstance(exc, OSError):
            return _Transient(exc.strerror or str(exc) or type(exc).__name__)
        return WechatyConnectError(f"{where}: unexpected error {type(exc).__name__}: {self._scrub(str(exc))}")

    async def _supervise(self, first: _Connection | None) -> None:
        delay = self._reconnect_min
        conn = first
        while not self._stopping:
            if conn is None:
                try:
                    conn = await self._connect()
                except (WechatyConnectError, _Transient) as exc:
                    self._note_failure(exc, delay)
                    await asyncio.sleep(self._reconnect_max if isinstance(exc, WechatyConnectError) else delay)
                    delay = min(delay * 2, self._reconnect_max)
                    continue
            try:
                reason = await self._run_session(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any loss of the stream is a reason to reconnect, never to exit
                reason = self._describe(exc)
                if isinstance(exc, grpclib.exceptions.GRPCError) and exc.status == Status.ALREADY_EXISTS:
                    reason += (
                        " — another client holds this service's event stream: is a second bot process "
                        "running with the same token?"
                    )
            finally:
                await self._drop_connection(conn)
            conn = None
            if self._stopping:
                break
            if self._state == AdapterState.CONNECTED:  # it was working: start the backoff over
                delay = self._reconnect_min
            self._set_state(AdapterState.RECONNECTING, f"connection lost: {reason}")
            self._log.warning(
                "account %s: lost the Wechaty puppet service at %s (%s); reconnecting in %.1f s",
                self.account,
                self._endpoint,
                reason,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    def _note_failure(self, exc: Exception, delay: float) -> None:
        if isinstance(exc, WechatyConnectError):
            self._set_state(AdapterState.FAILED, str(exc))
            message = f"{exc}; retrying every {self._reconnect_max:.0f} s"
        else:
            self._set_state(AdapterState.RECONNECTING, f"{self._endpoint} not answering: {exc}")
            message = (
                f"account {self.account}: the Wechaty puppet service at {self._endpoint} is not "
                f"answering ({exc}); retrying in {delay:.1f} s"
            )
        # Say it at WARNING when the reason changes and once a minute while it lasts.
        last_reason, last_at = self._last_warning
        if str(exc) != last_reason or time.monotonic() - last_at > 60:
            self._last_warning = (str(exc), time.monotonic())
            self._log.log(logging.ERROR if isinstance(exc, WechatyConnectError) else logging.WARNING, "%s", message)
        else:
            self._log.debug("%s", message)

    async def _run_session(self, conn: _Connection) -> str:
        """Hold the event stream until it ends; returns why it ended (raises on errors)."""
        starter: asyncio.Task[None] | None = None
        try:
            async with conn.channel.request(
                "/wechaty.Puppet/Event",
                Cardinality.UNARY_STREAM,
                pb.EventRequest,
                pb.EventResponse,
                metadata=self._metadata,
            ) as stream:
                await stream.send_message(pb.EventRequest(), end=True)
                self._conn = conn
                self._set_state(
                    self._state if self._state != AdapterState.FAILED else AdapterState.STARTING,
                    f"connected to {self._endpoint}; waiting for the WeChat login",
                )
                starter = asyncio.create_task(self._start_puppet(conn))
                async for event in stream:
                    self._on_event(event)
        finally:
            if starter is not None:
                starter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starter
        return "the service ended the event stream"

    async def _start_puppet(self, conn: _Connection) -> None:
        """Ask the service to start its puppet (a no-op when it already runs), as official clients do."""
        try:
            await conn.stub.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.error(
                "account %s: the puppet service at %s could not start its puppet: %s",
                self.account,
                self._endpoint,
                self._describe(exc),
            )

    async def _drop_connection(self, conn: _Connection | None = None) -> None:
        conn = conn or self._conn
        if self._conn is conn:
            self._conn = None
        if self._logged_in is not None:
            self._logged_in.clear()
        if conn is not None:
            await conn.channel.aclose()

    # ------------------------------------------------------------------ events

    def _on_event(self, event: pb.EventResponse) -> None:
        kind = int(event.type)
        try:
            payload = json.loads(event.payload) if event.payload else {}
        except ValueError:
            payload = {"raw": event.payload}
        if not isinstance(payload, dict):
            payload = {"raw": payload}
        if kind == _Event.MESSAGE:
            message_id = payload.get("messageId")
            if message_id and self._queue is not None:
                self._queue.put_nowait(str(message_id))
        elif kind == _Event.LOGIN:
            self._self_id = str(payload.get("contactId") or "") or None
            self._set_state(AdapterState.CONNECTED, f"logged in as {self._self_id} via {self._endpoint}")
            if self._logged_in is not None:
                self._logged_in.set()
            self._log.info("account %s: connected to %s, logged in as %s", self.account, self._endpoint, self._self_id)
        elif kind == _Event.LOGOUT:
            if self._logged_in is not None:
                self._logged_in.clear()
            self._set_state(
                AdapterState.RECONNECTING,
                f"the WeChat account logged out ({payload.get('data', '')}); waiting for a new login",
            )
            self._log.error(
                "account %s: the WeChat account logged out of %s: %s",
                self.account,
                self._endpoint,
                payload.get("data", ""),
            )
        elif kind == _Event.SCAN:
            qrcode = payload.get("qrcode") or ""
            self._set_state(self._state, f"waiting for a QR-code scan (status {payload.get('status')})")
            self._log.warning(
                "account %s: the WeChat account must log in: scan %s (status %s)",
                self.account,
                f"https://wechaty.js.org/qrcode/{qrcode}" if qrcode else "the QR code",
                payload.get("status"),
            )
        elif kind == _Event.DIRTY:
            self._forget(payload.get("payloadType"), str(payload.get("payloadId") or ""))
        elif kind in (_Event.ROOM_TOPIC, _Event.ROOM_JOIN, _Event.ROOM_LEAVE):
            self._forget(_PayloadType.ROOM, str(payload.get("roomId") or ""))
        elif kind == _Event.ERROR:
            self._log.warning(
                "account %s: the puppet service reports an error: %s",
                self.account,
                self._scrub(event.payload)[:500],
            )
        else:
            self._log.debug("account %s: event %s %s", self.account, kind, event.payload[:200])

    def _forget(self, payload_type: Any, payload_id: str) -> None:
        if payload_type == _PayloadType.CONTACT:
            self._contacts.drop(lambda key: key == payload_id)
            self._members.drop(lambda key: key[1] == payload_id)
        elif payload_type in (_PayloadType.ROOM, _PayloadType.ROOM_MEMBER):
            self._rooms.drop(lambda key: key == payload_id)
            self._members.drop(lambda key: key[0] == payload_id)
            self._member_lists.drop(lambda key: key == payload_id)

    # ------------------------------------------------------------------ messages

    async def _work(self) -> None:
        assert self._queue is not None
        while not self._stopping:
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
        for attempt in range(1, _CONVERT_ATTEMPTS + 1):
            try:
                payload = await self._unary(lambda stub: stub.message_payload(id=message_id))
                break
            except grpclib.exceptions.GRPCError as exc:
                return self._unreadable(message_id, exc)
            except _LINK_ERRORS as exc:
                if attempt == _CONVERT_ATTEMPTS:
                    return self._unreadable(message_id, exc)
                await self._wait_logged_in()
        sender_id = payload.from_id
        if self._self_id and sender_id == self._self_id:
            return None
        room_id = payload.room_id or None
        wire = _wire(int(payload.type))
        kind = _KINDS.get(wire, MessageKind.OTHER) if wire is not None else MessageKind.OTHER
        # Built by hand: betterproto's to_dict() would name the type with the stubs' (wrong) enum.
        raw_payload: dict[str, Any] = {
            "id": payload.id,
            "type": int(payload.type),
            "wireType": wire.name if wire is not None else f"TYPE_{int(payload.type)}",
            "talkerId": sender_id,
            "roomId": payload.room_id,
            "listenerId": payload.to_id,
            "text": payload.text,
            "mentionIds": list(payload.mention_ids),
            "filename": payload.filename,
            "timestamp": int(payload.timestamp),
        }
        text = payload.text or ""
        quote_text: str | None = None
        if kind == MessageKind.TEXT and (quoted := _QUOTE.match(text)):
            quote_text, text = quoted["quote"], quoted["reply"]
        elif kind == MessageKind.LINK:
            link = await self._best_effort(lambda stub: stub.message_url(id=message_id), f"link of {message_id}")
            if link is not None and link.url_link:
                with contextlib.suppress(ValueError):
                    raw_payload["urlLink"] = json.loads(link.url_link)
                details = raw_payload.get("urlLink") or {}
                if isinstance(details, dict):
                    parts = [details.get("title"), details.get("description"), details.get("url")]
                    text = "\n".join(str(part) for part in parts if part) or text
        topic = await self._room_topic(room_id) if room_id else None
        sender_name = await self._sender_name(room_id, sender_id)
        mention_ids = tuple(payload.mention_ids)
        mention_names: tuple[str, ...] = ()
        if room_id and mention_ids:
            mention_names = tuple([await self._member_name(room_id, m) for m in mention_ids])
        with_attachment = kind in _WITH_ATTACHMENT
        return IncomingMessage(
            platform_id=payload.id or message_id,
            account=self.account,
            at=_to_datetime(int(payload.timestamp)),
            kind=kind,
            text=text,
            sender_id=sender_id,
            sender_name=sender_name,
            group_id=room_id,
            group_topic=topic,
            mention_ids=mention_ids,
            mention_names=mention_names,
            quote_text=quote_text,
            attachment_ref=message_id if with_attachment else None,
            attachment_name=(payload.filename or None) if with_attachment else None,
            raw=json.dumps(raw_payload, ensure_ascii=False),
        )

    def _unreadable(self, message_id: str, exc: BaseException) -> IncomingMessage:
        reason = self._describe(exc)
        self._log.warning(
            "account %s: the payload of message %s did not load (%s); passing it on as OTHER",
            self.account,
            message_id,
            reason,
        )
        return IncomingMessage(
            platform_id=message_id,
            account=self.account,
            at=datetime.now(UTC),
            kind=MessageKind.OTHER,
            text="",
            sender_id="",
            sender_name="",
            raw=json.dumps({"messageId": message_id, "error": reason}, ensure_ascii=False),
        )

    async def _room_topic(self, room_id: str) -> str | None:
        cached = self._rooms.get(room_id)
        if cached is not None:
            return str(cached)
        room = await self._best_effort(lambda stub: stub.room_payload(id=room_id), f"room {room_id}")
        if room is None:
            return None
        self._rooms.put(room_id, room.topic)
        return room.topic

    async def _contact_name(self, contact_id: str) -> str:
        cached = self._contacts.get(contact_id)
        if cached is not None:
            return str(cached)
        contact = await self._best_effort(lambda stub: stub.contact_payload(id=contact_id), f"contact {contact_id}")
        if contact is None:
            return contact_id
        name = contact.name or contact.alias or contact_id
        self._contacts.put(contact_id, name)
        return name

    async def _member_name(self, room_id: str, contact_id: str) -> str:
        """The name shown in the group: the member's group nickname, else the contact's name."""
        cached = self._members.get((room_id, contact_id))
        if cached is not None:
            return str(cached)
        member = await self._best_effort(
            lambda stub: stub.room_member_payload(id=room_id, member_id=contact_id),
            f"member {contact_id} of {room_id}",
        )
        name = (member.room_alias or member.name) if member is not None else ""
        if not name:
            name = await self._contact_name(contact_id)
        elif member is not None:
            self._members.put((room_id, contact_id), name)
        return name

    async def _sender_name(self, room_id: str | None, sender_id: str) -> str:
        if not sender_id:
            return ""
        if room_id:
            return await self._member_name(room_id, sender_id)
        return await self._contact_name(sender_id)

    async def _member_ids(self, room_id: str, *, fresh: bool = False) -> list[str]:
        cached = None if fresh else self._member_lists.get(room_id)
        if cached is None:
            reply = await self._unary(lambda stub: stub.room_member_list(id=room_id))
            cached = list(reply.member_ids)
            self._member_lists.put(room_id, cached)
        return list(cached)

    async def _member_names(self, room_id: str, member_ids: list[str]) -> list[str]:
        limit = asyncio.Semaphore(_MEMBER_LOOKUPS)

        async def one(member_id: str) -> str:
            async with limit:
                return await self._member_name(room_id, member_id)

        return list(await asyncio.gather(*(one(m) for m in member_ids)))

    async def _room_id(self, chat_id: str) -> str:
        """``chat_id`` itself when it is a room id, else the id of the one room with that topic."""
        if self._rooms.get(chat_id) is not None:
            return chat_id
        try:
            room = await self._unary(lambda stub: stub.room_payload(id=chat_id))
        except grpclib.exceptions.GRPCError:
            room = None
        if room is not None and room.id:
            self._rooms.put(chat_id, room.topic)
            return chat_id
        rooms = await self._unary(lambda stub: stub.room_list())
        matches = [room_id for room_id in rooms.ids if await self._room_topic(room_id) == chat_id]
        if len(matches) != 1:
            how = "no group" if not matches else f"{len(matches)} groups"
            raise AdapterError(f"account {self.account}: {how} with the id or name {chat_id!r}")
        return matches[0]

    async def _mention_ids(
        self, room_id: str, mention_ids: tuple[str, ...], mention_names: tuple[str, ...]
    ) -> list[str]:
        try:
            members = await self._member_ids(room_id)
        except _CALL_ERRORS as exc:
            self._log.warning(
                "account %s: members of %s unknown (%s); mentions sent as given",
                self.account,
                room_id,
                self._describe(exc),
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
                for candidate, candidate_name in zip(members, await self._member_names(room_id, members), strict=True):
                    names.setdefault(candidate_name, []).append(candidate)
            found = names.get(name or member_id, [])
            if len(found) == 1:
                resolved.append(found[0])
            else:
                self._log.info(
                    "account %s: cannot @%s in %s (%s); mentioned by name only",
                    self.account,
                    name or member_id,
                    room_id,
                    "no such member" if not found else "name not unique",
                )
        return list(dict.fromkeys(resolved))

    def _image_file(self, image_path: str) -> Path:
        path = Path(image_path)
        if not path.is_absolute() and self.media_root is not None:
            path = self.media_root / path
        return path

    # ------------------------------------------------------------------ calls

    async def _unary(self, call: Callable[[PuppetStub], Coroutine[Any, Any, T]]) -> T:
        conn = self._conn
        if conn is None:
            raise _NotConnected(f"not connected to {self._endpoint} ({self._detail})")
        return await _own_task(call(conn.stub))

    async def _best_effort(self, call: Callable[[PuppetStub], Coroutine[Any, Any, T]], what: str) -> T | None:
        try:
            return await self._unary(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.warning("account %s: could not load %s: %s", self.account, what, self._describe(exc))
            return None

    async def _wait_logged_in(self) -> None:
        assert self._logged_in is not None
        await self._logged_in.wait()
        if self._stopping:
            raise asyncio.CancelledError

    async def _read_stream(self, route: str, request: Any, reply_type: type[Any]) -> bytes:
        """All data chunks of a server-streamed FileBox (``MessageImageStream``/``MessageFileStream``)."""
        conn = self._conn
        if conn is None:
            raise _NotConnected(f"not connected to {self._endpoint} ({self._detail})")

        async def read() -> bytes:
            data = bytearray()
            async with conn.channel.request(
                route,
                Cardinality.UNARY_STREAM,
                type(request),
                reply_type,
                timeout=_TRANSFER_TIMEOUT,
                metadata=self._metadata,
            ) as stream:
                await stream.send_message(request, end=True)
                async for reply in stream:
                    data += reply.file_box_chunk.data
            return bytes(data)

        return await _own_task(read())

    async def _send_file(self, chat_id: str, path: Path) -> str | None:
        data = await asyncio.to_thread(path.read_bytes)
        name = path.name
        if len(data) <= _UNARY_FILE_LIMIT:
            filebox = json.dumps(
                # boxType: the pre-1.0 FileBox spelling of `type`, for older services.
                {"type": 1, "boxType": 1, "base64": base64.b64encode(data).decode("ascii"), "name": name},
                ensure_ascii=False,
            )
            reply = await self._unary(lambda stub: stub.message_send_file(conversation_id=chat_id, filebox=filebox))
            return reply.id or None
        conn = self._conn
        if conn is None:
            raise _NotConnected(f"not connected to {self._endpoint} ({self._detail})")
        request_type = pb.MessageSendFileStreamRequest

        async def upload() -> str | None:
            # Conversation id, then a chunk with the file name, then data chunks (the service's order).
            async with conn.channel.request(
                "/wechaty.Puppet/MessageSendFileStream",
                Cardinality.STREAM_UNARY,
                request_type,
                pb.MessageSendFileStreamResponse,
                timeout=_TRANSFER_TIMEOUT,
                metadata=self._metadata,
            ) as stream:
                await stream.send_message(request_type(conversation_id=chat_id))
                await stream.send_message(request_type(file_box_chunk=pb.FileBoxChunk(name=name)))
                for offset in range(0, len(data), _CHUNK):
                    chunk = pb.FileBoxChunk(data=data[offset : offset + _CHUNK])
                    await stream.send_message(request_type(file_box_chunk=chunk))
                await stream.end()
                reply = await stream.recv_message()
            return (reply.id or None) if reply is not None else None

        return await _own_task(upload())

    # ------------------------------------------------------------------ state

    def _set_state(self, state: AdapterState, detail: str) -> None:
        if state != self._state:
            self._since = datetime.now(UTC)
            self._state = state
        self._detail = self._scrub(detail)

    def _scrub(self, text: str) -> str:
        """Never let the token reach a log line or a health detail (services echo a rejected token)."""
        return text.replace(self._token, "***") if self._token else text

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, grpclib.exceptions.GRPCError):
            return self._scrub(f"{exc.status.name}: {exc.message or ''}".rstrip(": "))
        text = str(exc) or type(exc).__name__
        return self._scrub(f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text)
