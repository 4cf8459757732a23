"""Search on SQLite and PostgreSQL: Chinese text found by any part of it, within the viewer's scope."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import search as terms_of
from storage.engine import make_session_factory
from storage.models import Flag, Message, Ticket
from storage.repos import messages, tickets
from storage.repos import search as repo
from storage.repos.dashboard import Scope

CHINA = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 9, 7, 6, 48, tzinfo=CHINA)
ALL = Scope()
CITY_GUAN = Scope(county="舒城县", township="城关镇")
CADRE = Scope(county="舒城县", township="城关镇", village="石桥村", confidential=False)


def _message(n: int, text: str, *, township: str = "城关镇", village: str = "石桥村", **extra: object) -> dict:
    values: dict[str, object] = {
        "account": "demo",
        "platform_id": f"m{n}",
        "at": T0 + timedelta(minutes=n),
        "group_name": f"{village}监督服务群",
        "sender_platform_id": "高某林",
        "sender_name": "高某林",
        "text": text,
        "county": "舒城县",
        "township": township,
        "village": village,
    }
    values.update(extra)
    return values


async def _texts(session, scope: Scope, q: str, **filt: object) -> list[str]:
    rows, _ = await repo.search(session, scope=scope, filt=repo.SearchFilter(text=q, **filt), cursor=None, limit=50)  # type: ignore[arg-type]
    return [r["text"] for r in rows]


def test_terms_are_pairs_and_a_query_is_a_phrase() -> None:
    assert terms_of.terms("石桥村停水!") == ["石桥", "桥村", "村停", "停水", "水"]
    assert terms_of.terms("ＡＢＣ路燈壞了") == ["abc", "路灯", "灯坏", "坏了", "了"]
    q = terms_of.parse_query("停水了 水")
    assert q.phrases == (("停水", "水了"),) and q.prefixes == ("水",)
    assert terms_of.parse_query("  ，。!").empty


async def test_finds_any_part_of_chinese_text_newest_first(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        await messages.insert_message(session, values=_message(1, "石桥村张湾组连续三天停水了"))
        await messages.store_chat(
            session,
            [
                (_message(2, "高某林家低保的事情谁管?"), {"labels": ["chat"]}),
                (_message(3, "路燈壞了一個禮拜"), {"labels": ["demand"]}),
                (_message(4, "停电了"), {"labels": ["demand"]}),
            ],
        )
    async with sessions() as session:
        assert await _texts(session, ALL, "停水") == ["石桥村张湾组连续三天停水了"]
        assert await _texts(session, ALL, "张湾组") == ["石桥村张湾组连续三天停水了"]
        assert await _texts(session, ALL, "高某林") == ["高某林家低保的事情谁管?"]
        assert await _texts(session, ALL, "低保") == ["高某林家低保的事情谁管?"]
        assert await _texts(session, ALL, "路灯坏了") == ["路燈壞了一個禮拜"]  # traditional text, simplified query
        assert await _texts(session, ALL, "停") == ["停电了", "石桥村张湾组连续三天停水了"]
        assert await _texts(session, ALL, "了") == ["停电了", "路燈壞了一個禮拜", "石桥村张湾组连续三天停水了"]
        assert await _texts(session, ALL, "水停") == []  # the characters, not in that order
        assert await _texts(session, ALL, "停水 张湾") == ["石桥村张湾组连续三天停水了"]
        assert await _texts(session, ALL, "停水 停电") == []
        assert await _texts(session, ALL, "") == []


async def test_scope_filters_and_pages(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        for n in range(5):
            await messages.insert_message(session, values=_message(n, f"路灯坏了{n}号"))
        await messages.insert_message(session, values=_message(10, "路灯坏了城东", township="城东镇", village="东村"))
        await messages.insert_message(session, values=_message(11, "路灯坏了柳河", village="柳河村"))
    async with sessions() as session:
        assert len(await _texts(session, ALL, "路灯")) == 7
        assert "路灯坏了城东" not in await _texts(session, CITY_GUAN, "路灯")
        assert len(await _texts(session, CITY_GUAN, "路灯")) == 6
        assert await _texts(session, CITY_GUAN, "路灯", village="柳河村") == ["路灯坏了柳河"]
        assert await _texts(session, CITY_GUAN, "路灯", township="城东镇") == []  # a filter never widens
        assert await _texts(session, ALL, "路灯", township="城东镇") == ["路灯坏了城东"]
        assert await _texts(session, CADRE, "柳河") == []
        window = await _texts(session, ALL, "路灯", since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
        assert window == ["路灯坏了2号", "路灯坏了1号"]
        seen: list[str] = []
        cursor = None
        while True:
            filt = repo.SearchFilter(text="路灯")
            rows, cursor = await repo.search(session, scope=CITY_GUAN, filt=filt, cursor=cursor, limit=4)
            seen += [r["text"] for r in rows]
            if cursor is None:
                break
        assert seen == await _texts(session, CITY_GUAN, "路灯")


async def test_confidential_hits_only_for_discipline_staff(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        public = await messages.insert_message(session, values=_message(1, "村里修路的钱去哪了"))
        private = await messages.insert_message(
            session, values=_message(2, "村主任修路的钱吃回扣", group_name=None, private=True)
        )
        clue = await messages.insert_message(session, values=_message(3, "会计修路的钱套取了"))
        assert public and private and clue
        await messages.add_flag(
            session,
            Flag(message_id=clue, at=T0, county="舒城县", township="城关镇", village="石桥村", labels=["clue"]),
        )
        ticket = await tickets.add_ticket(
            session,
            Ticket(kind="demand", county="舒城县", township="城关镇", village="石桥村", opened_at=T0, text="修路"),
        )
        assert ticket.id is not None
        await tickets.link_message(session, ticket_id=ticket.id, message_id=public)
    async with sessions() as session:
        assert len(await _texts(session, CITY_GUAN, "修路")) == 3
        assert await _texts(session, CADRE, "修路") == ["村里修路的钱去哪了"]
        assert await _texts(session, CITY_GUAN, "修路", kind="flags") == ["会计修路的钱套取了"]
        assert await _texts(session, CADRE, "修路", kind="flags") == []
        rows, _ = await repo.search(
            session, scope=CADRE, filt=repo.SearchFilter(text="修路", kind="tickets"), cursor=None, limit=5
        )
        assert [(r["text"], r["ticket_id"]) for r in rows] == [("村里修路的钱去哪了", ticket.id)]


async def test_reindex_fills_the_index_for_messages_stored_without_it(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        session.add(Message(account="a", platform_id="x", at=T0, text="垃圾没人清理", county="舒城县"))
    async with sessions() as session:
        assert await _texts(session, ALL, "垃圾") == []
    async with sessions() as session, session.begin():
        last = await repo.reindex(session, after_id=0, limit=10)
        assert last > 0
        assert await repo.reindex(session, after_id=last, limit=10) == 0
    async with sessions() as session:
        assert await _texts(session, ALL, "垃圾") == ["垃圾没人清理"]
        conn = await session.connection()
        assert (await conn.execute(text("SELECT count(*) FROM message_search"))).scalar_one() == 1


async def test_the_migration_indexes_the_messages_already_stored(engine: AsyncEngine) -> None:
    from alembic import command

    from storage.migrate import alembic_config, upgrade

    def _downgrade(sync_connection: object) -> None:
        cfg = alembic_config(str(engine.url))
        cfg.attributes["connection"] = sync_connection
        command.downgrade(cfg, "0011")

    sessions = make_session_factory(engine)
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade)
    async with sessions() as session, session.begin():
        for n in range(7):
            old = Message(account="a", platform_id=f"old{n}", at=T0, text=f"老消息{n}:水渠堵了", township="城关镇")
            session.add(old)
    await upgrade(engine)
    async with sessions() as session:
        assert len(await _texts(session, ALL, "水渠")) == 7
        assert len(await _texts(session, Scope(township="城关镇"), "堵了")) == 7


def test_the_command_indexes_every_message_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from storage.engine import make_engine
    from storage.migrate import upgrade
    from tests.cli import run_cli

    url = f"sqlite+aiosqlite:///{tmp_path / 'vw.db'}"

    async def _prepare() -> None:
        engine = make_engine(url)
        await upgrade(engine)
        async with make_session_factory(engine)() as session, session.begin():
            for n in range(12):
                session.add(Message(account="a", platform_id=f"p{n}", at=T0, text=f"第{n}条:垃圾没人清理"))
        await engine.dispose()

    async def _found() -> int:
        engine = make_engine(url)
        async with make_session_factory(engine)() as session:
            found = len(await _texts(session, ALL, "垃圾"))
        await engine.dispose()
        return found

    import threading

    def _in_thread(coro_factory):  # type: ignore[no-untyped-def]
        out: list[object] = []
        thread = threading.Thread(target=lambda: out.append(asyncio.run(coro_factory())))
        thread.start()
        thread.join()
        return out[0] if out else None

    _in_thread(_prepare)
    assert _in_thread(_found) == 0
    assert run_cli("db", "reindex-search", "--db", url, "--batch", "5") == 0
    assert _in_thread(_found) == 12


async def test_many_hits_are_read_week_by_week_in_the_same_order(engine: AsyncEngine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A query with more hits than the probe reads the newest week first (PostgreSQL); pages are the same as
    when every hit is sorted at once."""
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        n = 0
        for week in range(6):
            for k in range(week % 3 + 1):  # 1–3 messages a week, some weeks dense
                n += 1
                at = T0 - timedelta(days=7 * week, hours=k)
                await messages.insert_message(session, values=_message(n, f"水渠堵了{week}周{k}", at=at))
        await messages.insert_message(session, values=_message(99, "水渠堵了城东", township="城东镇", village="东村"))

    async def pages(limit: int) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            async with sessions() as session:
                rows, cursor = await repo.search(
                    session, scope=CITY_GUAN, filt=repo.SearchFilter(text="水渠"), cursor=cursor, limit=limit
                )
            seen += [r["text"] for r in rows]
            if cursor is None:
                return seen

    everything = await pages(50)
    assert len(everything) == 12 and everything[0] == "水渠堵了0周0" and everything[-1] == "水渠堵了5周2"
    monkeypatch.setattr(repo, "SPLIT", 0)  # every query now "has many hits" and is read week by week
    assert await pages(5) == everything
    assert await pages(1) == everything
    async with sessions() as session:
        rows, _ = await repo.search(
            session,
            scope=CITY_GUAN,
            filt=repo.SearchFilter(text="水渠", since=T0 - timedelta(days=15), until=T0 - timedelta(days=6)),
            cursor=None,
            limit=50,
        )
    assert [r["text"] for r in rows] == ["水渠堵了1周0", "水渠堵了1周1", "水渠堵了2周0", "水渠堵了2周1", "水渠堵了2周2"]


