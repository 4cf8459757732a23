"""Staff teach the classifier: correct a flag's or a ticket's labels, mark a missed message, retrain the model.

A correction is per label (the banquet is a false alarm, the demand stands) and becomes a training
example; a message marked as missed with a red-flag label also enters the digest at once. The 模型 page
shows which model decides, its training date, per-label precision from staff judgements, and lets an
admin retrain in the background.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from classifiers.model import RED_FLAGS
from dashboards.context import MODEL_TEACHER, SESSION_FACTORY, audit, now, render, require, viewer
from dashboards.labels import CATEGORIES, LABELS
from storage.models import Flag
from storage.repos import dashboard as repo
from storage.repos import feedback as feedback_repo
from storage.repos import messages as messages_repo

TICKET_LABELS = ("demand", "consult")


async def _teach(session: Any, request: web.Request, message_id: int, form: Any, source: str) -> tuple[list[str], str]:
    """Record what staff say a message should have been; returns the labels and the note for the audit."""
    labels, category = _labels_from_form(form)
    note = str(form.get("note", "")).strip()[:500]
    await feedback_repo.add_feedback(
        session,
        message_id=message_id,
        at=now(request),
        username=viewer(request).username,
        labels=labels,
        category=category,
        source=source,
        note=note,
    )
    return labels, note


def _labels_from_form(form: Any) -> tuple[list[str], str | None]:
    labels = [str(v) for v in form.getall("label", []) if str(v) in LABELS]
    labels = [lab for lab in LABELS if lab in labels]  # the contract's order, no duplicates
    if len(labels) > 2:
        raise web.HTTPBadRequest(text="最多选择两个标签")
    if not labels:
        labels = ["chat"]
    if len(labels) > 1 and "chat" in labels:
        labels.remove("chat")
    category = str(form.get("category", "")) or None
    if any(lab in TICKET_LABELS for lab in labels):
        if category not in CATEGORIES:
            raise web.HTTPBadRequest(text="诉求和咨询需要选择类别")
    else:
        category = None
    return labels, category


async def correct_flag(request: web.Request) -> web.StreamResponse:
    """POST /flags/{id}/labels: the labels and category this flag's message should have had."""
    me = viewer(request)
    require(request, me.discipline)
    flag_id = int(request.match_info["flag_id"])
    async with request.app[SESSION_FACTORY]() as session:
        row = await repo.get_flag(session, flag_id=flag_id, scope=me.scope)
    if row is None:  # absent or out of scope look the same
        raise web.HTTPNotFound(text="未找到")
    form = await request.post()
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        labels, note = await _teach(session, request, row["message_id"], form, "correction")
    shown = "、".join(LABELS[lab] for lab in labels)
    await audit(request, "label_correction", target=f"flag:{flag_id}", detail=f"{shown} {note}".strip())
    raise web.HTTPFound(f"/flags/{flag_id}?taught=1")


async def _visible_message(request: web.Request, message_id: int) -> dict[str, Any]:
    me = viewer(request)
    async with request.app[SESSION_FACTORY]() as session:
        message = await repo.get_message(session, message_id=message_id, scope=me.scope)
    if message is None:  # absent or out of scope look the same
        raise web.HTTPNotFound(text="未找到")
    return dict(message)


async def label_message_page(request: web.Request) -> web.StreamResponse:
    """GET /messages/{id}/label: mark a message the classifier missed (a red flag, a demand)."""
    me = viewer(request)
    require(request, me.discipline)
    message = await _visible_message(request, int(request.match_info["message_id"]))
    async with request.app[SESSION_FACTORY]() as session:
        latest = await feedback_repo.latest_for_message(session, message_id=message["id"])
    return render(
        request,
        "label_message.html",
        m=message,
        latest=latest,
        done=request.query.get("done") == "1",
        from_ticket=request.query.get("from") == "ticket",
    )


async def label_message(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    message = await _visible_message(request, int(request.match_info["message_id"]))
    form = await request.post()
    from_ticket = form.get("from") == "ticket"  # a ticket's message relabelled (e.g. the wrong category)
    async with request.app[SESSION_FACTORY]() as session, session.begin():
        labels, note = await _teach(session, request, message["id"], form, "correction" if from_ticket else "missed")
        red = [lab for lab in labels if lab in RED_FLAGS]
        if red and not await repo.flag_for_message(session, message_id=message["id"]):
            await messages_repo.add_flag(
                session,
                Flag(
                    message_id=message["id"],
                    at=message["at"],
                    group_name=message["group_name"],
                    sender_name=message["sender_name"],
                    role=message["role"],
                    county=message["county"],
                    township=message["township"],
                    village=message["village"],
                    labels=labels,
                    severity="high" if "clue" in red else "normal",
                    rules=[],
                    keywords=[],
                    confidential="clue" in red or bool(message["private"]),
                    tier="confirmed",
                    reasons={lab: ["工作人员标注"] for lab in red},
                    verdict="confirmed",
                ),
            )
    shown = "、".join(LABELS[lab] for lab in labels)
    action = "label_correction" if from_ticket else "label_missed"
    await audit(request, action, target=f"message:{message['id']}", detail=f"{shown} {note}".strip())
    raise web.HTTPFound(f"/messages/{message['id']}/label?done=1" + ("&from=ticket" if from_ticket else ""))


async def model_page(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.discipline)
    status = request.app[MODEL_TEACHER].status()
    async with request.app[SESSION_FACTORY]() as session:
        precision = await feedback_repo.label_precision(session, RED_FLAGS)
        taught = await feedback_repo.count_feedback(session)
    return render(request, "model.html", model=status, precision=precision, taught=taught)


async def retrain(request: web.Request) -> web.StreamResponse:
    me = viewer(request)
    require(request, me.role == "admin")
    started = await request.app[MODEL_TEACHER].start_retraining(actor=me.username)
    if started:
        await audit(request, "model_retrain", target="model")
    raise web.HTTPFound("/model" + ("" if started else "?busy=1"))
