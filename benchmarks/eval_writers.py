"""Leave one writer out: how the classifier does on a writer (a voice) it has never seen.

Run:  .venv/bin/python benchmarks/eval_writers.py [--writers hunan,minnan,...]

For each writer's file (train and heldout parts together), a model is trained on every other writer's
training part, with the same code and settings as `villagewatch train`, and evaluated on the left-out
writer's whole file. This is the closest stand-in for "a regional voice absent from the corpus": the
figures go to BENCHMARKS.md. The installed model is not touched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from classifiers.decide import attach
    from classifiers.evaluation import Item, evaluate
    from classifiers.loader import load_classifier
    from classifiers.training import data_files, load_examples, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", help="comma-separated file stems (default: every writer)")
    args = ap.parse_args()
    train_files = data_files("train")
    heldout_files = data_files("heldout")
    stems = sorted({p.stem for p in train_files} | {p.stem for p in heldout_files})
    if args.writers:
        stems = [s for s in stems if s in args.writers.split(",")]
    rules = REPO / "rules"
    rows = []
    for stem in stems:
        base = load_classifier(rules, with_model=False)
        examples = load_examples([p for p in train_files if p.stem != stem])
        model = train(base, examples)
        clf = attach(load_classifier(rules, with_model=False), model)
        held = load_examples([p for p in train_files + heldout_files if p.stem == stem])
        items = [Item(e.text, e.labels, e.category, e.role, e.where) for e in held]

        def predict(text: str, role: str | None, clf=clf) -> tuple[tuple[str, ...], str | None]:  # type: ignore[no-untyped-def]
            c = clf.classify(text, role=role)
            return c.labels, c.category

        rep = evaluate(items, predict)
        row = (
            stem,
            rep.n,
            rep.macro_f1,
            rep.ticket[2],
            rep.red_flag[1],
            rep.per_label["banquet"][1],
            rep.per_label["clue"][1],
            rep.category_accuracy,
            rep.notices_ticketed,
        )
        rows.append(row)
        print(
            f"{stem:<16} n={row[1]:4d}  macro F1 {row[2]:.3f}  ticket F1 {row[3]:.3f}  red recall {row[4]:.3f}  "
            f"banquet R {row[5]:.3f}  clue R {row[6]:.3f}  category {row[7]:.3f}  notices ticketed {row[8]:.1%}",
            flush=True,
        )
    if rows:
        n = sum(r[1] for r in rows)
        avg = [sum(r[i] * r[1] for r in rows) / n for i in range(2, 9)]
        print(
            f"{'weighted mean':<16} n={n:4d}  macro F1 {avg[0]:.3f}  ticket F1 {avg[1]:.3f}  red recall {avg[2]:.3f}  "
            f"banquet R {avg[3]:.3f}  clue R {avg[4]:.3f}  category {avg[5]:.3f}  notices ticketed {avg[6]:.1%}"
        )


if __name__ == "__main__":
    main()
