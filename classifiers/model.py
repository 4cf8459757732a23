"""The trained linear model: a weight per (feature, output), scored with one sum per message.

Outputs are the ten labels (each its own logistic regression: several may hold) and the thirteen
categories (one multinomial regression, asked only of demands and consultations). The file is a NumPy
``.npz`` archive without pickles, validated whole on load; a bad file raises ``ModelLoadError`` and the
caller keeps what it had (rules alone, or the previous model).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifiers.features import GRAM
from classifiers.types import CATEGORIES, LABELS

FORMAT = "villagewatch-linear-1"
RED_FLAGS: tuple[str, ...] = ("clue", "banquet", "gambling", "abuse", "spam")


_SHIFT1 = np.uint64(21)
_SHIFT2 = np.uint64(42)


def gram_code(gram: str) -> int:
    """One to three characters as one integer: code points 21 bits apart (U+0000 read as U+FFFD)."""
    if not 1 <= len(gram) <= 3:
        raise ModelLoadError(f"n-gram feature {gram!r} is not one to three characters long")
    code = 0
    for k, ch in enumerate(gram.replace("\0", "\ufffd")):
        code |= ord(ch) << (21 * k)
    return code


class ModelLoadError(Exception):
    """The model file is missing, unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True, slots=True)
class Scores:
    """Probabilities for one message and the features that produced them."""

    labels: dict[str, float]
    categories: dict[str, float]
    rows: tuple[int, ...]  # vocabulary rows of the message's known features


