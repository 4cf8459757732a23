"""Message classification by jieba keyword rules that staff can read and edit (rules/).

Imports nothing of ours (bot, storage, dashboards); text and sender role in, labels out.
"""

from classifiers.editing import describe_rules
from classifiers.engine import Classifier
from classifiers.loader import DEFAULT_RULES_DIR, ClassifierHolder, load_classifier
from classifiers.rules import RuleLoadError
from classifiers.types import CATEGORIES, LABELS, ROLES, Classification, Match

__all__ = [
    "CATEGORIES",
    "DEFAULT_RULES_DIR",
    "LABELS",
    "ROLES",
    "Classification",
    "Classifier",
    "ClassifierHolder",
    "Match",
    "RuleLoadError",
    "describe_rules",
    "load_classifier",
]
