"""Staff teach the classifier: their corrections become examples, and retraining runs in the background.

`villagewatch train --staff` and the dashboard's 模型 page both go through ``staff_examples`` and
``classifiers.retrain``; a retrained model is installed only when it is not worse on the set-aside data,
and the rule watcher (or ``reload`` here) swaps it in whole.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from bot.services import Services
from classifiers.retrain import retrain
from classifiers.training import Example, TrainingDataError, data_files
from classifiers.types import CATEGORIES, LABELS
from dashboards.ports import ModelStatus
from storage.engine import SessionFactory
from storage.repos import feedback as feedback_repo

log = logging.getLogger(__name__)
STAFF_SOURCE = "staff"


async def staff_examples(sessions: SessionFactory) -> list[Example]:
    """The newest staff feedback per message, as training examples (bad rows are skipped and logged)."""
    async with sessions() as session:
        records = await feedback_repo.training_examples(session)
    out = []
    for r in records:
        labels = [lab for lab in r["labels"] if lab in LABELS] or ["chat"]
        category = r["category"] if r["category"] in CATEGORIES else None
        if {"demand", "consult"} & set(labels) and category is None:
            category = "other"
        out.append(
            Example(
                r["text"],
                frozenset(labels),
                category,
                r["role"] or None,
                STAFF_SOURCE,
                f"label_feedback:message {r['message_id']}",
            )
        )
    return out


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


class StaffModelTeacher:
    """dashboards.ports.ModelTeacher: the model's state and one background retraining at a time."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._task: asyncio.Task[None] | None = None
        self._progress = ""

    def status(self) -> ModelStatus:
        holder = self._services.classifiers
        clf = holder.current
        model = clf.model
        return ModelStatus(
            mode="model" if model is not None else "rules_only",
            version=model.version if model is not None else None,
            trained_at=_when(model.meta.get("trained_at")) if model is not None else None,
            examples=int(model.meta.get("examples", 0)) if model is not None else None,
            error=holder.last_error or clf.model_error,
            training=self._task is not None and not self._task.done(),
            progress=self._progress,
        )

    async def start_retraining(self, *, actor: str) -> bool:
        if self._task is not None and not self._task.done():
            return False
        self._progress = "准备训练数据"
        self._task = asyncio.create_task(self._run(actor))
        return True

    def _step(self, text: str) -> None:
        self._progress = text

    async def _run(self, actor: str) -> None:
        holder = self._services.classifiers
        try:
            extra = await staff_examples(self._services.sessions)
            outcome = await asyncio.to_thread(
                retrain,
                holder.rules_dir,
                data_files("train"),
                data_files("heldout"),
                extra=extra,
                progress=self._step,
            )
        except (TrainingDataError, OSError, ValueError) as exc:
            log.error("retraining requested by %s failed: %s", actor, exc)
            self._progress = f"训练失败:{exc}"
            return
        if outcome.installed:
            await asyncio.to_thread(holder.reload)
        a = outcome.after
        figures = f"宏平均 F1 {a.macro_f1:.3f},红线召回 {a.red_flag[1]:.3f},工单 F1 {a.ticket[2]:.3f}"
        self._progress = f"{outcome.reason}({figures};含工作人员标注 {len(extra)} 条)"
        log.info("retraining requested by %s: %s", actor, self._progress)
