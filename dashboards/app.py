"""The dashboard application: ``create_app`` wires the dependencies it is given; nothing is global."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from dashboards import (
    auth,
    views_admin,
    views_banquets,
    views_broadcast,
    views_bulk,
    views_digest,
    views_exports,
    views_images,
    views_model,
    views_roster,
    views_rules,
    views_search,
    views_stats,
    views_tickets,
    views_users,
    views_voice,
)
from dashboards.context import (
    BROADCASTER,
    CLOCK,
    JINJA,
    MODEL_TEACHER,
    PIPELINE,
    ROSTER,
    RULE_BENCH,
    RULE_EDITOR,
    SESSION_FACTORY,
    SETTINGS,
    TICKET_ACTIONS,
    Clock,
    render,
)
from dashboards.ports import Broadcaster, ModelTeacher, Pipeline, Roster, RuleBench, RuleEditor, TicketActions
from dashboards.settings import DashboardSettings
from dashboards.templating import make_env
from storage.engine import SessionFactory

STATIC = Path(__file__).with_name("static")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@web.middleware
async def error_pages(request: web.Request, handler: auth.Handler) -> web.StreamResponse:
    """Friendly Chinese pages for 403/404 instead of aiohttp's English text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status in (400, 403, 404, 405) and request.method == "GET" and not request.path.startswith("/static/"):
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else ""
            return render(request, "error.html", status=exc.status, code=exc.status, message=message)
        raise


async def _freeze_gc(_app: web.Application) -> None:
    """Move everything allocated at start-up (modules, templates) out of the garbage collector's way.

    Without it a full collection walks every imported module's objects and stalls a request by ~150 ms on a
    small machine; with it only objects made after start-up are scanned. The caches that fill during the
    first requests (compiled SQL, compiled templates) are frozen again by :func:`_refreeze_after_warmup`.
    """
    gc.collect()
    gc.freeze()


@dataclass
class _Warmup:
    requests: int = 0


WARMUP = web.AppKey("warmup", _Warmup)
REFREEZE_AT = (50, 500)


@web.middleware
async def _refreeze_after_warmup(request: web.Request, handler: auth.Handler) -> web.StreamResponse:
    state = request.app[WARMUP]
    state.requests += 1
    if state.requests in REFREEZE_AT:
        gc.collect()
        gc.freeze()
    return await handler(request)


