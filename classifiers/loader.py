"""Building a classifier from a rules directory, and swapping it whole while the bot runs."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import jieba
import jieba_fast_dat

from classifiers.engine import Classifier
from classifiers.model import LinearModel, ModelLoadError, load_model
from classifiers.normalize import Normalizer
from classifiers.rules import RuleLoadError, fingerprint, load_ruleset

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)
jieba_fast_dat.setLogLevel(logging.WARNING)

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
JIEBA_DICT = str(Path(jieba.__file__).resolve().parent / "dict.txt")
MODEL_FILE = Path("model") / "classifier.npz"


def model_path(rules_dir: Path) -> Path:
    """Where a rules directory keeps its trained model (swapped whole, like the rule files)."""
    return Path(rules_dir) / MODEL_FILE


def load_classifier(rules_dir: Path = DEFAULT_RULES_DIR, *, with_model: bool = True) -> Classifier:
    """Read, validate and compile every rule file; raise RuleLoadError (file:line) on any problem.

    With ``with_model`` the trained model in ``rules/model/`` decides on top of the rules' evidence.
    A missing or corrupt model file never stops the bot: the classifier runs on rules alone, and
    ``model_error`` says why (shown in the log and on /health).
    """
    clf = _load_rules(rules_dir)
    if with_model:
        path = model_path(rules_dir)
        try:
            model = load_model(path)
        except ModelLoadError as e:
            clf.model_error = str(e)
            log.warning("classifier runs on rules alone: %s", e)
        else:
            from classifiers.decide import attach

            attach(clf, model)
    return clf


def load_candidate(rules_dir: Path, model: LinearModel | None) -> Classifier:
    """A classifier from the rule files in ``rules_dir`` deciding with an already loaded ``model`` (the one
    in use), for trying an edit before it is saved; raises RuleLoadError like :func:`load_classifier`."""
    clf = _load_rules(rules_dir)
    if model is not None:
        from classifiers.decide import attach

        attach(clf, model)
    return clf


def _load_rules(rules_dir: Path) -> Classifier:
    normalizer = Normalizer()

    def norm_term(s: str) -> str:
        # Terms go through the same normalisation as messages (traditional, full-width, case).
        return Normalizer.core(normalizer.normalize(s))

    ruleset = load_ruleset(Path(rules_dir), norm_term)
    # jieba's algorithm in C++ (jieba_fast_dat) over jieba's own dictionary: the same tokens as
    # jieba.Tokenizer (ties between repeated characters aside, which normalisation removes), about
    # 18 times faster, so every message can be tokenised once for both the rules and the model.
    tokenizer = jieba_fast_dat.Tokenizer(JIEBA_DICT)
    try:
        tokenizer.initialize()
    except Exception as e:  # pragma: no cover - jieba's own dictionary is broken
        raise RuleLoadError(f"jieba:0: cannot load the base dictionary: {e}") from e
    for word, freq, tag in ruleset.userdict:
        tokenizer.add_word(norm_term(word) or word, freq, tag)
    return Classifier(ruleset, normalizer, tokenizer)


class ClassifierHolder:
    """Holds the current classifier; ``reload`` builds a new one and swaps it in only if it is valid."""

    def __init__(self, rules_dir: Path = DEFAULT_RULES_DIR, classifier: Classifier | None = None) -> None:
        self.rules_dir = Path(rules_dir)
        self._lock = threading.Lock()
        self._fingerprint = fingerprint(self.rules_dir) if self.rules_dir.is_dir() else ""
        self._current = classifier if classifier is not None else load_classifier(self.rules_dir)
        self.last_error: str | None = None

    @property
    def current(self) -> Classifier:
        return self._current

    def reload(self) -> bool:
        """Build a new rule set; on error log it, keep the old one and return False."""
        with self._lock:
            fp = fingerprint(self.rules_dir) if self.rules_dir.is_dir() else ""
            try:
                new = load_classifier(self.rules_dir)
            except RuleLoadError as e:
                self.last_error = str(e)
                self._fingerprint = fp
                log.error("rules not reloaded, keeping version %s: %s", self._current.version, e)
                return False
            if new.model is None and self._current.model is not None:
                # A bad model file never replaces a working model.
                self.last_error = new.model_error or "model file missing"
                self._fingerprint = fp
                log.error("model not reloaded, keeping model %s: %s", self._current.model.version, self.last_error)
                return False
            old = self._current.version
            self._current = new  # a single reference assignment: readers see old or new, never a mix
            self._fingerprint = fp
            self.last_error = None
            if new.version != old:
                log.info("rules reloaded: version %s -> %s", old, new.version)
            return True

    def changed(self) -> bool:
        fp = fingerprint(self.rules_dir) if self.rules_dir.is_dir() else ""
        return fp != self._fingerprint

    async def watch(self, interval: float = 2.0) -> None:
        """Poll the rule files and reload when they change; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                await asyncio.to_thread(self.reload)
