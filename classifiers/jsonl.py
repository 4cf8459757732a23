"""`villagewatch classify`: JSON lines in, JSON lines out, one output line per input line, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from classifiers.loader import load_classifier
from classifiers.rules import RuleLoadError
from classifiers.types import ROLES

MAX_LINE_BYTES = 1_000_000
"""A line longer than this is refused (a message is at most a few thousand characters)."""


class _BadLine(ValueError):
    """This line cannot be classified; the message says why."""


class _LineError(_BadLine):
    """A bad line whose id could be read, so the error line carries it."""

    def __init__(self, id_: object, message: str) -> None:
        super().__init__(message)
        self.id = id_


def _reject_constant(name: str) -> Any:
    raise _BadLine(f"invalid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _BadLine(f"invalid JSON: number {text[:40]} is out of range")
    return value


def _has_surrogate(value: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in value)


def _safe_id(value: object) -> object:
    """The id echoed in an output line: only a string, a number, true/false or null, never a lone surrogate."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, str):
        return None if _has_surrogate(value) else value
    return None


def _error(outfile: TextIO, errfile: TextIO, n: int, id_: object, msg: str) -> None:
    text = f"line {n}: {msg}"
    outfile.write(json.dumps({"id": _safe_id(id_), "error": text}, ensure_ascii=False, allow_nan=False) + "\n")
    errfile.write(f"classify: {text}\n")


def _parse(raw: bytes) -> tuple[object, str, str | None]:
    """(id, text, role) of one input line; raises _BadLine naming what is wrong."""
    if len(raw) > MAX_LINE_BYTES:
        raise _BadLine(f"line is longer than {MAX_LINE_BYTES} bytes")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _BadLine(f"invalid UTF-8 at byte {e.start}") from e
    if not line.strip():
        raise _BadLine("empty line")
    try:
        obj: Any = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
    except _BadLine:
        raise
    except RecursionError as e:
        raise _BadLine("invalid JSON: nested too deeply") from e
    except ValueError as e:
        raise _BadLine(f"invalid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise _BadLine("expected a JSON object")
    id_ = obj.get("id")
    if id_ is not None and not isinstance(id_, str | int | float):
        raise _BadLine("'id' must be a string, a number or null")
    if isinstance(id_, str) and _has_surrogate(id_):
        raise _BadLine("'id' contains a lone surrogate (not valid Unicode)")
    text = obj.get("text")
    if not isinstance(text, str):
        raise _LineError(id_, "missing or non-string 'text'")
    if _has_surrogate(text):
        raise _LineError(id_, "'text' contains a lone surrogate (not valid Unicode)")
    role = obj.get("role")
    if role is not None and role not in ROLES:
        raise _LineError(id_, f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return id_, text, role


def run_classify(rules_dir: Path, infile: BinaryIO, outfile: TextIO, errfile: TextIO) -> int:
    """Classify every line of ``infile``. Exit code: 0 ok, 1 if any line was bad, 2 if rules failed.

    Every line gets exactly one output line, in order: its classification, or ``{"id", "error"}`` naming
    the line and what is wrong with it; a bad line never stops the lines after it.
    """
    try:
        clf = load_classifier(rules_dir)
    except RuleLoadError as e:
        errfile.write(f"classify: rules not loaded: {e}\n")
        return 2
    bad = False
    for n, raw in enumerate(infile, 1):
        try:
            id_, text, role = _parse(raw)
        except _BadLine as e:
            bad = True
            _error(outfile, errfile, n, getattr(e, "id", None), str(e))
            continue
        try:
            result = clf.classify(text, role=role)
            line = json.dumps(result.to_contract(id_), ensure_ascii=False, allow_nan=False)
        except Exception as e:  # the error boundary of one line: report it and go on with the next
            bad = True
            _error(outfile, errfile, n, id_, f"cannot classify: {type(e).__name__}: {e}")
            continue
        outfile.write(line + "\n")
    outfile.flush()
    return 1 if bad else 0