def create_app(
    *,
    session_factory: SessionFactory,
    settings: DashboardSettings,
    ticket_actions: TicketActions,
    broadcaster: Broadcaster,
    rule_bench: RuleBench,
    pipeline: Pipeline,
    model_teacher: ModelTeacher,
    roster: Roster | None = None,
    rule_editor: RuleEditor | None = None,
    clock: Clock = _utc_now,
) -> web.Application:
    app = web.Application(
        middlewares=[auth.security_headers, error_pages, auth.require_login],
        client_max_size=settings.max_upload_bytes + 64 * 1024,
    )
    app[SESSION_FACTORY] = session_factory
    app[SETTINGS] = settings
    app[TICKET_ACTIONS] = ticket_actions
    app[BROADCASTER] = broadcaster
    app[RULE_BENCH] = rule_bench
    app[PIPELINE] = pipeline
    app[MODEL_TEACHER] = model_teacher
    if roster is not None:
        app[ROSTER] = roster
    if rule_editor is not None:
        app[RULE_EDITOR] = rule_editor
    app[CLOCK] = clock
    app[JINJA] = make_env(settings)
    app[WARMUP] = _Warmup()
    app.on_response_prepare.append(auth.headers_on_prepare)
    if settings.freeze_gc:
        app.on_startup.append(_freeze_gc)
        app.middlewares.append(_refreeze_after_warmup)
    app.add_routes(
        [
            web.get("/login", auth.login_page),
            web.post("/login", auth.login_submit),
            web.post("/logout", auth.logout),
            web.get("/", views_admin.home),
            web.get("/digest", views_digest.digest),
            web.post("/digest/mark", views_digest.mark_patrolled),
            web.post("/kept-raw/rerun", views_digest.rerun_kept_raw),
            web.get("/flags/{flag_id:\\d{1,9}}", views_digest.flag_page),
            web.post("/flags/{flag_id:\\d{1,9}}/verdict", views_digest.record_verdict),
            web.post("/flags/{flag_id:\\d{1,9}}/labels", views_model.correct_flag),
            web.get("/messages/{message_id:\\d{1,9}}/label", views_model.label_message_page),
            web.get("/messages/{message_id:\\d{1,9}}/image", views_images.message_image),
            web.post("/messages/{message_id:\\d{1,9}}/label", views_model.label_message),
            web.get("/messages/{message_id:\\d{1,9}}/voice", views_voice.voice_audio),
            web.post("/messages/{message_id:\\d{1,9}}/transcript", views_voice.save_transcript),
            web.post("/messages/{message_id:\\d{1,9}}/ticket", views_search.open_ticket),
            web.get("/search", views_search.search_page),
            web.get("/model", views_model.model_page),
            web.post("/model/retrain", views_model.retrain),
            web.get("/banquets", views_banquets.banquets_page),
            web.get("/tickets", views_tickets.board),
            web.post("/tickets/bulk", views_bulk.bulk),
            web.get("/tickets/{ticket_id:\\d{1,9}}", views_tickets.ticket_page),
            web.post("/tickets/{ticket_id:\\d{1,9}}/{action:[a-z]+}", views_tickets.ticket_action),
            web.get("/tickets/{ticket_id:\\d{1,9}}/photos/{photo_id:\\d{1,9}}", views_tickets.ticket_photo),
            web.get("/stats", views_stats.stats),
            web.get("/broadcasts", views_broadcast.broadcasts),
            web.post("/broadcasts", views_broadcast.send_broadcast),
            web.post("/broadcasts/preview", views_broadcast.preview),
            web.get("/broadcasts/{broadcast_id:\\d{1,9}}", views_broadcast.broadcast_page),
            web.post("/broadcasts/{broadcast_id:\\d{1,9}}/cancel", views_broadcast.cancel_broadcast),
            web.get("/exports", views_exports.exports_page),
            web.get("/exports/tickets.xlsx", views_exports.export_tickets),
            web.get("/exports/flags.xlsx", views_exports.export_flags),
            web.get("/rules", views_rules.rules_page),
            web.post("/rules/{rule_id}/shadow", views_rules.set_shadow),
            web.get("/rules/new", views_rules.new_rule_page),
            web.get("/rules/versions", views_rules.versions_page),
            web.post("/rules/versions/{version_id:\\d{1,9}}/rollback", views_rules.rollback),
            web.get("/rules/rule/{rule_id:[A-Za-z0-9_.\\-]{1,100}}", views_rules.rule_page),
            web.post("/rules/preview", views_rules.preview),
            web.post("/rules/save", views_rules.save),
            web.get("/bench", views_rules.bench_page),
            web.post("/bench", views_rules.bench_run),
            web.get("/audit", views_admin.audit_page),
            web.get("/roster", views_roster.roster_page),
            web.get("/roster.csv", views_roster.export_roster),
            web.post("/roster/preview", views_roster.preview),
            web.post("/roster/apply", views_roster.apply),
            web.post("/roster/members/{member_id:\\d{1,9}}/assign", views_roster.assign),
            web.get("/password", views_users.password_page),
            web.post("/password", views_users.change_password),
            web.get("/users", views_users.users_page),
            web.post("/users", views_users.add_user),
            web.get("/users/{username:[^/]{1,64}}", views_users.edit_page),
            web.post("/users/{username:[^/]{1,64}}", views_users.edit_user),
            web.post("/users/{username:[^/]{1,64}}/active", views_users.set_active),
            web.post("/users/{username:[^/]{1,64}}/password", views_users.reset_password),
            web.static("/static", STATIC, append_version=False),
        ]
    )
    return app
