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

from classifiers.types import CATEGORIES, LABELS

FORMAT = "villagewatch-linear-1"
RED_FLAGS: tuple[str, ...] = ("clue", "banquet", "gambling", "abuse", "spam")


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

    # ------------------------------------------------------------------------------------------
    def score(self, features: list[str]) -> Scores:
        found = [i for i in map(self.index.get, features) if i is not None]
        rows = tuple(found)
        z = self.weights[found].sum(axis=0, dtype=np.float64) + self.bias if found else self.bias.astype(np.float64)
        nl = len(LABELS)
        zl = np.clip(z[:nl], -30.0, 30.0)
        pl = 1.0 / (1.0 + np.exp(-zl))
        zc = z[nl:]
        ec = np.exp(zc - zc.max())
        pc = ec / ec.sum()
        return Scores(
            labels={lab: float(p) for lab, p in zip(LABELS, pl, strict=True)},
            categories={c: float(p) for c, p in zip(CATEGORIES, pc, strict=True)},
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
