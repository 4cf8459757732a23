"""Headless Chromium, at a desktop's width and a phone's (390 px): county staff find a rule card, add a keyword,
see the dry run (escaped, numbers masked), save it with a reason and roll it back; a cadre never reaches it."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.clock import CHINA, SimulatedClock
from bot.rule_editor import RuleEditor
from classifiers import ClassifierHolder
from storage.engine import make_engine, make_session_factory
from storage.migrate import upgrade
from storage.models import Message
from storage.repos import rules as rules_repo
from tests.dashboards.fakes import fake_app
from tests.dashboards.seed import PASSWORD, seed
from tests.dashboards.test_browser_phone import _fits, _shot

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 9, 10, 12, 0, tzinfo=CHINA)
DICE = "今晚老地方摇骰子,<b>带够钱</b>,电话13812345678"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Any, Path]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rules.db'}")
    await upgrade(engine)
    factory = make_session_factory(engine)
    await seed(factory)
    async with factory() as session:
        session.add(
            Message(
                account="bot",
                platform_id="dice",
                at=NOW - timedelta(days=1),
                group_name="石桥村监督服务群",
                sender_name="村民乙",
                text=DICE,
                county="舒城县",
                township="城关镇",
                village="石桥村",
            )
        )
        await session.commit()
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    editor = RuleEditor(sessions=factory, holder=ClassifierHolder(rules), clock=SimulatedClock(NOW))
    runner = web.AppRunner(fake_app(factory, rule_editor=editor, clock=lambda: NOW))
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", factory, rules
    finally:
        await runner.cleanup()
        await engine.dispose()


async def _login(page: Any, base: str, username: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}], ids=["desktop", "phone"]
)
async def test_county_staff_edit_a_keyword_with_the_dry_run_shown(
    served: Any, browser: Any, viewport: dict[str, int], tmp_path: Path
) -> None:
    base, factory, rules = served
    phone = viewport["width"] == 390
    width = "phone" if phone else "desktop"
    original = (rules / "labels/gambling.toml").read_text(encoding="utf-8")
    context = await browser.new_context(viewport=viewport, device_scale_factor=2 if phone else 1)
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    await _login(page, base, "county")

    await page.goto(f"{base}/rules")
    if phone:
        await _fits(page)
    await page.fill("input[name=q]", "麻将")
    await page.click("form.rule-search button")
    await page.wait_for_load_state()
    await _shot(page, f"rules_{width}", tmp_path)
    card = page.locator("#rule-gambling\\.games")
    assert await card.is_visible()
    assert "赌博玩法与彩票" in await card.inner_text() and "gambling" not in await card.inner_text()
    assert await card.locator(".chip", has_text="打麻将").count() == 1
    await card.locator("a", has_text="查看与修改").click()
    await page.wait_for_url(f"{base}/rules/rule/gambling.games")

    await page.fill("input[name=any_add]", "骰子")
    await page.locator("label.chip-check", has_text="搓麻将").locator("input").uncheck()
    await page.click("#dry-run")
    await page.wait_for_selector("#dry-run-result")
    result = await page.inner_text("#dry-run-result")
    assert "新增命中" in result and "138****5678" in result and "<b>带够钱</b>" in result
    assert "13812345678" not in result
    await _shot(page, f"rule_dry_run_{width}", tmp_path)
    if phone:
        await _fits(page)
    assert (rules / "labels/gambling.toml").read_text(encoding="utf-8") == original  # a dry run saves nothing

    await page.fill("#save-form input[name=reason]", "骰子局增多")
    await page.click("#save")
    await page.wait_for_url(f"{base}/rules/rule/gambling.games?saved=1")
    assert "规则已保存" in await page.inner_text("main")
    chips = await page.locator("label.chip-check").all_inner_texts()
    assert any("骰子" in c for c in chips) and not any("搓麻将" in c for c in chips)
    saved = (rules / "labels/gambling.toml").read_text(encoding="utf-8")
    assert '"骰子"' in saved and '"搓麻将"' not in saved
    assert saved.splitlines()[:8] == original.splitlines()[:8]  # the file's comments and [pack] as they were

    await page.goto(f"{base}/rules/versions")
    if phone:
        await _fits(page)
    assert "骰子局增多" in await page.inner_text("main")
    await page.locator("article.version", has_text="最初的规则文件").locator("input[name=reason]").fill("撤回")
    await page.locator("article.version", has_text="最初的规则文件").locator("button").click()
    await page.wait_for_url(f"{base}/rules/versions?done=1")
    assert (rules / "labels/gambling.toml").read_text(encoding="utf-8") == original
    async with factory() as session:
        assert [v.action for v in await rules_repo.list_versions(session)] == ["rollback", "edit"]
    assert dialogs == []  # the escaped message text never ran as markup
    await context.close()


async def test_a_cadre_never_reaches_the_rule_editor(served: Any, browser: Any) -> None:
    base, _factory, _rules = served
    page = await browser.new_page()
    await _login(page, base, "cadre_a")
    for path in ("/rules", "/rules/rule/gambling.games", "/rules/versions", "/rules/new"):
        resp = await page.goto(base + path)
        assert resp is not None and resp.status == 403, path
    await page.close()
