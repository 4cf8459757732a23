"""`villagewatch classify`: JSON lines in, JSON lines out, one output line per input line, in order."""

from __future__ import annotations

import collections
import itertools
import json
import multiprocessing as mp
import os
from collections.abc import Iterator
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from classifiers.engine import Classifier
from classifiers.loader import load_classifier
from classifiers.rules import RuleLoadError
from classifiers.types import ROLES, Classification

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


def _error_lines(n: int, id_: object, msg: str) -> tuple[str, str]:
    text = f"line {n}: {msg}"
    out = json.dumps({"id": _safe_id(id_), "error": text}, ensure_ascii=False, allow_nan=False)
    return out, f"classify: {text}"


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


CHUNK = 500
"""Lines handed to a worker at a time."""
MIN_PARALLEL_LINES = 4 * CHUNK
"""Below this, workers cost more to start than they save."""

_worker_clf: Classifier | None = None
"""The classifier a forked worker inherited (loaded once, before the fork)."""


def classify_lines(clf: Classifier, lines: list[tuple[int, bytes]]) -> list[tuple[str, str | None]]:
    """Each numbered input line as (its output line, its error for stderr or None); never raises.

    The good lines are classified together (``Classifier.classify_many``); should that fail, one by one,
    so that only the line at fault gets an error.
    """
    out: list[tuple[str, str | None] | None] = []
    good: list[tuple[int, int, object, str, str | None]] = []
    for n, raw in lines:
        try:
            id_, text, role = _parse(raw)
        except _BadLine as e:
            out.append(_error_lines(n, getattr(e, "id", None), str(e)))
            continue
        good.append((len(out), n, id_, text, role))
        out.append(None)
    try:
        verdicts: list[Classification | None] = list(clf.classify_many([(t, r) for _, _, _, t, r in good]))
    except Exception:  # find the line at fault below
        verdicts = [None] * len(good)
    for (slot, n, id_, text, role), verdict in zip(good, verdicts, strict=True):
        try:
            result = verdict if verdict is not None else clf.classify(text, role=role)
            out[slot] = (json.dumps(result.to_contract(id_), ensure_ascii=False, allow_nan=False), None)
        except Exception as e:  # the error boundary of one line: report it and go on with the next
            out[slot] = _error_lines(n, id_, f"cannot classify: {type(e).__name__}: {e}")
    return [o for o in out if o is not None]


def _classify_in_worker(lines: list[tuple[int, bytes]]) -> list[tuple[str, str | None]]:
    assert _worker_clf is not None
    return classify_lines(_worker_clf, lines)


def _chunks(infile: BinaryIO) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for item in enumerate(infile, 1):
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _results(clf: Classifier, infile: BinaryIO, jobs: int) -> Iterator[list[tuple[str, str | None]]]:
    """Results chunk by chunk, in input order; with ``jobs`` > 1 and a long input, from forked workers.

    Workers are forked after the classifier is loaded, so they share it and start at once; at most a few
    chunks per worker are in flight, so a long input is never read into memory whole.
    """
    chunks = _chunks(infile)
    first = list(itertools.islice(chunks, MIN_PARALLEL_LINES // CHUNK))
    if jobs <= 1 or len(first) < MIN_PARALLEL_LINES // CHUNK or "fork" not in mp.get_all_start_methods():
        for chunk in itertools.chain(first, chunks):
            yield classify_lines(clf, chunk)
        return
    global _worker_clf
    _worker_clf = clf
    with mp.get_context("fork").Pool(jobs) as pool:
        pending: collections.deque[AsyncResult[list[tuple[str, str | None]]]] = collections.deque()
        for chunk in itertools.chain(first, chunks):
            pending.append(pool.apply_async(_classify_in_worker, (chunk,)))
            if len(pending) >= 3 * jobs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def run_classify(rules_dir: Path, infile: BinaryIO, outfile: TextIO, errfile: TextIO, *, jobs: int = 1) -> int:
    """Classify every line of ``infile``. Exit code: 0 ok, 1 if any line was bad, 2 if rules failed.

    Every line gets exactly one output line, in order: its classification, or ``{"id", "error"}`` naming
    the line and what is wrong with it; a bad line never stops the lines after it. ``jobs`` processes
    share the work of a long input (`villagewatch classify` uses every core).
    """
    try:
        clf = load_classifier(rules_dir)
    except RuleLoadError as e:
        errfile.write(f"classify: rules not loaded: {e}\n")
        return 2
    bad = False
    for chunk in _results(clf, infile, jobs):
        for line, error in chunk:
            outfile.write(line + "\n")
            if error is not None:
                bad = True
                errfile.write(error + "\n")
    outfile.flush()
    return 1 if bad else 0
