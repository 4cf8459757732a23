"""Acceptance scenarios S1–S11 (product.md) through the real `villagewatch replay`, on SQLite and PostgreSQL.

Each scenario is a replay script in scripts/; the assertions read the transcript (what the bot said, to whom)
and `tickets --json` / `flags --json`. S8 (broadcasts from the dashboard) belongs to the dashboard's tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.scenarios.harness import Outcome, replay

GROUP = "石桥村监督服务群"


@pytest.fixture
def db(engine: AsyncEngine, db_url: str) -> str:
    """A migrated, empty database on either backend (the engine fixture prepares it)."""
    return db_url


def no_digest(outcome: Outcome) -> list[dict[str, object]]:
    return [line for line in outcome.transcript if "每日摘要" not in str(line["text"])]


async def test_s1_report_progress_photo_rating(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s1_water_outage.jsonl")
    group = o.to(GROUP)
    ack = group[0]
    assert "【工单 #1】" in ack["text"] and "@王主任" in ack["text"] and "9月20日17:30" in ack["text"]
    assert ack["mentions"] == ["王主任"]
    assert "已联系水厂" in group[1]["text"]
    resolved = group[2]
    assert "已办结" in resolved["text"] and "管道已修好" in resolved["text"] and "@高某林" in resolved["text"]
    assert resolved["image"] and str(resolved["image"]).endswith(".png") and Path(str(resolved["image"])).is_file()
    assert resolved["mentions"] == ["高某林"]
    assert "满意" in group[3]["text"]
    t = o.ticket(1)
    assert (t["status"], t["rating"], t["category"], t["assignee"], t["level"]) == (
        "closed",
        "satisfied",
        "water",
        "王主任",
        "village",
    )
    # 2026-09-07 + 10 working days: Sunday 09-20 is a make-up workday before National Day
    assert t["deadline"] == "2026-09-20T17:30:00+08:00"
    assert len(t["photos"]) == 1 and not t["photo_missing"]
    assert o.events(1) == ["opened", "assigned", "progress", "resolved", "photo", "rated", "closed"]
    assert all(e["actor"] and e["at"].endswith("+08:00") for e in t["events"])


async def test_s2_three_reporters_one_ticket(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s2_many_reporters.jsonl")
    water = o.ticket(1)
    assert water["reporters"] == ["高某林", "张大妈", "陈二嫂"]
    assert water["priority"] == 2
    assert o.events(1).count("merged") == 2
    # never merged: the same category in another village, another category in the same village
    assert [(t["village"], t["category"]) for t in o.tickets] == [
        ("石桥村", "water"),
        ("河东村", "water"),
        ("石桥村", "power"),
    ]
    assert any("3位群众反映" in text for text in o.texts(GROUP))


async def test_s3_banquet_flag_no_reply(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s3_banquet.jsonl")
    assert o.to(GROUP) == [] and o.tickets == []
    assert len(o.flags) == 1
    flag = o.flags[0]
    assert "banquet" in flag["labels"] and flag["severity"] == "high" and flag["role"] == "party_member"
    # the township's discipline staff hear of it at once, privately, not at tomorrow's digest
    [alert] = o.to("private:刘干事")
    assert "即时预警" in alert["text"] and "家父七十大寿" in alert["text"] and "党员" in alert["text"]
    assert alert["at"] == "2026-09-07T19:30:00+08:00" and "大操大办" in alert["text"]


async def test_s4_cadre_notice_is_no_ticket(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s4_cadre_notice.jsonl")
    assert o.tickets == [] and o.transcript == [] and o.flags == []


async def test_s5_reminder_over_national_day_then_overdue_escalation(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s5_overdue.jsonl")
    assert "10月16日17:30" in o.to(GROUP)[0]["text"]
    reminders = [line for line in o.to("private:王主任") if "到期提醒" in str(line["text"])]
    assert len(reminders) == 1 and "#1" in reminders[0]["text"]
    # two working days before Friday 10-16 is Wednesday 10-14 (not Tuesday the 13th)
    assert reminders[0]["at"].startswith("2026-10-14")
    t = o.ticket(1)
    assert (t["level"], t["overdue"], t["assignee"], t["status"]) == ("township", True, "刘干事", "open")
    events = t["events"]
    assert [e["type"] for e in events] == ["opened", "assigned", "reminded", "escalated"]
    assert events[2]["at"] == "2026-10-14T08:30:00+08:00"
    assert events[3]["at"] == "2026-10-17T08:30:00+08:00"
    staff = o.texts("private:刘干事")
    assert any("逾期提级" in text and "#1" in text for text in staff)
    digest = [text for text in staff if "每日摘要 10月17日" in text]
    assert len(digest) == 1 and "#1 石桥村" in digest[0] and "逾期" in digest[0]


async def test_s6_unsatisfied_reopens_one_level_up(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s6_unsatisfied.jsonl")
    t = o.ticket(1)
    assert (t["status"], t["level"], t["assignee"], t["rating"]) == ("accepted", "township", "刘干事", "unsatisfied")
    assert o.events(1)[-3:] == ["reopened", "escalated", "rated"]
    last = o.to(GROUP)[-1]
    assert "重新打开" in last["text"] and last["mentions"] == ["刘干事"]
    assert "已修好" in o.to(GROUP)[1]["text"]


async def test_s7_private_clue_is_confidential(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s7_private_clue.jsonl")
    clue, open_clue = o.ticket(1), o.ticket(2)
    assert clue["kind"] == "clue" and clue["confidential"] and clue["group"] is None
    assert clue["assignee"] == "刘干事" and clue["status"] == "accepted"
    assert open_clue["kind"] == "clue" and open_clue["confidential"]
    # nothing about either clue in any group; the cadre's command is told the ticket does not exist
    group_lines = [line for line in o.transcript if not str(line["to"]).startswith("private:")]
    assert [line["text"] for line in group_lines] == ["未找到工单 #1,请核对工单号。"]
    assert any("#1" in text and "仅纪检监察干部可见" in text for text in o.texts("private:高某林"))
    assert any("#2" in text and "纪检监察干部核查" in text for text in o.texts("private:张大妈"))
    assert [e["actor"] for e in clue["events"] if e["type"] == "accepted"] == ["刘干事"]
    assert all(f["confidential"] for f in o.flags)


async def test_s9_abuse_demand_ticket_and_flag(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s9_abuse_demand.jsonl")
    assert [(t["kind"], t["category"]) for t in o.tickets] == [("demand", "road_traffic")]
    assert len(o.flags) == 1 and "abuse" in o.flags[0]["labels"]
    assert "【工单 #1】" in o.to(GROUP)[0]["text"]


async def test_s10_consultation_answered_by_cadre(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s10_consultation.jsonl")
    t = o.ticket(1)
    assert (t["kind"], t["status"], t["rating"]) == ("consult", "closed", "satisfied")
    assert "征兵报名" in (t["resolution_note"] or "")
    answered = o.to(GROUP)[1]
    assert "已答复" in answered["text"] and answered["mentions"] == ["高某林"] and answered["image"] is None
    assert t["deadline"] == "2026-09-14T17:30:00+08:00"  # consultations: 5 working days


async def test_s11_traditional_and_unpunctuated_like_clean_twins(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "s11_traditional_voice.jsonl")
    assert o.ticket(1)["reporters"] == ["高某林", "张大妈"]  # the traditional twin merged into the simplified report
    assert (o.ticket(2)["category"], o.ticket(2)["kind"]) == ("power", "demand")


async def test_bad_input_changes_nothing(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "bad_input.jsonl")
    texts = no_digest(o)
    said = [str(line["text"]) for line in texts]
    assert "抱歉,工单 #1 只能由负责干部或纪检监察干部办理。" in said  # villager and another village's cadre
    assert said.count("抱歉,工单 #1 只能由负责干部或纪检监察干部办理。") == 2
    assert "未找到工单 #99,请核对工单号。" in said
    assert "工单 #1 已办结,无需重复操作。" in said
    assert "工单 #1 已办结归档。如问题仍未解决,请重新反映。" in said
    t = o.ticket(1)
    assert (t["status"], t["rating"], t["photos"], t["photo_missing"]) == ("closed", "basically_satisfied", [], True)
    assert [e["actor"] for e in t["events"] if e["type"] == "resolved"] == ["王主任"]
    assert any("办结照片缺失" in text for text in said)


async def test_extension_escalation_private_photo_timeout_and_repeat(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "extension_escalation.jsonl")
    first, repeat = o.ticket(1), o.ticket(2)
    types = [e["type"] for e in first["events"]]
    assert types[:6] == ["opened", "assigned", "extension_requested", "extended", "escalated", "resolved"]
    assert any("同意延期" in text for text in o.texts("private:刘干事"))
    assert any("9月28日17:30" in text for text in o.texts(GROUP))  # 9-20 + 5 working days
    assert first["level"] == "township" and first["deadline"] == "2026-09-28T17:30:00+08:00"
    # the photo came privately after the resolution and was posted into the group
    resolved = [line for line in o.to(GROUP) if "已办结】" in str(line["text"])]
    assert len(resolved) == 1 and resolved[0]["image"]
    # nobody rated within three days: closed as no answer, never as satisfied
    assert first["status"] == "closed" and first["rating"] is None
    assert first["events"][-1]["type"] == "closed" and "未评价" in first["events"][-1]["text"]
    # the same problem after the resolution: a new ticket linked to the old one, one level up
    assert repeat["parent_id"] == 1 and repeat["level"] == "county" and repeat["assignee"] == "周主任"


async def test_photo_in_the_same_message_missing_photo_and_every_reporter_rates(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "photo_and_ratings.jsonl")
    water, road = o.ticket(1), o.ticket(2)
    # "#1 办结 管道已修好" with the photo in the same message: resolved with that photo
    resolved = [line for line in o.to(GROUP) if "#1 已办结" in str(line["text"])]
    assert len(resolved) == 1 and resolved[0]["image"] and "管道已修好" in resolved[0]["text"]
    assert resolved[0]["mentions"] == ["高某林", "张大妈"]
    assert len(water["photos"]) == 1 and not water["photo_missing"]
    # both reporters rated, each an event; the summary is the worst rating; closed once both answered
    assert water["ratings"] == {"高某林": "satisfied", "张大妈": "basically_satisfied"}
    assert (water["status"], water["stage"], water["rating"]) == ("closed", "rated", "basically_satisfied")
    assert [e["actor"] for e in water["events"] if e["type"] == "rated"] == ["高某林", "张大妈"]
    thanks = [t for t in o.texts(GROUP) if "感谢您的评价" in t]
    assert "归档" not in thanks[0] and "归档" in thanks[1]
    # "#2 已处理" without a photo: asked privately, 待补照片 until the cadre's photo arrives
    asks = [t for t in o.texts("private:王主任") if "#2" in t and "待补照片" in t]
    assert len(asks) == 1
    road_posts = [line for line in o.to(GROUP) if "#2 已办结" in str(line["text"])]
    assert len(road_posts) == 1 and road_posts[0]["image"] and road_posts[0]["at"].startswith("2026-09-09T14:00")
    assert (road["status"], road["stage"], road["rating"]) == ("closed", "rated", "satisfied")
    assert [e["type"] for e in road["events"]][:5] == ["opened", "assigned", "resolved", "photo", "rated"]


async def test_only_the_same_problem_merges(db: str, tmp_path: Path) -> None:
    o = await replay(db, tmp_path, "merge_only_same.jsonl")
    assert [(t["id"], t["category"], t["reporters"]) for t in o.tickets] == [
        (1, "power", ["高某林", "陈二嫂"]),  # the street light, twice
        (2, "power", ["张大妈"]),  # a 2组 outage is another problem
    ]
    said = o.texts(GROUP)
    assert sum("已有2位群众反映" in text for text in said) == 1
    assert not any("已有3位" in text for text in said)
