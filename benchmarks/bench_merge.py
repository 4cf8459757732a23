"""The merge decision (bot/tickets/merge.py) on labelled pairs of reports: precision of "same" and recall.

Run:  .venv/bin/python benchmarks/bench_merge.py [--pairs tests/data/merge_pairs.jsonl] [--threshold 30]

Each line of the pairs file: ``{"category": ..., "a": text, "b": text, "same": bool}`` — two reports from
one village in one category (what the merge query already guarantees), labelled by hand. The texts go
through the same normalisation and keyword extraction as the live workflow (the rules in rules/).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def evaluate(pairs_file: Path, threshold: float) -> dict[str, Any]:
    from bot.tickets.merge import same_problem
    from classifiers import ClassifierHolder

    tools = ClassifierHolder(REPO / "rules").current
    tp = fp = fn = tn = 0
    mistakes: list[dict[str, Any]] = []
    for number, line in enumerate(pairs_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
            a, b, truth = str(pair["a"]), str(pair["b"]), bool(pair["same"])
        except (ValueError, KeyError) as exc:
            raise SystemExit(f"{pairs_file}:{number}: bad pair ({exc})") from exc
        said = same_problem(
            tools.normalize(a), tools.keywords(a), tools.normalize(b), tools.keywords(b), threshold=threshold / 100
        )
        if said and truth:
            tp += 1
        elif said:
            fp += 1
        elif truth:
            fn += 1
        else:
            tn += 1
        if said != truth:
            mistakes.append({"line": number, "a": a, "b": b, "same": truth})
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {
        "pairs": tp + fp + fn + tn,
        "same": tp + fn,
        "different": fp + tn,
        "precision": precision,
        "recall": recall,
        "false_merges": fp,
        "missed_merges": fn,
        "mistakes": mistakes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=REPO / "tests/data/merge_pairs.jsonl")
    parser.add_argument("--threshold", type=float, default=30.0, help="bigram Jaccard, 0–100 ([merge] similarity)")
    args = parser.parse_args()
    result = evaluate(args.pairs, args.threshold)
    print(
        f"{result['pairs']} pairs ({result['same']} same, {result['different']} different): "
        f"precision {result['precision']:.3f}, recall {result['recall']:.3f}, "
        f"{result['false_merges']} false merges, {result['missed_merges']} missed"
    )
    for m in result["mistakes"]:
        print(f"  line {m['line']}: {'missed' if m['same'] else 'false merge'}: {m['a']} | {m['b']}")


if __name__ == "__main__":
    main()
