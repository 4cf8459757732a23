from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifiers import Classifier, load_classifier

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
DATA = REPO / "classifiers" / "data"


@pytest.fixture(scope="session")
def clf() -> Classifier:
    """The classifier as the bot runs it: the rules' evidence and the trained model."""
    c = load_classifier(RULES)
    assert c.model is not None, c.model_error
    return c


@pytest.fixture(scope="session")
def rules_clf() -> Classifier:
    """The rules alone, for tests of the rule mechanics (tokens, negation, typos)."""
    return load_classifier(RULES, with_model=False)


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "rules"
    shutil.copytree(RULES, dst)
    shutil.rmtree(dst / "model")  # toy rules are tested on their own, without the trained model
    return dst
