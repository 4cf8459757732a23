"""WeChat through a Wechaty puppet service: one supervised gRPC connection per bot account.

This package is the only code that imports ``wechaty_grpc`` (Wechaty's official protocol stubs, grpclib +
betterproto) and talks gRPC; it converts everything into ``bot.messages`` types at once. The PyPI
``wechaty`` package is deliberately not used: it cannot download images over ~20 KB, swallows handler
exceptions and waits a fixed 60 s to reconnect (see the design notes).

Its parts:

* ``wire`` — protocol numbers (message, event and payload types), limits, the errors of a call;
* ``convert`` — pure functions from payloads to ``IncomingMessage`` (and a FileBox for sending);
* ``connection`` — ``Link``: dialling, the token/TLS check, the event stream, reconnection, health;
* ``names`` — room topics, member and contact names, resolving group names and mentions (cached);
* ``transfers`` — images and files down and up;
* ``sent`` — ``SentJournal``: what was sent by outbox dedupe key, so a re-send after a crash is dropped;
* ``adapter`` — ``WechatyAdapter``, which composes them into the ``bot.adapters.base.Adapter`` protocol.

Wire facts relied on (verified against wechaty-puppet-service 1.19.9): the token travels as
``authorization: Wechaty <token>`` metadata; the endpoint is always explicit (a token without an endpoint
would make other clients call an internet discovery service); one event stream per service (a second
client gets ``ALREADY_EXISTS``).
"""

from bot.adapters.wechaty.adapter import WechatyAdapter
from bot.adapters.wechaty.wire import WechatyConnectError

__all__ = ["WechatyAdapter", "WechatyConnectError"]