async def test_hidden_hits_do_not_shorten_a_page(engine: AsyncEngine) -> None:
    """A cadre's page is full even when the newest matches are private chats they may not see (the index
    is read a batch at a time until the page is full)."""
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        for n in range(3):
            await messages.insert_message(session, values=_message(n, f"修桥的事{n}"))
        for n in range(10, 55):
            values = _message(n, f"修桥的钱{n}", group_name=None, private=True)
            await messages.insert_message(session, values=values)
    async with sessions() as session:
        rows, cursor = await repo.search(
            session, scope=CADRE, filt=repo.SearchFilter(text="修桥"), cursor=None, limit=2
        )
        assert [r["text"] for r in rows] == ["修桥的事2", "修桥的事1"] and cursor is not None
        rows, cursor = await repo.search(
            session, scope=CADRE, filt=repo.SearchFilter(text="修桥"), cursor=cursor, limit=2
        )
        assert [r["text"] for r in rows] == ["修桥的事0"] and cursor is None
        assert len(await _texts(session, CITY_GUAN, "修桥")) == 48


async def test_retention_takes_blanked_messages_out_of_the_index(engine: AsyncEngine) -> None:
    from storage.repos import ops

    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        await messages.insert_message(session, values=_message(1, "旧消息说水渠堵了", at=T0 - timedelta(days=30)))
        await messages.insert_message(session, values=_message(2, "新消息说水渠堵了", at=T0))
    async with sessions() as session, session.begin():
        assert await ops.blank_message_text(session, before=T0 - timedelta(days=1)) == 1
    async with sessions() as session:
        assert await _texts(session, ALL, "水渠") == ["新消息说水渠堵了"]
        conn = await session.connection()
        assert (await conn.execute(text("SELECT count(*) FROM message_search"))).scalar_one() == 1


async def test_a_message_stored_with_its_classification_and_a_transcript_are_found(engine: AsyncEngine) -> None:
    """The live bot's one-statement store (PostgreSQL: message, classification and search entry in one WITH)
    and a voice message whose transcript was typed later are both searchable."""
    sessions = make_session_factory(engine)
    async with sessions() as session, session.begin():
        await messages.insert_classified(
            session,
            values=_message(1, "村口的路灯坏了一个多月了"),
            classification={
                "labels": ["demand"],
                "matches": [],
                "shadow_matches": [],
                "ruleset_version": "t",
                "review": [],
            },
        )
        voice = await messages.insert_message(session, values=_message(2, "", kind="voice"))
        assert voice is not None
    async with sessions() as session:
        assert await _texts(session, ALL, "路灯") == ["村口的路灯坏了一个多月了"]
        assert await _texts(session, ALL, "水渠") == []
    async with sessions() as session, session.begin():
        await messages.set_text(session, voice, "我们组的水渠堵了没人管")
    async with sessions() as session:
        assert await _texts(session, ALL, "水渠") == ["我们组的水渠堵了没人管"]
