"""The typed application keys, the logged-in viewer and the helpers every view uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from aiohttp import web

from dashboards.ports import Broadcaster, ModelTeacher, Pipeline, Roster, RuleBench, RuleEditor, TicketActions
from dashboards.settings import DashboardSettings
from storage.engine import SessionFactory
from storage.repos import users as users_repo
from storage.repos.dashboard import Scope

Clock = Callable[[], datetime]

SESSION_FACTORY = web.AppKey("session_factory", SessionFactory)
SETTINGS = web.AppKey("settings", DashboardSettings)
TICKET_ACTIONS = web.AppKey("ticket_actions", TicketActions)
BROADCASTER = web.AppKey("broadcaster", Broadcaster)
RULE_BENCH = web.AppKey("rule_bench", RuleBench)
RULE_EDITOR = web.AppKey("rule_editor", RuleEditor)
PIPELINE = web.AppKey("pipeline", Pipeline)
MODEL_TEACHER = web.AppKey("model_teacher", ModelTeacher)
ROSTER = web.AppKey("roster", Roster)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
JINJA = web.AppKey("jinja", jinja2.Environment)

DISCIPLINE_ROLES = ("admin", "county_staff", "township_staff")
ROLES = (*DISCIPLINE_ROLES, "cadre")


@dataclass(frozen=True)
class Viewer:
    username: str
    display_name: str
    role: str
    county: str
    township: str
    village: str
    patrolled_to_flag_id: int
    csrf: str
    must_change_password: bool = False
    """A generated password (the first admin, a reset): every page but the password change is closed."""
    session_id: str = ""
    member_name: str = ""
    """The roster name of the person behind the login (a cadre), matched against tickets' assignees."""

    @property
    def discipline(self) -> bool:
        """Discipline staff (纪委): may see confidential tickets and clue flags, record verdicts."""
        return self.role in DISCIPLINE_ROLES

    @property
    def sees_numbers(self) -> bool:
        """May see phone and ID numbers unmasked."""
        return self.role == "admin"

    @property
    def manages_rules(self) -> bool:
        return self.role in ("admin", "county_staff")

    @property
    def manages_accounts(self) -> bool:
        return self.role == "admin"

    @property
    def manages_roster(self) -> bool:
        """Discipline staff keep the roster of their scope; cadres are supervised, not supervisors."""
        return self.discipline

    @property
    def scope(self) -> Scope:
        if self.role == "admin":
            return Scope()
        if self.role == "county_staff":
            return Scope(county=self.county)
        if self.role == "township_staff":
            return Scope(county=self.county, township=self.township)
        return Scope(county=self.county, township=self.township, village=self.village, confidential=False)

    @property
    def scope_name(self) -> str:
        if self.role == "admin":
            return "全部"
        parts = {"county_staff": [self.county], "township_staff": [self.county, self.township]}.get(
            self.role, [self.county, self.township, self.village]
        )
        return " ".join(p for p in parts if p) or "—"


VIEWER_KEY = web.RequestKey("viewer", Viewer)


def viewer(request: web.Request) -> Viewer:
    found = request.get(VIEWER_KEY)
    if not isinstance(found, Viewer):
        raise web.HTTPFound("/login")
    return found


def require(request: web.Request, allowed: bool) -> None:
    if not allowed:
        raise web.HTTPForbidden(text="无权访问")


def now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


async def audit(request: web.Request, action: str, target: str = "", detail: str = "", *, username: str = "") -> None:
    """Record one staff action in the audit log, in its own transaction."""
    who = username or viewer(request).username
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        await users_repo.add_audit(
            session, at=now(request), username=who, action=action, target=target, detail=detail[:2000]
        )


def render_fragment(request: web.Request, template: str, **context: Any) -> str:
    """A template rendered as text with what every page gets (viewer, CSRF token, settings, path, clock)."""
    env = request.app[JINJA]
    found = request.get(VIEWER_KEY)
    context.setdefault("viewer", found if isinstance(found, Viewer) else None)
    context.setdefault("csrf", found.csrf if isinstance(found, Viewer) else "")
    context.setdefault("settings", request.app[SETTINGS])
    context.setdefault("path", request.path)
    context.setdefault("now", now(request))
    return env.get_template(template).render(**context)


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    body = render_fragment(request, template, **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


MAX_ID = 2**31 - 1
"""The largest row id (PostgreSQL integer): a bigger number in a query string names nothing."""


def query_int(request: web.Request, name: str, *, default: int | None = None, low: int = 1) -> int | None:
    """A whole number from the query string, or ``default`` when it is absent, malformed or out of range."""
    raw = request.query.get(name, "").strip()
    if not raw or len(raw) > 12:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return value if low <= value <= MAX_ID else default
