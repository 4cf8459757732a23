"""Staff teach the classifier from the dashboard: per-label corrections, missed messages, the model page."""

from __future__ import annotations

from sqlmodel import col, select

from bot.teaching import staff_examples
from classifiers.model import RED_FLAGS as RED
from storage.models import AuditLog, Flag, LabelFeedback, Message
from storage.repos import feedback as feedback_repo
from tests.dashboards.conftest import Dash


async def test_correction_is_per_label_and_becomes_a_training_example(dash: Dash) -> None:
    await dash.login("town_a")
    flag_id = dash.world.flags["banquet"]
    page = await (await dash.client.get(f"/flags/{flag_id}")).text()
    assert "纠正标签" in page and 'name="label" value="banquet"' in page
    # The banquet is a false alarm, the demand stands.
    resp = await dash.post(f"/flags/{flag_id}/labels", {"label": "demand", "category": "water", "note": "其实是问停水"})
    assert resp.status == 302 and resp.headers["Location"] == f"/flags/{flag_id}?taught=1"
    async with dash.factory() as session:
        flag = await session.get(Flag, flag_id)
        assert flag is not None
        rows = (await session.exec(select(LabelFeedback))).all()
        audit = (await session.exec(select(AuditLog).where(AuditLog.action == "label_correction"))).all()
        precision = await feedback_repo.label_precision(session, RED)
    assert [(r.message_id, r.labels, r.category, r.username, r.source) for r in rows] == [
        (flag.message_id, ["demand"], "water", "town_a", "correction")
    ]
    assert len(audit) == 1 and "诉求" in audit[0].detail
    assert precision["banquet"] == {"judged": 1, "upheld": 0}
    examples = await staff_examples(dash.factory)
    assert len(examples) == 1 and examples[0].labels == frozenset({"demand"}) and examples[0].category == "water"
    assert "八十大寿" in examples[0].text


async def test_a_demand_without_category_or_three_labels_is_refused(dash: Dash) -> None:
    await dash.login("town_a")
    flag_id = dash.world.flags["banquet"]
    assert (await dash.post(f"/flags/{flag_id}/labels", {"label": "demand"})).status == 400
    form = [("_csrf", dash.csrf), ("label", "clue"), ("label", "banquet"), ("label", "abuse")]
    assert (await dash.client.post(f"/flags/{flag_id}/labels", data=form, allow_redirects=False)).status == 400
    async with dash.factory() as session:
        assert (await session.exec(select(LabelFeedback))).all() == []


async def test_a_missed_red_flag_enters_the_digest(dash: Dash) -> None:
    await dash.login("town_a")
    async with dash.factory() as session:
        unflagged = (
            await session.exec(
                select(Message)
                .where(Message.township == "城关镇")
                .where(col(Message.id).not_in(select(Flag.message_id)))
            )
        ).first()
    assert unflagged is not None and unflagged.id is not None
    page = await (await dash.client.get(f"/messages/{unflagged.id}/label")).text()
    assert "标记漏报" in page
    resp = await dash.post(f"/messages/{unflagged.id}/label", {"label": "gambling"})
    assert resp.status == 302
    async with dash.factory() as session:
        flag = (await session.exec(select(Flag).where(Flag.message_id == unflagged.id))).first()
        fb = await feedback_repo.latest_for_message(session, message_id=unflagged.id)
    assert flag is not None and flag.labels == ["gambling"] and flag.verdict == "confirmed"
    assert fb is not None and fb.source == "missed"
    digest = await (await dash.client.get("/digest?all=1")).text()
    assert f"/flags/{flag.id}" in digest


async def test_other_townships_and_cadres_cannot_teach(dash: Dash) -> None:
    await dash.login("town_b")
    flag_id = dash.world.flags["banquet"]  # 城关镇
    assert (await dash.post(f"/flags/{flag_id}/labels", {"label": "chat"})).status == 404
    await dash.login("cadre_a")
    assert (await dash.client.get("/model")).status == 403
    assert (await dash.post(f"/flags/{flag_id}/labels", {"label": "chat"})).status == 403


async def test_model_page_and_background_retraining(dash: Dash) -> None:
    await dash.login("town_a")
    page = await (await dash.client.get("/model")).text()
    assert "abc123def456" in page and "11月30日 16:00" in page and "只有管理员可以重新训练" in page
    assert (await dash.post("/model/retrain")).status == 403
    await dash.login("admin")
    resp = await dash.post("/model/retrain")
    assert resp.status == 302 and resp.headers["Location"] == "/model"
    assert dash.teacher.retrain_calls == ["admin"]
    page = await (await dash.client.get("/model")).text()
    assert "正在训练" in page and "fold 2/5" in page
    again = await dash.post("/model/retrain")
    assert again.headers["Location"] == "/model?busy=1" and dash.teacher.retrain_calls == ["admin"]


async def test_a_ticket_message_is_relabelled_from_the_ticket_page(dash: Dash) -> None:
    await dash.login("town_a")
    tid = dash.world.tickets["water"]
    page = await (await dash.client.get(f"/tickets/{tid}")).text()
    link = page.split('href="/messages/', 1)[1].split('"', 1)[0]
    assert link.endswith("/label?from=ticket")
    message_id = int(link.split("/", 1)[0])
    form = await (await dash.client.get(f"/messages/{link}")).text()
    assert "纠正标签" in form and 'name="from" value="ticket"' in form
    resp = await dash.post(f"/messages/{message_id}/label", {"label": "demand", "category": "power", "from": "ticket"})
    assert resp.status == 302
    async with dash.factory() as session:
        fb = await feedback_repo.latest_for_message(session, message_id=message_id)
    assert fb is not None and (fb.labels, fb.category, fb.source) == (["demand"], "power", "correction")
