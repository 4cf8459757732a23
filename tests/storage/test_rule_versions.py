"""The rule editor's storage on both backends: versions of rule files, a rule's recent matches and shadow hits
within a scope, and how many flags each rule took part in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import make_session_factory
from storage.models import Classification, Flag, Message
from storage.repos import rules as rules_repo
from storage.repos.dashboard import Scope

T0 = datetime(2026, 9, 10, 2, 0, tzinfo=UTC)


async def test_versions_give_each_file_as_of_any_version(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        assert await rules_repo.latest_id(session) == 0 and await rules_repo.files_at(session) == {}
        ids = []
        for n, (name, before, after) in enumerate(
            [("labels/a.toml", "a0", "a1"), ("labels/b.toml", "b0", "b1"), ("labels/a.toml", "a1", "a2")]
        ):
            row = await rules_repo.add_version(
                session,
                at=T0 + timedelta(minutes=n),
                username="zhou",
                action="edit",
                reason=f"第{n}次",
                rule_id="a.x" if name.endswith("a.toml") else "b.x",
                file=name,
                content=after,
                previous=before,
                ruleset_version="v",
            )
            ids.append(row.id or 0)
        await session.commit()
    async with sessions() as session:
        assert await rules_repo.latest_id(session) == ids[-1] and await rules_repo.count_versions(session) == 3
        assert await rules_repo.files_at(session) == {"labels/a.toml": "a2", "labels/b.toml": "b1"}
        assert await rules_repo.files_at(session, ids[0]) == {"labels/a.toml": "a1", "labels/b.toml": "b0"}
        assert await rules_repo.files_at(session, 0) == {"labels/a.toml": "a0", "labels/b.toml": "b0"}
        assert await rules_repo.changed_since(session, ids[0]) == ["labels/a.toml", "labels/b.toml"]
        assert await rules_repo.changed_since(session, ids[1]) == ["labels/a.toml"]
        newest = await rules_repo.list_versions(session, limit=2)
        assert [v.reason for v in newest] == ["第2次", "第1次"] and newest[0].at == T0 + timedelta(minutes=2)
        assert [v.reason for v in await rules_repo.list_versions(session, rule_id="b.x")] == ["第1次"]
        assert [v.reason for v in await rules_repo.list_versions(session, limit=2, offset=2)] == ["第0次"]


async def test_a_rules_matches_and_shadow_hits_within_a_scope(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    rows = [
        # text, township, private, matches, shadow matches, minutes before T0
        ("今晚摇骰子", "城关镇", False, [{"rule": "gambling.games", "keywords": ["骰子"]}], [], 10),
        ("来打麻将", "龙山镇", False, [{"rule": "gambling.games", "keywords": ["麻将"]}], [], 20),
        ("私聊举报赌博", "城关镇", True, [{"rule": "gambling.games", "keywords": ["赌博"]}], [], 30),
        ("扫码领鸡蛋", "城关镇", False, [], [{"rule": "spam.staff_1", "keywords": ["扫码领"]}], 40),
        ("很久以前摇骰子", "城关镇", False, [{"rule": "gambling.games", "keywords": ["骰子"]}], [], 60 * 24 * 40),
        ("gambling_games 不是规则", "城关镇", False, [{"rule": "gamblingxgames", "keywords": []}], [], 50),
    ]
    async with sessions() as session:
        for n, (text, township, private, matches, shadow, minutes) in enumerate(rows):
            message = Message(
                account="bot",
                platform_id=f"m{n}",
                at=T0 - timedelta(minutes=minutes),
                group_name=None if private else "石桥村监督服务群",
                private=private,
                text=text,
                county="舒城县",
                township=township,
            )
            session.add(message)
            await session.flush()
            assert message.id is not None
            session.add(
                Classification(message_id=message.id, labels=["gambling"], matches=matches, shadow_matches=shadow)
            )
            if matches:
                session.add(
                    Flag(
                        message_id=message.id,
                        at=message.at,
                        township=township,
                        county="舒城县",
                        labels=["gambling"],
                        rules=[m["rule"] for m in matches],
                        confidential=private,
                    )
                )
        await session.commit()
    since = T0 - timedelta(days=30)
    async with sessions() as session:

        async def texts(scope: Scope, rule: str = "gambling.games", *, shadow: bool = False, **kw: int) -> list[str]:
            found = await rules_repo.rule_matches(
                session, since=since, scope=scope, rule_ids=[rule], shadow=shadow, **kw
            )
            return [m.text for m, _rule, _kws in found]

        assert await texts(Scope()) == ["今晚摇骰子", "来打麻将", "私聊举报赌博"]
        assert await texts(Scope(county="舒城县", township="城关镇")) == ["今晚摇骰子", "私聊举报赌博"]
        assert await texts(Scope(county="舒城县", township="城关镇", village=None, confidential=False)) == [
            "今晚摇骰子"
        ]
        assert await texts(Scope(), limit=1) == ["今晚摇骰子"]
        assert await texts(Scope(), scan=1) == ["今晚摇骰子"]  # only the newest message looked at
        assert await texts(Scope(), "spam.staff_1", shadow=True) == ["扫码领鸡蛋"]
        assert await texts(Scope(), "spam.staff_1") == []
        (hit,) = await rules_repo.rule_matches(
            session, since=since, scope=Scope(), rule_ids=["spam.staff_1"], shadow=True
        )
        assert hit[1:] == ("spam.staff_1", ["扫码领"])
        assert await rules_repo.rule_matches(session, since=since, scope=Scope(), rule_ids=[], shadow=False) == []
        counts = await rules_repo.flag_rule_counts(session, since=since, scope=Scope())
        assert counts["gambling.games"] == 3 and counts["gamblingxgames"] == 1
        town = await rules_repo.flag_rule_counts(session, since=since, scope=Scope(township="龙山镇"))
        assert dict(town) == {"gambling.games": 1}
        hidden = await rules_repo.flag_rule_counts(session, since=since, scope=Scope(confidential=False))
        assert hidden["gambling.games"] == 2
        texts_in = await rules_repo.recent_texts(
            session, start=since, end=T0, county="舒城县", township="龙山镇", village=None, limit=10
        )
        assert [t[4] for t in texts_in] == ["来打麻将"]
