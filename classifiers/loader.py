"""Building a classifier from a rules directory, and swapping it whole while the bot runs."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import jieba

from classifiers.engine import Classifier
from classifiers.normalize import Normalizer
from classifiers.rules import RuleLoadError, fingerprint, load_ruleset

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


def load_classifier(rules_dir: Path = DEFAULT_RULES_DIR) -> Classifier:
    """Read, validate and compile every rule file; raise RuleLoadError (file:line) on any problem."""
    normalizer = Normalizer()

    def norm_term(s: str) -> str:
        # Terms go through the same normalisation as messages (traditional, full-width, case).
        return Normalizer.core(normalizer.normalize(s))

    ruleset = load_ruleset(Path(rules_dir), norm_term)
    tokenizer = jieba.Tokenizer()
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
