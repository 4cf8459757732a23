"""The health endpoint: adapters' connection state, the outbox backlog and the database, as JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from bot.adapters.base import Adapter, AdapterState
from bot.services import Services
from storage.repos import outbox as outbox_repo


def health_handler(
    services: Services, adapters: Mapping[str, Adapter]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        accounts = []
        for adapter in adapters.values():
            health = adapter.health()
            accounts.append(
                {
                    "account": health.account,
                    "adapter": health.adapter,
                    "state": str(health.state),
                    "since": health.since.isoformat(),
                    "detail": health.detail,
                }
            )
        try:
            async with services.sessions() as session:
                pending = await outbox_repo.pending_count(session)
            database = "ok"
        except Exception as exc:
            pending, database = -1, f"error: {type(exc).__name__}"
        ok = database == "ok" and all(a["state"] == str(AdapterState.CONNECTED) for a in accounts)
        reload_error = services.classifiers.last_error
        warnings = [f"规则重新加载失败,仍在使用版本 {services.classifiers.current.version}:{reload_error}"] * bool(
            reload_error
        )
        body = {
            # a failed rule reload is a warning, not an outage: the last good rules keep working
            "status": ("warning" if warnings else "ok") if ok else "degraded",
            "warnings": warnings,
            "rules_reload_error": reload_error,
            "accounts": accounts,
            "database": database,
            "outbox_pending": pending,
            "rules_version": services.classifiers.current.version,
            "handled": services.stats.total.get("handled", 0),
        }
        return web.json_response(body, status=200 if ok else 503)

    return handler
