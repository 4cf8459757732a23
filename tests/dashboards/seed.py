"""A small seeded world: two townships, three villages, staff of every role, flags and tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import Config
from bot.directory import Directory
from bot.staff_roster import StaffRoster
from dashboards.users import add_user
from storage.engine import SessionFactory
from storage.models import Flag, Group, Member, Message, Ticket, TicketEvent, TicketMessage, TicketReporter
from storage.repos import search as search_repo

PASSWORD = "correct-horse-42"
T0 = datetime(2026, 9, 7, 0, 0, tzinfo=UTC)
XSS_SCRIPT = "<script>alert('xss')</script>今晚八点开饭"
XSS_IMG = '"><img src=x onerror=alert(1)>下周摆寿宴'

USERS = [
    ("admin", "admin", "", "", ""),
    ("county", "county_staff", "舒城县", "", ""),
    ("town_a", "township_staff", "舒城县", "城关镇", ""),
    ("town_b", "township_staff", "舒城县", "龙山镇", ""),
    ("cadre_a", "cadre", "舒城县", "城关镇", "石桥村"),
]
GROUPS = [
    ("石桥村监督服务群", "城关镇", "石桥村"),
    ("河西村监督服务群", "城关镇", "河西村"),
    ("龙山村监督服务群", "龙山镇", "龙山村"),
]


@dataclass
class World:
    flags: dict[str, int]
    tickets: dict[str, int]


async def seed(factory: SessionFactory) -> World:
    for username, role, county, township, village in USERS:
        await add_user(
            factory,
            username=username,
            password=PASSWORD,
            role=role,
            county=county,
            township=township,
            village=village,
            display_name=username,
        )
    flags: dict[str, int] = {}
    tickets: dict[str, int] = {}
    async with factory() as session, session.begin():
        for name, township, village in GROUPS:
            session.add(Group(name=name, county="舒城县", township=township, village=village))
        n = 0

        async def message(
            group: str,
            township: str,
            village: str,
            text: str,
            *,
            minutes: int,
            sender: str = "村民甲",
            role: str = "villager",
        ) -> Message:
            nonlocal n
            n += 1
            m = Message(
                account="bot1",
                platform_id=f"m{n}",
                at=T0 + timedelta(minutes=minutes),
                group_name=group,
                sender_platform_id=sender,
                sender_name=sender,
                role=role,
                text=text,
                county="舒城县",
                township=township,
                village=village,
            )
            session.add(m)
            await session.flush()
            return m

        async def flag(
            key: str,
            m: Message,
            labels: list[str],
            severity: str,
            keywords: list[str],
            rule: str,
            confidential: bool = False,
        ) -> None:
            f = Flag(
                message_id=m.id or 0,
                at=m.at,
                group_name=m.group_name,
                sender_name=m.sender_name,
                role=m.role,
                county=m.county,
                township=m.township,
                village=m.village,
                labels=labels,
                severity=severity,
                rules=[rule],
                keywords=keywords,
                confidential=confidential,
            )
            session.add(f)
            await session.flush()
            flags[key] = f.id or 0

        g, tw, vi = GROUPS[0]
        await message(g, tw, vi, "早上好，今天停水吗", minutes=0)
        m = await message(
            g,
            tw,
            vi,
            "家父八十大寿，略备薄酒，敬请光临，电话13812345678",
            minutes=5,
            sender="王党员",
            role="party_member",
        )
        await flag("banquet", m, ["banquet"], "high", ["大寿", "薄酒"], "banquet.birthday")
        await message(g, tw, vi, "恭喜恭喜", minutes=6)
        m = await message(g, tw, vi, XSS_SCRIPT, minutes=10)
        await flag("xss_script", m, ["spam"], "low", ["开饭"], "spam.generic")
        m = await message(g, tw, vi, XSS_IMG, minutes=11)
        await flag("xss_img", m, ["banquet"], "normal", ["寿宴"], "banquet.birthday")
        m = await message(g, tw, vi, "凭什么他家三套房还吃低保？", minutes=12)
        await flag("clue", m, ["clue"], "high", ["低保", "三套房"], "clue.subsidy")
        g, tw, vi = GROUPS[2]
        m = await message(g, tw, vi, "祠堂今晚开桌，来的私聊", minutes=20, sender="赌客")
        await flag("other_town", m, ["gambling"], "normal", ["开桌"], "gambling.invite")

        async def ticket(
            key: str,
            group: tuple[str, str, str],
            text: str,
            *,
            kind: str = "demand",
            category: str | None = "water",
            status: str = "open",
            confidential: bool = False,
            days: float = 0,
            resolved_days: float | None = None,
            rating: str | None = None,
        ) -> None:
            name, township, village = group
            opened = T0 + timedelta(days=days)
            t = Ticket(
                kind=kind,
                category=category,
                group_name=name if not confidential else None,
                county="舒城县",
                township=township,
                village=village,
                assignee_name="李书记",
                status=status,
                confidential=confidential,
                opened_at=opened,
                deadline=opened + timedelta(days=14),
                first_response_at=opened + timedelta(hours=2),
                resolved_at=opened + timedelta(days=resolved_days) if resolved_days is not None else None,
                rating=rating,
                text=text,
            )
            session.add(t)
            await session.flush()
            tid = t.id or 0
            tickets[key] = tid
            m = await message(name, township, village, text, minutes=int(days * 1440) + 30, sender="高某林")
            session.add(TicketReporter(ticket_id=tid, platform_id="高某林", name="高某林", message_id=m.id, at=opened))
            session.add(TicketMessage(ticket_id=tid, message_id=m.id or 0))
            session.add(TicketEvent(ticket_id=tid, at=opened, type="opened", actor="系统", text="登记"))

        await ticket(
            "water",
            GROUPS[0],
            "张湾组连续三天停水了，老人小孩怎么办",
            status="resolved",
            resolved_days=2,
            rating="satisfied",
        )
        await ticket(
            "road",
            GROUPS[1],
            "路堵了一上午没人管，联系人身份证110101199001011234",
            category="road_traffic",
            status="accepted",
            days=1,
        )
        await ticket(
            "clue",
            GROUPS[0],
            "村主任儿子升学宴摆了三十桌，收了不少礼",
            kind="clue",
            category=None,
            confidential=True,
            days=1,
        )
        await ticket(
            "other_town",
            GROUPS[2],
            "龙山村路灯坏了一个礼拜",
            category="power",
            status="closed",
            days=2,
            resolved_days=6,
            rating="unsatisfied",
        )
        await ticket("xss", GROUPS[0], XSS_IMG, category="other", days=3)
        for name, role, (group, township, village), on_roster, extra in [
            ("李书记", "cadre", GROUPS[0], True, {"categories": ["water"], "is_head": True}),
            ("王党员", "party_member", GROUPS[0], True, {}),
            ("村民甲", "villager", GROUPS[0], False, {}),
            ("13912345678", "villager", GROUPS[1], False, {}),
            ("赌客", "villager", GROUPS[2], False, {}),
        ]:
            session.add(
                Member(
                    platform_id=name,
                    name=name,
                    role=role,
                    county="舒城县",
                    township=township,
                    village=village,
                    group_name=group,
                    on_roster=on_roster,
                    **extra,
                )
            )
        await session.flush()
        await search_repo.reindex(session, after_id=0, limit=10_000)  # stored by the ORM, not the repository
    return World(flags=flags, tickets=tickets)


def seed_config(roster: Path | None = None) -> Config:
    """The bot's config for the seeded world: the same county, townships, villages and groups."""
    townships: dict[str, list[dict[str, object]]] = {}
    for name, township, village in GROUPS:
        townships.setdefault(township, []).append({"name": village, "groups": [name]})
    return Config.model_validate(
        {
            "roster": str(roster) if roster else None,
            "counties": [{"name": "舒城县", "townships": [{"name": t, "villages": vs} for t, vs in townships.items()]}],
        }
    )


def staff_roster(factory: SessionFactory, roster: Path | None = None) -> tuple[StaffRoster, Directory]:
    """The bot's real roster service (the file's rules, the Directory's cache) on the seeded database."""
    config = seed_config(roster)
    directory = Directory(config)
    return StaffRoster(config=config, directory=directory, sessions=factory), directory
