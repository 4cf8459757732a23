"""The rule editor's cycle on both backends: edit → check → dry run → save → reload → rollback, and a second
process sharing the database taking the new version. A bad edit never replaces the rules in use, and the rule
file keeps every byte outside the edited rule."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import CHINA, SimulatedClock
from bot.rule_editor import RuleEditor
from classifiers import ClassifierHolder
from classifiers.rules import _HEADER_RE
from dashboards.ports import ActionRefused, RuleEdit
from storage.engine import make_session_factory
from storage.models import Message
from storage.repos import rules as rules_repo

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 9, 20, 12, 0, tzinfo=CHINA)
GAMES = "gambling.games"
FILE = "labels/gambling.toml"


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


def _block(text: str, rule_id: str) -> tuple[int, int]:
    """The lines of the rule's [[rule]] block: (header index, index of the next header or the end)."""
    lines = text.splitlines(keepends=True)
    marker = f'id = "{rule_id}"'
    at = next(i for i, line in enumerate(lines) if line.strip() == marker)
    start = max(i for i in range(at + 1) if _HEADER_RE.match(lines[i]))
    end = next((i for i in range(at, len(lines)) if _HEADER_RE.match(lines[i])), len(lines))
    return start, end


def _outside(text: str, rule_id: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    start, end = _block(text, rule_id)
    return "".join(lines[:start]), "".join(lines[end:])


async def _store(engine: AsyncEngine, texts: list[tuple[str, int]]) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        for n, (text, days_ago) in enumerate(texts):
            session.add(
                Message(
                    account="bot",
                    platform_id=f"m{n}",
                    at=NOW - timedelta(days=days_ago, minutes=n),
                    group_name="石桥村监督服务群",
                    sender_name="张三",
                    text=text,
                    county="舒城县",
                    township="城关镇",
                    village="石桥村",
                )
            )
        await session.commit()


def _editor(engine: AsyncEngine, rules_dir: Path) -> tuple[RuleEditor, ClassifierHolder]:
    holder = ClassifierHolder(rules_dir)
    return RuleEditor(sessions=make_session_factory(engine), holder=holder, clock=SimulatedClock(NOW)), holder


def _edit_of(editor: RuleEditor, rule_id: str, **changes: object) -> RuleEdit:
    card = next(c for c in editor.cards() if c["id"] == rule_id)
    edit = RuleEdit(
        rule_id=rule_id,
        description=card["description"],
        any=tuple(card["any"]),
        none=tuple(card["none"]),
        weight=str(card["weight"]),
        window=str(card["window"] or ""),
        shadow=card["shadow"],
    )
    return replace(edit, **changes)  # type: ignore[arg-type]


def _matched(holder: ClassifierHolder, text: str, rule_id: str) -> bool:
    result = holder.current.classify(text, role="villager")
    return any(m.rule == rule_id for m in (*result.matches, *result.shadow_matches))


async def test_edit_dry_run_save_reload_and_rollback(engine: AsyncEngine, tmp_path: Path) -> None:
    rules = _copy(tmp_path, "a")
    original = (rules / FILE).read_text(encoding="utf-8")
    await _store(
        engine,
        [("今晚摇骰子", 1), ("来打麻将三缺一,老地方", 2), ("明天停水检修", 3), ("今晚摇骰子,三缺一", 40)],
    )
    editor, holder = _editor(engine, rules)
    version = holder.current.version
    assert not _matched(holder, "今晚摇骰子", GAMES) and _matched(holder, "来打麻将三缺一,老地方", GAMES)
    card = next(c for c in editor.cards() if c["id"] == GAMES)
    assert card["description"] == "赌博玩法与彩票" and "打麻将" in card["any"] and card["weight"] == 0.7
    kept = tuple(t for t in card["any"] if t not in ("打麻将", "搓麻将", "麻将"))
    edit = _edit_of(editor, GAMES, any=(*kept, "骰子"), weight="0.8", window="6", description="赌博玩法、彩票和骰子")

    result = await editor.dry_run(edit, days=7, county="舒城县", township=None, village=None, page=1, per_page=20)
    by_text = {c.text: c for c in result.changes}
    assert result.scanned == 3  # the 40-day-old message is outside the 7 days
    assert by_text["今晚摇骰子"].gained and not by_text["来打麻将三缺一,老地方"].gained
    assert "明天停水检修" not in by_text and result.gained >= 1 and result.lost >= 1
    assert (rules / FILE).read_text(encoding="utf-8") == original and holder.current.version == version
    total = len(result.changes)
    pages = [
        await editor.dry_run(edit, days=7, county=None, township=None, village=None, page=n, per_page=1)
        for n in (1, 2, 99)
    ]
    assert [p.pages for p in pages] == [total] * 3 and [p.page for p in pages] == [1, 2, total]
    assert [p.changes[0] for p in pages[:2]] == list(result.changes[:2]) and pages[2].changes == result.changes[-1:]
    other_scope = await editor.dry_run(edit, days=7, county="别的县", township=None, village=None, page=1, per_page=20)
    assert other_scope.scanned == 0 and other_scope.changes == ()

    assert await editor.save(edit, actor="zhouzhuren", reason="骰子局增多") == GAMES
    saved = (rules / FILE).read_text(encoding="utf-8")
    assert _outside(saved, GAMES) == _outside(original, GAMES)  # comments and every other rule byte for byte
    start, end = _block(saved, GAMES)
    block = "".join(saved.splitlines(keepends=True)[start:end])
    assert "骰子" in block and "weight = 0.8" in block and "window = 6" in block and '"打麻将"' not in block
    assert 'note = "赌博玩法与彩票 / gambling games"' in block and 'note_zh = "赌博玩法、彩票和骰子"' in block
    assert holder.current.version != version and holder.last_error is None
    assert _matched(holder, "今晚摇骰子", GAMES) and not _matched(holder, "来打麻将三缺一,老地方", GAMES)
    async with make_session_factory(engine)() as session:
        (row,) = await rules_repo.list_versions(session)
    assert (row.username, row.reason, row.action, row.rule_id, row.file) == (
        "zhouzhuren",
        "骰子局增多",
        "edit",
        GAMES,
        FILE,
    )
    assert row.previous == original and row.content == saved and row.at == NOW

    with pytest.raises(ActionRefused, match="没有修改"):
        await editor.save(_edit_of(editor, GAMES), actor="zhouzhuren", reason="再存一次")
    await editor.rollback(0, actor="guanliyuan", reason="误改")
    assert (rules / FILE).read_text(encoding="utf-8") == original
    assert holder.current.version == version
    assert _matched(holder, "来打麻将三缺一,老地方", GAMES) and not _matched(holder, "今晚摇骰子", GAMES)
    await editor.rollback(row.id or 0, actor="guanliyuan", reason="还是要骰子")
    assert (rules / FILE).read_text(encoding="utf-8") == saved
    async with make_session_factory(engine)() as session:
        versions = await rules_repo.list_versions(session)
    assert [v.action for v in versions] == ["rollback", "rollback", "edit"]
    assert versions[1].reason == "恢复到最初的规则文件:误改"
    with pytest.raises(ActionRefused, match="无需恢复"):
        await editor.rollback(row.id or 0, actor="guanliyuan", reason="")
    with pytest.raises(ActionRefused, match="未找到该版本"):
        await editor.rollback(999, actor="guanliyuan", reason="")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"weight": "很高"}, "“权重”必须是数字"),
        ({"weight": "nan"}, "“权重”必须是有限的数字"),
        ({"window": "0"}, "“词距”必须是正整数"),
        ({"window": "三"}, "“词距”必须是正整数"),
        ({"any": ("赌*博",)}, "“*”只能写在开头或结尾"),
        ({"any": ()}, "至少要有一个关键词"),
        ({"any": ("！！",)}, "关键词不能为空或只有符号"),
    ],
)
async def test_a_bad_edit_is_refused_in_chinese_and_changes_nothing(
    engine: AsyncEngine, tmp_path: Path, changes: dict[str, object], field: str
) -> None:
    rules = _copy(tmp_path, "a")
    original = (rules / FILE).read_text(encoding="utf-8")
    editor, holder = _editor(engine, rules)
    version = holder.current.version
    edit = _edit_of(editor, GAMES, **changes)
    for attempt in (
        editor.dry_run(edit, days=7, county=None, township=None, village=None, page=1, per_page=20),
        editor.save(edit, actor="zhouzhuren", reason="试试"),
    ):
        with pytest.raises(ActionRefused, match=field) as refused:
            await attempt
        assert "原规则仍在使用" in str(refused.value) and "weight" not in str(refused.value)
    assert (rules / FILE).read_text(encoding="utf-8") == original and holder.current.version == version
    async with make_session_factory(engine)() as session:
        assert await rules_repo.latest_id(session) == 0


