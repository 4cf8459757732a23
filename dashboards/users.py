"""Staff accounts, for the ``villagewatch user add`` command and for ``make run``'s first admin."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from dashboards.context import ROLES
from dashboards.security import hash_password
from storage.engine import SessionFactory
from storage.models import StaffUser
from storage.repos import users as users_repo


class UserError(ValueError):
    """The account cannot be created as asked; the message says why."""


def random_password() -> str:
    return secrets.token_urlsafe(12)


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
) -> None:
    username = username.strip()
    if not username or len(username) > 64:
        raise UserError("用户名须为 1–64 个字符")
    if role not in ROLES:
        raise UserError(f"角色须为 {', '.join(ROLES)} 之一")
    if len(password) < 8:
        raise UserError("密码至少 8 个字符")
    needs = {
        "county_staff": ["county"],
        "township_staff": ["county", "township"],
        "cadre": ["county", "township", "village"],
    }.get(role, [])
    given = {"county": county, "township": township, "village": village}
    missing = [level for level in needs if not given[level]]
    if missing:
        raise UserError(f"角色 {role} 需要填写 --{' --'.join(missing)}")
    hashed = await asyncio.to_thread(hash_password, password)  # argon2 takes ~50 ms: never on the event loop
    async with session_factory() as session, session.begin():
        if await users_repo.get_user(session, username=username) is not None:
            raise UserError(f"账号 {username} 已存在")
        await users_repo.add_user(
            session,
            user=StaffUser(
                username=username,
                password_hash=hashed,
                display_name=display_name or username,
                role=role,
                county=county,
                township=township if role in ("township_staff", "cadre") else "",
                village=village if role == "cadre" else "",
                created_at=datetime.now(UTC),
            ),
        )


async def set_password(session_factory: SessionFactory, *, username: str, password: str) -> None:
    if len(password) < 8:
        raise UserError("密码至少 8 个字符")
    hashed = await asyncio.to_thread(hash_password, password)
    async with session_factory() as session, session.begin():
        if await users_repo.get_user(session, username=username) is None:
            raise UserError(f"没有账号 {username}")
        await users_repo.set_password_hash(session, username=username, password_hash=hashed)


async def ensure_first_admin(session_factory: SessionFactory) -> tuple[str, str] | None:
    """Creates ``admin`` with a random password when there is no account yet; returns the login or None."""
    async with session_factory() as session:
        if await users_repo.count_users(session) > 0:
            return None
    password = random_password()
    await add_user(session_factory, username="admin", password=password, role="admin", display_name="管理员")
    return "admin", password
