"""Staff accounts: created by ``villagewatch user add``, ``make run``'s first admin and the users page.

Every rule about an account lives here, so the command line and the dashboard refuse the same things with
the same Chinese words: the scope a role needs, a scope that is not in the configured hierarchy, a short
password, disabling the last admin.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboards.context import ROLES
from dashboards.labels import STAFF_ROLES
from dashboards.security import hash_password, verify_password
from storage.engine import SessionFactory
from storage.models import StaffUser
from storage.repos import users as users_repo

MIN_PASSWORD = 8
LEVEL_NAMES = {"county": "县", "township": "镇", "village": "村"}
NEEDS = {
    "admin": (),
    "county_staff": ("county",),
    "township_staff": ("county", "township"),
    "cadre": ("county", "township", "village"),
}


class UserError(ValueError):
    """The account cannot be created or changed as asked; the message (Simplified Chinese) says why."""


@dataclass(frozen=True)
class Hierarchy:
    """The configured counties, townships and villages, as (county, township, village) triples.

    Empty when none is configured (a demo): then any scope is taken as given.
    """

    places: frozenset[tuple[str, str, str]] = frozenset()

    @classmethod
    def of(cls, places: Iterable[tuple[str, str, str]]) -> Hierarchy:
        return cls(frozenset((c, t, v) for c, t, v in places if c or t or v))

    def problem(self, *, county: str = "", township: str = "", village: str = "") -> str | None:
        """Why a county/township/village scope is not in the hierarchy (None: it is, or none is configured)."""
        if not self.places:
            return None
        if county and county not in {c for c, _t, _v in self.places}:
            return f"县“{county}”不在配置的县、镇、村中"
        if township and township not in {t for c, t, _v in self.places if not county or c == county}:
            return f"镇“{township}”不在配置中{f'“{county}”之下' if county else ''}"
        if village and village not in {
            v for c, t, v in self.places if (not county or c == county) and (not township or t == township)
        }:
            return f"村“{village}”不在配置中{f'“{township}”之下' if township else ''}"
        return None

    def counties(self) -> list[str]:
        return sorted({c for c, _t, _v in self.places if c})

    def townships(self) -> dict[str, list[str]]:
        """County → its townships, for the form's dependent menus."""
        out: dict[str, set[str]] = {}
        for c, t, _v in self.places:
            if t:
                out.setdefault(c, set()).add(t)
        return {c: sorted(ts) for c, ts in sorted(out.items())}

    def villages(self) -> dict[str, list[str]]:
        """Township → its villages."""
        out: dict[str, set[str]] = {}
        for _c, t, v in self.places:
            if v:
                out.setdefault(t, set()).add(v)
        return {t: sorted(vs) for t, vs in sorted(out.items())}


@dataclass(frozen=True)
class AccountScope:
    role: str
    county: str
    township: str
    village: str


def checked_scope(
    role: str, *, county: str, township: str, village: str, hierarchy: Hierarchy, flag_style: bool = False
) -> AccountScope:
    """The scope an account of ``role`` gets, or a UserError naming what is missing or unknown.

    ``flag_style`` names missing fields as command-line options (--county) instead of form fields (县).
    Levels below the role's are dropped (a county's staff have no township).
    """
    if not role:
        names = "、".join(f"{code}（{STAFF_ROLES[code]}）" for code in ROLES)
        raise UserError(f"请{'用 --role ' if flag_style else ''}指定角色：{names}")
    if role not in ROLES:
        names = "、".join(f"{code}（{STAFF_ROLES[code]}）" for code in ROLES)
        raise UserError(f"角色“{role}”不正确，应为 {names} 之一")
    county, township, village = county.strip(), township.strip(), village.strip()
    given = {"county": county, "township": township, "village": village}
    needs = NEEDS[role]
    missing = [level for level in needs if not given[level]]
    if missing:
        if flag_style:
            what = " ".join(f"--{level}" for level in missing)
        else:
            what = "、".join(LEVEL_NAMES[level] for level in missing)
        raise UserError(f"{STAFF_ROLES[role]}账号需要填写 {what}")
    kept = {level: given[level] if level in needs else "" for level in given}
    problem = hierarchy.problem(**kept)
    if problem is not None:
        hint = "；请核对 --county/--township/--village" if flag_style else "；请从列表中选择"
        raise UserError(problem + hint)
    return AccountScope(role=role, **kept)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"密码至少 {MIN_PASSWORD} 个字符")
    if len(password) > 256:
        raise UserError("密码不能超过 256 个字符")


def random_password() -> str:
    return secrets.token_urlsafe(12)


def _check_username(username: str) -> str:
    username = username.strip()
    if not username or len(username) > 64:
        raise UserError("用户名须为 1–64 个字符")
    if any(ch.isspace() or not ch.isprintable() for ch in username):
        raise UserError("用户名不能含空格或不可见字符")
    return username


