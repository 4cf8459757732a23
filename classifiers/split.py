"""Add a writer's file to the labelled data: validated whole, then split into train/ and heldout/.

A line goes to ``heldout/`` when ``sha1(id) % 5 == 0`` (about 20%), as for every other file (README there),
so a file added later is set aside the same way and nothing in ``heldout/`` is ever trained on.

Usage: python -m classifiers.split FILE [--data classifiers/data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from classifiers.training import TrainingDataError, load_examples

DATA = Path(__file__).resolve().parent / "data"


def held_out(line_id: str) -> bool:
    return int(hashlib.sha1(line_id.encode("utf-8")).hexdigest(), 16) % 5 == 0


def add_file(src: Path, data: Path = DATA) -> tuple[int, int]:
    """Write ``src``'s lines to ``data/train/NAME`` and ``data/heldout/NAME``; returns (train, heldout) counts.

    Every line must be a valid example with a unique id; on any error nothing is written.
    """
    load_examples([src])
    lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = [json.loads(line).get("id") for line in lines]
    if any(not isinstance(i, str) or not i for i in ids):
        raise TrainingDataError(f"{src}: every line needs a string 'id'")
    if len(set(ids)) != len(ids):
        raise TrainingDataError(f"{src}: ids are not unique")
    train = [line for line, i in zip(lines, ids, strict=True) if not held_out(i)]
    heldout = [line for line, i in zip(lines, ids, strict=True) if held_out(i)]
    for part, rows in (("train", train), ("heldout", heldout)):
        (data / part).mkdir(parents=True, exist_ok=True)
        (data / part / src.name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return len(train), len(heldout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    try:
        train, heldout = add_file(args.file, args.data)
    except TrainingDataError as e:
        print(f"split: {e}", file=sys.stderr)
        return 1
    print(f"{args.file.name}: {train} to train/, {heldout} to heldout/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
