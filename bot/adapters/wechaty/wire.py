"""Wire facts of the Wechaty puppet-service protocol: numbers, limits and the errors of a call.

Verified against wechaty-puppet-service 1.19.9: message type numbers follow the TypeScript puppet
(Text=7, Image=6), *not* the ``MessageType`` enum of the Python stubs, so they are mapped with ``Wire``.
"""

from __future__ import annotations

import re
from enum import IntEnum

import grpclib.exceptions

from bot.adapters.base import AdapterError

RPC_TIMEOUT = 30.0
"""Seconds for one unary call (payloads, sending text)."""
VERIFY_TIMEOUT = 10.0
"""Seconds for the ``version`` call that checks endpoint, TLS and token."""
TRANSFER_TIMEOUT = 300.0
"""Seconds for one file transfer either way."""
UNARY_FILE_LIMIT = 2_500_000
"""Files up to this many bytes go as one base64 FileBox JSON (``MessageSendFile``); larger ones are
streamed: grpc-js servers refuse requests over 4 MB, and base64 adds a third."""
CHUNK = 64 * 1024
CACHE_TTL = 600.0
CACHE_SIZE = 5000
MEMBER_LOOKUPS = 8
"""Concurrent member-payload calls in ``room_members``."""
CONVERT_ATTEMPTS = 3
KEEPALIVE_TIME = 30.0
"""Seconds between HTTP/2 pings; a connection that does not answer one within 15 s is dropped and redialled
(a NAT or a gateway can lose a connection silently, and the event stream would wait forever)."""

TOKEN_OK = re.compile(r"^[\x21-\x7e]+$")
"""A token travels as gRPC metadata: printable ASCII, no spaces."""


class Wire(IntEnum):
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


class Event(IntEnum):
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


class PayloadType(IntEnum):
    """``dirty`` event payload types (TypeScript numbering)."""

    MESSAGE = 1
    CONTACT = 2
    ROOM = 3
    ROOM_MEMBER = 4


class WechatyConnectError(AdapterError):
    """The puppet service answered but cannot be used: wrong token, TLS mismatch, not a Wechaty service,
    or a malformed endpoint. Retrying will not help; the message names the endpoint and the cause."""


class Transient(Exception):
    """Nobody answered (refused, unreachable, timed out, busy): retry later."""


class NotConnected(Exception):
    pass


LINK_ERRORS = (
    NotConnected,
    OSError,
    TimeoutError,
    grpclib.exceptions.StreamTerminatedError,
    grpclib.exceptions.ProtocolError,
)
"""The connection broke (as opposed to the service answering with an error)."""
CALL_ERRORS = (*LINK_ERRORS, grpclib.exceptions.GRPCError)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); anything else is a ``WechatyConnectError``."""
    match = re.fullmatch(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<port>\d+)|(?P<host>[^:\s/\[\]]+):(?P<p>\d+)", endpoint)
    if not match:
        raise WechatyConnectError(f"Wechaty endpoint {endpoint!r} is not host:port (e.g. 127.0.0.1:8788)")
    host = match["v6"] or match["host"]
    port = int(match["port"] or match["p"])
    if not 0 < port < 65536:
        raise WechatyConnectError(f"Wechaty endpoint {endpoint!r}: port {port} is out of range")
    return host, port


def scrub(text: str, token: str) -> str:
    """Never let the token reach a log line or a health detail (services echo a rejected token)."""
    return text.replace(token, "***") if token else text


def describe(exc: BaseException, token: str) -> str:
    """A one-line reason for a failed call, without the token."""
    if isinstance(exc, grpclib.exceptions.GRPCError):
        return scrub(f"{exc.status.name}: {exc.message or ''}".rstrip(": "), token)
    text = str(exc) or type(exc).__name__
    return scrub(f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text, token)
