from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifiers import Classifier, load_classifier

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def clf() -> Classifier:
    return load_classifier(RULES)


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "rules"
    shutil.copytree(RULES, dst)
    return dst
