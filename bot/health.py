"""The health endpoint: adapters' connection state, the outbox backlog, messages kept raw and the database,
as JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from bot.adapters.base import Adapter, AdapterState
from bot.services import Services
from storage.repos import messages as messages_repo
from storage.repos import outbox as outbox_repo


def classifier_state(services: Services) -> dict[str, object]:
    """Which model decides, or why the rules decide alone; the last failed reload, if any."""
    holder = services.classifiers
    clf = holder.current
    model = clf.model
    return {
        "mode": "model" if model is not None else "rules_only",
        "model_version": model.version if model is not None else None,
        "model_trained_at": model.meta.get("trained_at") if model is not None else None,
        "model_error": clf.model_error,
        "reload_error": holder.last_error,
    }


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
                kept_raw = await messages_repo.count_kept_raw(session)
            database = "ok"
        except Exception as exc:
            pending, kept_raw, database = -1, -1, f"error: {type(exc).__name__}"
        ok = database == "ok" and all(a["state"] == str(AdapterState.CONNECTED) for a in accounts)
        reload_error = services.classifiers.last_error
        warnings = [
            f"规则或模型重新加载失败,仍在使用版本 {services.classifiers.current.version}:{reload_error}"
        ] * bool(reload_error)
        if services.classifiers.current.model is None:
            # The bot still works, on the rules alone; staff should know the trained model is not deciding.
            warnings.append(f"分类模型不可用,仅用规则判定:{services.classifiers.current.model_error or '没有模型文件'}")
        today = services.clock.now().astimezone(services.workflow.service.tz).date()
        for year in services.workflow.service.calendar.unknown_years(today):
            # Deadlines in that year would count Monday to Friday and miss the official holidays.
            warnings.append(
                f"{year}年的法定节假日和调休安排尚未知道,办理期限暂按周一至周五计算;"
                "请在配置文件 [deadlines] 的 holidays 和 workdays 中补上"
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
            "classifier": classifier_state(services),
            # Stored as they came after failing every try: no flag, no ticket until staff re-run them
            # (`villagewatch reclassify --raw` or the dashboard's patrol page). Not "degraded": the bot
            # itself is fine, and a restart would not help.
            "kept_raw": kept_raw,
        }
        return web.json_response(body, status=200 if ok else 503)

    return handler