async def add_user(
    session_factory: SessionFactory,
    *,
    username: str,
    password: str,
    role: str,
    county: str = "",
    township: str = "",
    village: str = "",
    display_name: str = "",
    hierarchy: Hierarchy | None = None,
    must_change: bool = False,
    flag_style: bool = False,
) -> None:
    username = _check_username(username)
    scope = checked_scope(
        role,
        county=county,
        township=township,
        village=village,
        hierarchy=hierarchy or Hierarchy(),
        flag_style=flag_style,
    )
    check_password(password)
    hashed = await asyncio.to_thread(hash_password, password)  # argon2 takes ~50 ms: never on the event loop
    async with session_factory() as session, session.begin():
        if await users_repo.get_user(session, username=username) is not None:
            raise UserError(f"账号 {username} 已存在")
        await users_repo.add_user(
            session,
            user=StaffUser(
                username=username,
                password_hash=hashed,
                display_name=display_name.strip()[:64] or username,
                role=scope.role,
                county=scope.county,
                township=scope.township,
                village=scope.village,
                created_at=datetime.now(UTC),
                must_change_password=must_change,
            ),
        )


async def _existing(session_factory: SessionFactory, username: str) -> StaffUser:
    async with session_factory() as session:
        user = await users_repo.get_user(session, username=username)
    if user is None:
        raise UserError(f"没有账号 {username}")
    return user


async def _admins_left(session_factory: SessionFactory, *, without: str) -> int:
    async with session_factory() as session:
        users = await users_repo.list_users(session)
    return sum(1 for u in users if u.role == "admin" and u.active and u.username != without)


async def update_user(
    session_factory: SessionFactory,
    *,
    username: str,
    role: str,
    county: str,
    township: str,
    village: str,
    display_name: str,
    hierarchy: Hierarchy,
    member_name: str = "",
) -> StaffUser:
    """Change an account's name, role, scope and roster name; returns the account as it was before."""
    before = await _existing(session_factory, username)
    scope = checked_scope(role, county=county, township=township, village=village, hierarchy=hierarchy)
    if before.role == "admin" and scope.role != "admin" and await _admins_left(session_factory, without=username) == 0:
        raise UserError("这是最后一个管理员账号，不能改为其他角色")
    async with session_factory() as session, session.begin():
        await users_repo.update_user(
            session,
            username=username,
            values={
                "display_name": display_name.strip()[:64] or username,
                "role": scope.role,
                "county": scope.county,
                "township": scope.township,
                "village": scope.village,
                "member_name": member_name.strip()[:64] or None,
            },
        )
    return before


async def set_active(session_factory: SessionFactory, *, username: str, active: bool) -> None:
    """Disable (every session of the account ends at once) or enable an account."""
    user = await _existing(session_factory, username)
    if not active and user.role == "admin" and await _admins_left(session_factory, without=username) == 0:
        raise UserError("这是最后一个可用的管理员账号，不能停用")
    async with session_factory() as session, session.begin():
        await users_repo.update_user(session, username=username, values={"active": active})
        if not active:
            await users_repo.delete_user_sessions(session, username=username)


async def set_password(
    session_factory: SessionFactory, *, username: str, password: str, must_change: bool = False
) -> None:
    """A new password for an account; its sessions end (a reset is also how a stolen session is cut off)."""
    check_password(password)
    await _existing(session_factory, username)
    hashed = await asyncio.to_thread(hash_password, password)
    async with session_factory() as session, session.begin():
        await users_repo.set_password_hash(session, username=username, password_hash=hashed, must_change=must_change)
        await users_repo.delete_user_sessions(session, username=username)


async def reset_password(session_factory: SessionFactory, *, username: str) -> str:
    """A generated password, shown once to whoever reset it; the user must change it at the next login."""
    password = random_password()
    await set_password(session_factory, username=username, password=password, must_change=True)
    return password


async def change_own_password(
    session_factory: SessionFactory, *, username: str, old: str, new: str, confirm: str, keep_session: str
) -> None:
    """The user's own change: the current password is asked again; other sessions of the user end."""
    user = await _existing(session_factory, username)
    if not await asyncio.to_thread(verify_password, user.password_hash, old):
        raise UserError("当前密码不正确")
    if new != confirm:
        raise UserError("两次输入的新密码不一致")
    if new == old:
        raise UserError("新密码不能与当前密码相同")
    check_password(new)
    hashed = await asyncio.to_thread(hash_password, new)
    async with session_factory() as session, session.begin():
        await users_repo.set_password_hash(session, username=username, password_hash=hashed, must_change=False)
        await users_repo.delete_other_sessions(session, username=username, keep_id=keep_session)


async def ensure_first_admin(session_factory: SessionFactory) -> tuple[str, str] | None:
    """Creates ``admin`` with a random password when there is no account yet; returns the login or None.

    The password is printed once at start-up and must be changed at the first login.
    """
    async with session_factory() as session:
        if await users_repo.count_users(session) > 0:
            return None
    password = random_password()
    await add_user(
        session_factory, username="admin", password=password, role="admin", display_name="管理员", must_change=True
    )
    return "admin", password