async def test_a_failed_reload_puts_the_file_back_and_keeps_the_rules(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = _copy(tmp_path, "a")
    original = (rules / FILE).read_text(encoding="utf-8")
    editor, holder = _editor(engine, rules)
    version = holder.current.version
    calls: list[str] = []

    def refuse() -> bool:
        calls.append((rules / FILE).read_text(encoding="utf-8"))
        holder.last_error = "rules/labels/gambling.toml:9: 'weight' must be a number"
        return False

    monkeypatch.setattr(holder, "reload", refuse)
    with pytest.raises(ActionRefused, match="权重"):
        await editor.save(_edit_of(editor, GAMES, weight="0.9"), actor="zhouzhuren", reason="试试")
    assert calls[0] != original and calls[-1] == original  # written, refused, put back
    assert (rules / FILE).read_text(encoding="utf-8") == original and holder.current.version == version
    async with make_session_factory(engine)() as session:
        assert await rules_repo.latest_id(session) == 0


async def test_a_new_rule_is_appended_and_found_at_once(engine: AsyncEngine, tmp_path: Path) -> None:
    rules = _copy(tmp_path, "a")
    original = (rules / FILE).read_text(encoding="utf-8")
    editor, holder = _editor(engine, rules)
    with pytest.raises(ActionRefused, match="请选择"):
        await editor.save(RuleEdit(target="nothing", any=("骰子",)), actor="zhouzhuren", reason="新规则")
    with pytest.raises(ActionRefused, match="修改原因"):
        await editor.save(RuleEdit(target="gambling", any=("骰子",)), actor="zhouzhuren", reason=" ")
    new = RuleEdit(target="gambling", description="摇骰子赌钱", any=("摇骰子 骰子",), weight="0.5", shadow=True)
    rule_id = await editor.save(new, actor="zhouzhuren", reason="新玩法")
    assert rule_id == "gambling.staff_1"
    text = (rules / FILE).read_text(encoding="utf-8")
    assert text.startswith(original.rstrip("\n") + "\n\n[[rule]]\n")
    assert 'label = "gambling"' not in text[len(original) :]  # the file's [pack] gives it
    card = next(c for c in editor.cards() if c["id"] == rule_id)
    assert card["any"] == ["摇骰子", "骰子"] and card["shadow"] and card["description"] == "摇骰子赌钱"
    result = holder.current.classify("今晚摇骰子", role="villager")
    assert rule_id in {m.rule for m in result.shadow_matches}
    category = await editor.save(
        RuleEdit(target="category:water", description="井水浑浊", any=("井水浑",)), actor="zhouzhuren", reason="新"
    )
    assert category == "cat.water.staff_1" and 'category = "water"' in (rules / "categories/water.toml").read_text()


async def test_a_second_process_takes_the_new_version_from_the_database(engine: AsyncEngine, tmp_path: Path) -> None:
    first, first_holder = _editor(engine, _copy(tmp_path, "a"))
    second_rules = _copy(tmp_path, "b")
    second, second_holder = _editor(engine, second_rules)
    assert not await second.sync()
    edit = _edit_of(first, GAMES, any=(*_edit_of(first, GAMES).any, "骰子"))
    await first.save(edit, actor="zhouzhuren", reason="骰子")
    assert not _matched(second_holder, "今晚摇骰子", GAMES)
    assert await second.sync()
    assert _matched(second_holder, "今晚摇骰子", GAMES)
    assert (second_rules / FILE).read_text(encoding="utf-8") == (first.rules_dir / FILE).read_text(encoding="utf-8")
    assert second_holder.current.version == first_holder.current.version
    assert not await second.sync()  # nothing newer
    assert not await first.sync()  # its own version
    # a process started later (an older copy of the files) is brought to the stored version at once
    third, third_holder = _editor(engine, _copy(tmp_path, "c"))
    assert await third.sync() and _matched(third_holder, "今晚摇骰子", GAMES)


@pytest.mark.parametrize(
    ("rule_id", "changes"),
    [
        (GAMES, {"any": ("骰子", "麻将", "打牌", "彩票"), "window": "3"}),
        ("demand.outage", {"none": ("昨天",), "weight": "0.6"}),
        ("spam.drugs", {"shadow": True}),
    ],
)
def test_the_dry_run_skips_only_messages_the_edit_cannot_change(
    tmp_path: Path, rule_id: str, changes: dict[str, object]
) -> None:
    """Messages without any of the rule's terms are not classified twice: checked against classifying all."""
    from bot.rule_editor import _compare, _terms_of

    editor = RuleEditor(sessions=None, holder=ClassifierHolder(_copy(tmp_path, "a")), clock=SimulatedClock(NOW))  # type: ignore[arg-type]
    plan = editor._plan(_edit_of(editor, rule_id, **changes))
    candidate = editor._candidate(plan.files)
    current = editor._holder.current
    items = []
    for path in sorted((ROOT / "classifiers/data/heldout").glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()[:80]):
            row = json.loads(line)
            items.append((n, NOW, "群", "人", row["text"], row.get("role") or "villager"))
    terms = _terms_of(rule_id, current, candidate)
    assert terms
    fast = _compare(current, candidate, rule_id, items, terms)
    assert fast == _compare(current, candidate, rule_id, items, None)
    assert len(items) > 1000
