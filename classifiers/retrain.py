"""Retraining as a command: train, compare with the installed model on the set-aside data, install or refuse.

Used by `villagewatch train` and by the dashboard's background retraining; both print or report the
same before/after figures. The new file is written next to the old one and renamed over it, so the
running bot (which watches ``rules/``) swaps to it whole, or keeps the old one if the file is bad.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from classifiers.evaluation import Item, Report, evaluate, format_report
from classifiers.loader import load_classifier, model_path
from classifiers.model import LinearModel, ModelLoadError, load_model
from classifiers.training import Example, digest_files, load_examples, train

# The new model must not lose more than this on the set-aside data (macro F1, ticket-worthy F1,
# red-flag recall) to be installed without --force.
TOLERANCE = 0.005


@dataclass
class RetrainOutcome:
    installed: bool
    model: LinearModel
    before: Report | None
    after: Report
    reason: str


def _items(examples: Sequence[Example]) -> list[Item]:
    return [Item(ex.text, ex.labels, ex.category, ex.role, ex.where) for ex in examples]


def _worse(after: Report, before: Report) -> str | None:
    checks = (
        ("macro F1", after.macro_f1, before.macro_f1),
        ("ticket-worthy F1", after.ticket[2], before.ticket[2]),
        ("red-flag recall", after.red_flag[1], before.red_flag[1]),
    )
    for name, new, old in checks:
        if new < old - TOLERANCE:
            return f"{name} {old:.3f} -> {new:.3f}"
    return None


def retrain(
    rules_dir: Path,
    train_files: Sequence[Path],
    heldout_files: Sequence[Path],
    *,
    extra: Sequence[Example] = (),
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> RetrainOutcome:
    """Train on ``train_files`` (+ ``extra``, e.g. staff verdicts); install unless worse on ``heldout_files``.

    Raises TrainingDataError (file:line) before anything is trained if any example is bad.
    """
    examples = load_examples(train_files) + list(extra)
    heldout = _items(load_examples(heldout_files))
    rules_only = load_classifier(rules_dir, with_model=False)
    model = train(rules_only, examples, progress=progress, data_digest=digest_files(train_files))
    progress("评估 / evaluating")
    path = model_path(rules_dir)
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "candidate.npz"
        model.save(candidate)
        model = load_model(candidate)  # what is installed is exactly what was validated
        from classifiers.decide import attach

        new_clf = attach(rules_only, model)  # the same rules the model was trained on

        def predict_new(text: str, role: str | None) -> tuple[tuple[str, ...], str | None]:
            c = new_clf.classify(text, role=role)
            return c.labels, c.category

        after = evaluate(heldout, predict_new)
        before: Report | None = None
        try:
            load_model(path)
        except ModelLoadError:
            old_clf = None
        else:
            old_clf = load_classifier(rules_dir)
        if old_clf is not None:

            def predict_old(text: str, role: str | None) -> tuple[tuple[str, ...], str | None]:
                c = old_clf.classify(text, role=role)
                return c.labels, c.category

            before = evaluate(heldout, predict_old)
        worse = _worse(after, before) if before is not None else None
        if worse and not force:
            return RetrainOutcome(False, model, before, after, f"新模型在留出集上更差,未安装:{worse}")
        model.save(path)
    reason = "已安装新模型" + (f"(强制安装,尽管 {worse})" if worse else "")
    return RetrainOutcome(True, model, before, after, reason)


def print_outcome(outcome: RetrainOutcome, out: TextIO) -> None:
    if outcome.before is not None:
        print(format_report("installed model on the set-aside data", outcome.before), file=out)
    print(format_report(f"new model {outcome.model.version} on the set-aside data", outcome.after), file=out)
    meta = outcome.model.meta
    print(
        f"examples {meta.get('examples')}, features {meta.get('features')}, rules {meta.get('rules_version')}", file=out
    )
    print(outcome.reason, file=out)
