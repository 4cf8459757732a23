"""One supervised gRPC connection to a puppet service: dialling, verifying, the event stream, reconnecting.

Health: STARTING until the first login, CONNECTED while the event stream is open and the account logged
in, RECONNECTING while the service is unreachable or the account logged out, FAILED while the service
answers but refuses us (token, TLS; the supervisor still retries every ``reconnect_max`` seconds, so a
renewed token recovers without a restart), STOPPED after ``stop()``.

The stubs' server-streaming helpers are async generators that are awkward to cancel, so the event stream
(and the file transfers in ``transfers``) use ``grpclib`` requests directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import grpclib.exceptions
from grpclib.client import Channel, Stream
from grpclib.config import Configuration
from grpclib.const import Cardinality, Status
from wechaty_grpc.wechaty import PuppetStub
from wechaty_grpc.wechaty import puppet as pb

from bot.adapters.base import AdapterHealth, AdapterState
from bot.adapters.wechaty.convert import event_payload, scan_url
from bot.adapters.wechaty.wire import (
    KEEPALIVE_TIME,
    RPC_TIMEOUT,
    VERIFY_TIMEOUT,
    Event,
    NotConnected,
    PayloadType,
    Transient,
    WechatyConnectError,
    describe,
    scrub,
)

T = TypeVar("T")


class EventListener(Protocol):
    """What the connection tells the adapter: a message arrived, a cached payload went stale."""

    def message_arrived(self, message_id: str) -> None: ...

    def payload_dirty(self, payload_type: Any, payload_id: str) -> None: ...


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
class Connection:
    channel: _Channel
    stub: PuppetStub


async def own_task(call: Coroutine[Any, Any, T]) -> T:
    """Run one gRPC call in a task of its own. When a connection drops, grpclib cancels every task inside
    a call on it and re-raises the cancellation as StreamTerminatedError; confined to this task, that
    never leaves a stray cancellation request on the caller's task (the bot's outbox, our worker)."""
    return await asyncio.create_task(call)


class Link:
    """The connection of one account: its state, the current channel, and the supervisor that holds the
    event stream and redials with backoff ``reconnect_min`` → ``reconnect_max``, each attempt on a fresh
    channel."""

    def __init__(
        self,
        account: str,
        *,
        endpoint: str,
        host: str,
        port: int,
        token: str,
        tls: bool,
        ssl_context: ssl.SSLContext | None,
        tls_server_name: str | None,
        reconnect_min: float,
        reconnect_max: float,
        log: logging.Logger,
        listener: EventListener,
    ) -> None:
        self.account = account
        self.endpoint = endpoint
        self._host, self._port = host, port
        self.token = token
        self.metadata = {"authorization": f"Wechaty {token}"}
        self.tls = tls or ssl_context is not None
        self._ssl_context = ssl_context
        self._tls_server_name = tls_server_name
        self.reconnect_min = max(0.05, reconnect_min)
        self.reconnect_max = max(self.reconnect_min, reconnect_max)
        self._log = log
        self._listener = listener

        self.state = AdapterState.STOPPED
        self.since = datetime.now(UTC)
        self.detail = "not started"
        self.conn: Connection | None = None
        self.logged_in: asyncio.Event | None = None
        self.stopping = False
        self.self_id: str | None = None
        self._last_warning: tuple[str, float] = ("", 0.0)

    # ------------------------------------------------------------------ state

    def health(self, adapter: str) -> AdapterHealth:
        return AdapterHealth(
            account=self.account, adapter=adapter, state=self.state, since=self.since, detail=self.detail
        )

    def set_state(self, state: AdapterState, detail: str) -> None:
        if state != self.state:
            self.since = datetime.now(UTC)
            self.state = state
        self.detail = self.scrub(detail)

    def scrub(self, text: str) -> str:
        return scrub(text, self.token)

    def describe(self, exc: BaseException) -> str:
        return describe(exc, self.token)

    # ------------------------------------------------------------------ calls

    def current(self) -> Connection:
        conn = self.conn
        if conn is None:
            raise NotConnected(f"not connected to {self.endpoint} ({self.detail})")
        return conn

    async def unary(self, call: Callable[[PuppetStub], Coroutine[Any, Any, T]]) -> T:
        return await own_task(call(self.current().stub))

    async def best_effort(self, call: Callable[[PuppetStub], Coroutine[Any, Any, T]], what: str) -> T | None:
        try:
            return await self.unary(call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.warning("account %s: could not load %s: %s", self.account, what, self.describe(exc))
            return None

    def request(
        self, route: str, cardinality: Cardinality, request_type: type[Any], reply_type: type[Any], *, timeout: float
    ) -> Stream[Any, Any]:
        """A raw grpclib stream on the current channel (file transfers)."""
        return self.current().channel.request(
            route, cardinality, request_type, reply_type, timeout=timeout, metadata=self.metadata
        )

    async def wait_logged_in(self) -> None:
        assert self.logged_in is not None
        await self.logged_in.wait()
        if self.stopping:
            raise asyncio.CancelledError

    # ------------------------------------------------------------------ connecting

    def _new_channel(self) -> _Channel:
        context: ssl.SSLContext | None = None
        if self.tls:
            context = self._ssl_context or ssl.create_default_context()
            context.set_alpn_protocols(["h2"])
        config = Configuration(
            _keepalive_time=KEEPALIVE_TIME,
            _keepalive_timeout=15.0,
            _keepalive_permit_without_calls=True,
            # The event stream only receives; without these grpclib stops pinging after two pings.
            _http2_max_pings_without_data=0,
            _http2_min_sent_ping_interval_without_data=KEEPALIVE_TIME,
            ssl_target_name_override=self._tls_server_name if context is not None else None,
        )
        return _Channel(self._host, self._port, ssl=context, config=config)

    async def connect(self) -> Connection:
        """A fresh channel whose ``version`` call succeeded, or ``Transient`` / ``WechatyConnectError``."""
        channel = self._new_channel()
        stub = PuppetStub(channel, timeout=RPC_TIMEOUT, metadata=self.metadata)
        try:
            async with asyncio.timeout(VERIFY_TIMEOUT):
                version = await own_task(stub.version())
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                channel.close()
                raise
            await channel.aclose()
            raise self._classify(exc) from exc
        self._log.info(
            "account %s: Wechaty puppet service at %s answers (puppet %s)",
            self.account,
            self.endpoint,
            version.version or "?",
        )
        return Connection(channel=channel, stub=stub)

    def _classify(self, exc: BaseException) -> Exception:
        where = f"account {self.account}: the Wechaty puppet service at {self.endpoint}"
        if isinstance(exc, grpclib.exceptions.GRPCError):
            detail = self.scrub(exc.message or "")
            if exc.status == Status.UNAUTHENTICATED:
                return WechatyConnectError(f"{where} rejected the token ({detail}); check the token variable")
            if exc.status == Status.PERMISSION_DENIED:
                return WechatyConnectError(f"{where} denied access ({detail}); is the token still valid?")
            if exc.status == Status.UNIMPLEMENTED:
                return WechatyConnectError(f"{where} is a gRPC server but not a Wechaty puppet service ({detail})")
            if exc.status in (Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.RESOURCE_EXHAUSTED):
                return Transient(f"{exc.status.name}: {detail}")
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
                if not self.tls
                else "TLS and HTTP/2 negotiated but the service hung up: is it a Wechaty puppet service?"
            )
            return WechatyConnectError(f"{where} accepted the connection but closed it ({exc}): {hint}")
        if isinstance(exc, TimeoutError):
            return Transient(f"no answer within {VERIFY_TIMEOUT:.0f} s")
        if isinstance(exc, OSError):
            return Transient(exc.strerror or str(exc) or type(exc).__name__)
        return WechatyConnectError(f"{where}: unexpected error {type(exc).__name__}: {self.scrub(str(exc))}")

    async def supervise(self, first: Connection | None) -> None:
        delay = self.reconnect_min
        conn = first
        while not self.stopping:
            if conn is None:
                try:
                    conn = await self.connect()
                except (WechatyConnectError, Transient) as exc:
                    self._note_failure(exc, delay)
                    await asyncio.sleep(self.reconnect_max if isinstance(exc, WechatyConnectError) else delay)
                    delay = min(delay * 2, self.reconnect_max)
                    continue
            try:
                reason = await self._run_session(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any loss of the stream is a reason to reconnect, never to exit
                reason = self.describe(exc)
                if isinstance(exc, grpclib.exceptions.GRPCError) and exc.status == Status.ALREADY_EXISTS:
                    reason += (
                        " — another client holds this service's event stream: is a second bot process "
                        "running with the same token?"
                    )
            finally:
                await self.drop(conn)
            conn = None
            if self.stopping:
                break
            if self.state == AdapterState.CONNECTED:  # it was working: start the backoff over
                delay = self.reconnect_min
            self.set_state(AdapterState.RECONNECTING, f"connection lost: {reason}")
            self._log.warning(
                "account %s: lost the Wechaty puppet service at %s (%s); reconnecting in %.1f s",
                self.account,
                self.endpoint,
                reason,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    def _note_failure(self, exc: Exception, delay: float) -> None:
        if isinstance(exc, WechatyConnectError):
            self.set_state(AdapterState.FAILED, str(exc))
            message = f"{exc}; retrying every {self.reconnect_max:.0f} s"
        else:
            self.set_state(AdapterState.RECONNECTING, f"{self.endpoint} not answering: {exc}")
            message = (
                f"account {self.account}: the Wechaty puppet service at {self.endpoint} is not "
                f"answering ({exc}); retrying in {delay:.1f} s"
            )
        # Say it at WARNING when the reason changes and once a minute while it lasts.
        last_reason, last_at = self._last_warning
        if str(exc) != last_reason or time.monotonic() - last_at > 60:
            self._last_warning = (str(exc), time.monotonic())
            self._log.log(logging.ERROR if isinstance(exc, WechatyConnectError) else logging.WARNING, "%s", message)
        else:
            self._log.debug("%s", message)

    async def _run_session(self, conn: Connection) -> str:
        """Hold the event stream until it ends; returns why it ended (raises on errors)."""
        starter: asyncio.Task[None] | None = None
        try:
            async with conn.channel.request(
                "/wechaty.Puppet/Event",
                Cardinality.UNARY_STREAM,
                pb.EventRequest,
                pb.EventResponse,
                metadata=self.metadata,
            ) as stream:
                await stream.send_message(pb.EventRequest(), end=True)
                self.conn = conn
                self.set_state(
                    self.state if self.state != AdapterState.FAILED else AdapterState.STARTING,
                    f"connected to {self.endpoint}; waiting for the WeChat login",
                )
                starter = asyncio.create_task(self._start_puppet(conn))
                async for event in stream:
                    self.on_event(event)
        finally:
            if starter is not None:
                starter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starter
        return "the service ended the event stream"

    async def _start_puppet(self, conn: Connection) -> None:
        """Ask the service to start its puppet (a no-op when it already runs), as official clients do."""
        try:
            await conn.stub.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.error(
                "account %s: the puppet service at %s could not start its puppet: %s",
                self.account,
                self.endpoint,
                self.describe(exc),
            )

    async def drop(self, conn: Connection | None = None) -> None:
        conn = conn or self.conn
        if self.conn is conn:
            self.conn = None
        if self.logged_in is not None:
            self.logged_in.clear()
        if conn is not None:
            await conn.channel.aclose()

    # ------------------------------------------------------------------ events

    def on_event(self, event: pb.EventResponse) -> None:
        kind = int(event.type)
        payload = event_payload(event.payload)
        if kind == Event.MESSAGE:
            message_id = payload.get("messageId")
            if message_id:
                self._listener.message_arrived(str(message_id))
        elif kind == Event.LOGIN:
            self.self_id = str(payload.get("contactId") or "") or None
            self.set_state(AdapterState.CONNECTED, f"logged in as {self.self_id} via {self.endpoint}")
            if self.logged_in is not None:
                self.logged_in.set()
            self._log.info("account %s: connected to %s, logged in as %s", self.account, self.endpoint, self.self_id)
        elif kind == Event.LOGOUT:
            if self.logged_in is not None:
                self.logged_in.clear()
            self.set_state(
                AdapterState.RECONNECTING,
                f"the WeChat account logged out ({payload.get('data', '')}); waiting for a new login",
            )
            self._log.error(
                "account %s: the WeChat account logged out of %s: %s",
                self.account,
                self.endpoint,
                payload.get("data", ""),
            )
        elif kind == Event.SCAN:
            self.set_state(self.state, f"waiting for a QR-code scan (status {payload.get('status')})")
            self._log.warning(
                "account %s: the WeChat account must log in: scan %s (status %s)",
                self.account,
                scan_url(str(payload.get("qrcode") or "")),
                payload.get("status"),
            )
        elif kind == Event.DIRTY:
            self._listener.payload_dirty(payload.get("payloadType"), str(payload.get("payloadId") or ""))
        elif kind in (Event.ROOM_TOPIC, Event.ROOM_JOIN, Event.ROOM_LEAVE):
            self._listener.payload_dirty(PayloadType.ROOM, str(payload.get("roomId") or ""))
        elif kind == Event.ERROR:
            self._log.warning(
                "account %s: the puppet service reports an error: %s",
                self.account,
                self.scrub(event.payload)[:500],
            )
        else:
            self._log.debug("account %s: event %s %s", self.account, kind, event.payload[:200])
