"""`villagewatch classify`: JSON lines in, JSON lines out, one output line per input line, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from classifiers.loader import load_classifier
from classifiers.rules import RuleLoadError
from classifiers.types import ROLES


def _error(outfile: TextIO, errfile: TextIO, n: int, id_: object, msg: str) -> None:
    text = f"line {n}: {msg}"
    outfile.write(json.dumps({"id": id_, "error": text}, ensure_ascii=False) + "\n")
    errfile.write(f"classify: {text}\n")


def run_classify(rules_dir: Path, infile: BinaryIO, outfile: TextIO, errfile: TextIO) -> int:
    """Classify every line of ``infile``. Exit code: 0 ok, 1 if any line was bad, 2 if rules failed."""
    try:
        clf = load_classifier(rules_dir)
    except RuleLoadError as e:
        errfile.write(f"classify: rules not loaded: {e}\n")
        return 2
    bad = False
    for n, raw in enumerate(infile, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = True
            _error(outfile, errfile, n, None, f"invalid UTF-8 at byte {e.start}")
            continue
        if not line.strip():
            bad = True
            _error(outfile, errfile, n, None, "empty line")
            continue
        try:
            obj: Any = json.loads(line)
        except ValueError as e:
            bad = True
            _error(outfile, errfile, n, None, f"invalid JSON: {e}")
            continue
        if not isinstance(obj, dict):
            bad = True
            _error(outfile, errfile, n, None, "expected a JSON object")
            continue
        id_ = obj.get("id")
        text = obj.get("text")
        role = obj.get("role")
        if not isinstance(text, str):
            bad = True
            _error(outfile, errfile, n, id_, "missing or non-string 'text'")
            continue
        if role is not None and role not in ROLES:
            bad = True
            _error(outfile, errfile, n, id_, f"unknown role {role!r}; one of {', '.join(ROLES)}")
            continue
        result = clf.classify(text, role=role)
        outfile.write(json.dumps(result.to_contract(id_), ensure_ascii=False) + "\n")
    outfile.flush()
    return 1 if bad else 0
