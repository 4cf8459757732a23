"""Hot spots on the statistics page — the problems several villages reported lately, with those villages —
and the ranking of townships (villages for a township) by overdue and 不满意 tickets; within the viewer's
scope, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dashboards.hotspots import hot_spots
from storage.models import Ticket, TicketReporter
from tests.dashboards.conftest import Dash

NOW = datetime(2026, 9, 10, 2, 0, tzinfo=UTC)  # the fake clock
PLACES = {"石桥村": "城关镇", "河西村": "城关镇", "龙山村": "龙山镇"}


async def _tickets(dash: Dash) -> None:
    specs = [
        # village, category, keywords, days ago, extra
        ("石桥村", "water", ["停水", "自来水", "张湾组"], 3, {}),
        ("河西村", "water", ["停水", "老人"], 5, {"overdue": True}),
        ("河西村", "water", ["自来水", "停水"], 6, {"overdue": True}),
        ("龙山村", "water", ["停水"], 10, {"rating": "unsatisfied", "status": "closed"}),
        ("龙山村", "water", ["停水"], 70, {}),  # too old for the last 4 weeks
        ("石桥村", "power", ["路灯"], 2, {}),
        ("河西村", "power", ["路灯"], 4, {}),
        ("龙山村", "power", ["变压器"], 4, {"overdue": True}),
        ("河西村", "water", ["停水"], 1, {"confidential": True}),  # never counted
    ]
    async with dash.factory() as session, session.begin():
        for n, (village, category, words, days, extra) in enumerate(specs):
            opened = NOW - timedelta(days=days)
            t = Ticket(
                kind="demand",
                category=category,
                group_name=f"{village}监督服务群",
                county="舒城县",
                township=PLACES[village],
                village=village,
                status=extra.get("status", "open"),
                overdue=extra.get("overdue", False),
                rating=extra.get("rating"),
                confidential=extra.get("confidential", False),
                opened_at=opened,
                deadline=opened + timedelta(days=14),
                text="、".join(words),
                keywords=words,
            )
            session.add(t)
            await session.flush()
            for who in range(2 if n == 0 else 1):
                session.add(
                    TicketReporter(ticket_id=t.id or 0, platform_id=f"p{n}-{who}", name=f"村民{who}", at=opened)
                )


def _spots(page: str) -> list[str]:
    block = page.split('id="hot-spots"', 1)[1].split("</section>", 1)[0]
    return [re.sub(r"<[^>]+>|\s+", "", li) for li in re.findall(r"<li>(.*?)</li>", block, flags=re.S)]


def _ranking(page: str) -> list[list[str]]:
    block = page.split('id="ranking"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</tr>", block, flags=re.S)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in ("<td>" + r).split("</td>") if c.strip()] for r in rows]


async def test_hot_spots_and_ranking_across_the_county(dash: Dash) -> None:
    await _tickets(dash)
    await dash.login("county")
    page = await (await dash.client.get("/stats?since=2026-06-01&until=2026-09-30")).text()
    spots = _spots(page)
    assert len(spots) == 2, spots
    # water: 停水 and 自来水 are one problem, in three villages (the old and the confidential ones left out)
    assert spots[0].startswith("供水：停水、自来水") and "3个村·4件·5人反映" in spots[0], spots[0]
    assert "城关镇/石桥村（1）" in spots[0] and "城关镇/河西村（2）" in spots[0] and "龙山镇/龙山村（1）" in spots[0]
    assert "张湾组" not in spots[0]  # a place is not a problem
    # street lights in two villages; the transformer of one village is no hot spot
    assert (
        spots[1].startswith("供电：路灯") and "2个村·2件" in spots[1] and "变压器" not in page.split('id="ranking"')[0]
    )
    ranking = _ranking(page)
    assert ranking == [["1. 城关镇", "2", "0", "10"], ["2. 龙山镇", "1", "2", "4"]], ranking
    # the last 2 weeks only: the 10-day-old report still counts, a shorter window is a link that keeps the dates
    assert 'href="?since=2026-06-01&amp;until=2026-09-30&amp;weeks=2"' in page
    page = await (await dash.client.get("/stats?since=2026-06-01&until=2026-09-30&weeks=2")).text()
    assert "3个村" in _spots(page)[0]


async def test_a_township_sees_its_own_villages_only(dash: Dash) -> None:
    await _tickets(dash)
    await dash.login("town_a")
    page = await (await dash.client.get("/stats?since=2026-06-01&until=2026-09-30")).text()
    spots = _spots(page)
    assert spots[0].startswith("供水：停水") and "2个村·3件" in spots[0]
    assert "龙山" not in page.split('id="hot-spots"', 1)[1].split('id="ranking"')[0]
    assert "各村排名" in page
    assert _ranking(page) == [["1. 城关镇 / 河西村", "2", "0", "5"]]


def test_nothing_shared_says_so() -> None:
    assert hot_spots([]) == []


def test_hot_spots_group_words_that_come_together() -> None:
    rows = [
        {
            "id": 1,
            "category": "water",
            "township": "A",
            "village": "一村",
            "keywords": ["停水", "自来水"],
            "reporter_count": 3,
        },
        {
            "id": 2,
            "category": "water",
            "township": "A",
            "village": "二村",
            "keywords": ["停水", "13812345678"],
            "reporter_count": 1,
        },
        {
            "id": 7,
            "category": "power",
            "township": "A",
            "village": "二村",
            "keywords": ["13812345678"],
            "reporter_count": 1,
        },
        {
            "id": 8,
            "category": "power",
            "township": "B",
            "village": "三村",
            "keywords": ["13812345678", "3号"],
            "reporter_count": 1,
        },
        {
            "id": 3,
            "category": "water",
            "township": "B",
            "village": "三村",
            "keywords": ["自来水", "停水"],
            "reporter_count": 1,
        },
        {
            "id": 4,
            "category": "road_traffic",
            "township": "B",
            "village": "三村",
            "keywords": ["停水"],
            "reporter_count": 1,
        },
        {"id": 5, "category": None, "township": "B", "village": "三村", "keywords": [], "reporter_count": 1},
        {"id": 6, "category": None, "township": "A", "village": "一村", "keywords": [], "reporter_count": 1},
    ]
    spots = hot_spots(rows)
    assert [(s.category, s.words, len(s.tickets), s.village_count, s.reporters) for s in spots] == [
        ("water", ["停水", "自来水"], 3, 3, 5),
        ("other", [], 2, 2, 2),
        ("power", [], 2, 2, 2),  # a phone number is no problem word: the category alone
    ]
    assert spots[0].top_villages(2) == [("A / 一村", 1), ("A / 二村", 1)]
    assert hot_spots(rows, min_villages=1, limit=1)[0].words == ["停水", "自来水"]
    assert [s.category for s in hot_spots(rows, min_villages=1)] == ["water", "other", "power", "road_traffic"]
    assert all(not any(ch.isdigit() for w in s.words for ch in w) for s in hot_spots(rows, min_villages=1))