class LinearModel:
    """Immutable after construction; safe to share between threads."""

    def __init__(
        self,
        vocab: list[str],
        weights: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        thresholds: dict[str, float],
        review_thresholds: dict[str, float],
        meta: dict[str, Any],
    ) -> None:
        n_out = len(LABELS) + len(CATEGORIES)
        if weights.ndim != 2 or weights.shape != (len(vocab), n_out) or bias.shape != (n_out,):
            raise ModelLoadError(f"weights {weights.shape} / bias {bias.shape} do not fit {len(vocab)} features")
        if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
            raise ModelLoadError("weights contain NaN or infinity")
        for name, table in (("thresholds", thresholds), ("review_thresholds", review_thresholds)):
            for lab, v in table.items():
                if lab not in LABELS or not isinstance(v, float) or not math.isfinite(v) or not 0.0 < v < 1.0:
                    raise ModelLoadError(f"{name}: {lab!r} = {v!r} is not a label with a value in (0, 1)")
        if set(thresholds) != set(LABELS):
            raise ModelLoadError("thresholds must name every label")
        self.vocab = vocab
        self.index: dict[str, int] = {f: i for i, f in enumerate(vocab)}
        if len(self.index) != len(vocab):
            raise ModelLoadError("duplicate feature names")
        self.weights = weights
        self.bias = bias
        self.thresholds = thresholds
        self.review_thresholds = review_thresholds
        self.meta = meta
        self.version: str = str(meta.get("version", "?"))
        # The vocabulary's character n-grams as sorted integer codes (code points packed 21 bits apart): a
        # message's known n-grams are found with a few array operations instead of cutting every n-gram of
        # the text and looking each one up.
        grams = [(gram_code(f[len(GRAM) :]), i) for i, f in enumerate(vocab) if f.startswith(GRAM)]
        grams.sort()
        self._gram_codes = np.array([c for c, _ in grams], dtype=np.uint64)
        self._gram_rows = np.array([i for _, i in grams], dtype=np.int64)
        if len(np.unique(self._gram_codes)) != len(self._gram_codes):
            raise ModelLoadError("n-gram features longer than three characters or not unique")
        self._bias64 = bias.astype(np.float64)

    # ------------------------------------------------------------------------------------------
    def rows(self, symbols: set[str], head: str) -> tuple[int, ...]:
        """Vocabulary rows, ascending, of a message's features: ``symbols`` and the n-grams of ``head``.

        The same rows as looking up every feature of ``features.extract`` (the vocabulary is sorted, so
        ascending rows are the features in name order and the sum below adds them in the same order).
        """
        found = [i for i in map(self.index.get, symbols) if i is not None]
        if head and len(self._gram_codes):
            cp = np.frombuffer(head.replace("\0", "\ufffd").encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
            codes = np.concatenate((cp, cp[:-1] | cp[1:] << _SHIFT1, cp[:-2] | cp[1:-1] << _SHIFT1 | cp[2:] << _SHIFT2))
            at = np.searchsorted(self._gram_codes, codes)
            at[at == len(self._gram_codes)] = 0
            known = self._gram_rows[at[self._gram_codes[at] == codes]]
            found.extend(known.tolist())
        return tuple(sorted(set(found)))

    def score_many(self, messages: list[tuple[set[str], str]]) -> list[Scores]:
        """``score(rows(symbols, head))`` for many messages at once, with the same sums in the same order.

        One pass of array operations over all the messages' n-grams and one sum per message instead of a
        dozen small array operations per message: what `villagewatch classify` does with a long input.
        """
        n = len(messages)
        if n == 0:
            return []
        vocab_size = len(self.vocab)
        seg_parts: list[npt.NDArray[np.int64]] = []
        row_parts: list[npt.NDArray[np.int64]] = []
        sym_seg: list[int] = []
        sym_row: list[int] = []
        for k, (syms, _head) in enumerate(messages):
            for i in map(self.index.get, syms):
                if i is not None:
                    sym_seg.append(k)
                    sym_row.append(i)
        seg_parts.append(np.array(sym_seg, dtype=np.int64))
        row_parts.append(np.array(sym_row, dtype=np.int64))
        heads = [h.replace("\0", "\ufffd") for _, h in messages]
        if len(self._gram_codes) and any(heads):
            cp = np.frombuffer("\0".join(heads).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
            lengths = np.array([len(h) + 1 for h in heads], dtype=np.int64)
            seg_of = np.repeat(np.arange(n, dtype=np.int64), lengths)[: len(cp)]
            ok1 = cp != 0  # the separator between two messages belongs to no n-gram
            ok2 = ok1[:-1] & ok1[1:]
            ok3 = ok2[:-1] & ok1[2:]
            codes = np.concatenate(
                (
                    cp[ok1],
                    (cp[:-1] | cp[1:] << _SHIFT1)[ok2],
                    (cp[:-2] | cp[1:-1] << _SHIFT1 | cp[2:] << _SHIFT2)[ok3],
                )
            )
            segs = np.concatenate((seg_of[ok1], seg_of[:-1][ok2], seg_of[:-2][ok3]))
            at = np.searchsorted(self._gram_codes, codes)
            at[at == len(self._gram_codes)] = 0
            hit = self._gram_codes[at] == codes
            seg_parts.append(segs[hit])
            row_parts.append(self._gram_rows[at[hit]])
        keys = np.unique(np.concatenate(seg_parts) * vocab_size + np.concatenate(row_parts))
        seg, row = keys // vocab_size, keys % vocab_size
        counts = np.bincount(seg, minlength=n)
        z = np.tile(self._bias64, (n, 1))
        filled = counts > 0
        if filled.any():
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[filled]
            sums = np.add.reduceat(self.weights[row].astype(np.float64), starts, axis=0)
            z[filled] = sums + self._bias64
        nl = len(LABELS)
        pl = 1.0 / (1.0 + np.exp(-np.clip(z[:, :nl], -30.0, 30.0)))
        zc = z[:, nl:]
        ec = np.exp(zc - zc.max(axis=1, keepdims=True))
        pc = ec / ec.sum(axis=1, keepdims=True)
        bounds = np.cumsum(counts).tolist()
        rows_all = row.tolist()
        out: list[Scores] = []
        begin = 0
        for k, (plk, pck) in enumerate(zip(pl.tolist(), pc.tolist(), strict=True)):
            end = bounds[k]
            out.append(
                Scores(
                    labels=dict(zip(LABELS, plk, strict=True)),
                    categories=dict(zip(CATEGORIES, pck, strict=True)),
                    rows=tuple(rows_all[begin:end]),
                )
            )
            begin = end
        return out

    def rows_of(self, features: list[str]) -> tuple[int, ...]:
        return tuple(i for i in map(self.index.get, features) if i is not None)

    def score(self, rows: tuple[int, ...]) -> Scores:
        z = self.weights[list(rows)].sum(axis=0, dtype=np.float64) + self._bias64 if rows else self._bias64
        nl = len(LABELS)
        pl = 1.0 / (1.0 + np.exp(-np.clip(z[:nl], -30.0, 30.0)))
        zc = z[nl:]
        ec = np.exp(zc - zc.max())
        pc = ec / ec.sum()
        return Scores(
            labels=dict(zip(LABELS, pl.tolist(), strict=True)),
            categories=dict(zip(CATEGORIES, pc.tolist(), strict=True)),
            rows=rows,
        )

    def contributions(self, rows: tuple[int, ...], output: str) -> list[tuple[str, float]]:
        """The message's features by how much they pushed ``output`` (a label or a category) up."""
        col = LABELS.index(output) if output in LABELS else len(LABELS) + CATEGORIES.index(output)
        w = self.weights[list(rows), col]
        order = np.argsort(-w, kind="stable")
        return [(self.vocab[rows[int(k)]], float(w[int(k)])) for k in order if w[int(k)] > 0]

    # ------------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        meta = dict(self.meta)
        meta["format"] = FORMAT
        meta["labels"] = list(LABELS)
        meta["categories"] = list(CATEGORIES)
        meta["thresholds"] = self.thresholds
        meta["review_thresholds"] = self.review_thresholds
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                vocab=np.array(self.vocab, dtype=np.str_),
                weights=self.weights.astype(np.float32),
                bias=self.bias.astype(np.float32),
                meta=np.array(json.dumps(meta, ensure_ascii=False, sort_keys=True)),
            )
        tmp.replace(path)


def load_model(path: Path) -> LinearModel:
    """Read and validate a model file; raise ModelLoadError naming the file on any problem."""
    try:
        with np.load(path, allow_pickle=False) as z:
            vocab = [str(x) for x in z["vocab"]]
            weights = np.asarray(z["weights"], dtype=np.float32)
            bias = np.asarray(z["bias"], dtype=np.float32)
            meta = json.loads(str(z["meta"]))
    except FileNotFoundError as e:
        raise ModelLoadError(f"{path}: no model file") from e
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ModelLoadError(f"{path}: not a readable model file ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelLoadError(f"{path}: unknown model format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("labels") != list(LABELS) or meta.get("categories") != list(CATEGORIES):
        raise ModelLoadError(f"{path}: the model was trained for other labels or categories")
    try:
        thresholds = {str(k): float(v) for k, v in meta["thresholds"].items()}
        review = {str(k): float(v) for k, v in meta.get("review_thresholds", {}).items()}
        return LinearModel(vocab, weights, bias, thresholds, review, meta)
    except (KeyError, AttributeError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{path}: {e}") from e
    except ModelLoadError as e:
        raise ModelLoadError(f"{path}: {e}") from e
