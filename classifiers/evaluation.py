"""`villagewatch eval`: quality of the rules on labelled JSON lines, next to a naive baseline.

Dataset format (classifiers/data/README.md): one JSON object per line,
``{"text": str, "labels": [str, ...], "category": str | null, "role"?: str, "id"?: ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from classifiers.loader import load_classifier
from classifiers.rules import RuleLoadError
from classifiers.types import LABELS

TICKET = frozenset({"demand", "consult", "clue"})
RED_FLAG = frozenset({"banquet", "gambling", "abuse", "clue", "spam"})

# A naive substring keyword list: what a first attempt without tokens, roles or negation looks like.
NAIVE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "clue": ("贪污", "腐败", "套取", "虚报", "优亲厚友", "红包", "公款"),
    "banquet": ("宴", "酒席", "喜酒", "摆酒", "办酒"),
    "gambling": ("赌", "麻将", "六合彩", "牌九"),
    "abuse": ("傻逼", "废物", "滚", "王八蛋", "吃干饭"),
    "spam": ("砍一刀", "贷款", "刷单", "投票", "助力"),
    "notice": ("通知", "公示", "公告"),
    "demand": ("停水", "停电", "坏了", "没人管", "堵", "垃圾", "漏水", "路灯"),
    "consult": ("请问", "怎么办理", "怎么申请"),
    "feedback": ("满意", "谢谢", "感谢"),
}
NAIVE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "water": ("水",),
    "power": ("电", "灯"),
    "road_traffic": ("路", "桥"),
    "sanitation": ("垃圾", "厕所"),
    "safety_hazard": ("危险",),
    "public_order": ("吵", "偷"),
    "land_housing": ("房", "宅基地"),
    "welfare": ("低保", "补贴", "养老"),
    "village_affairs": ("村委", "账"),
    "education_health": ("学", "医"),
    "agriculture": ("田", "种"),
    "environment": ("污染", "烟"),
}


def naive_baseline(text: str, role: str | None = None) -> tuple[tuple[str, ...], str | None]:
    """Labels and category from plain substring search: the floor the rules must beat."""
    labels = tuple(lab for lab, kws in NAIVE_KEYWORDS.items() if any(k in text for k in kws)) or ("chat",)
    category = None
    if "demand" in labels or "consult" in labels:
        category = next((c for c, kws in NAIVE_CATEGORIES.items() if any(k in text for k in kws)), "other")
    return labels, category


@dataclass
class Item:
    text: str
    labels: frozenset[str]
    category: str | None
    role: str | None
    id: object = None


@dataclass
class Report:
    n: int = 0
    per_label: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    macro_f1: float = 0.0
    ticket: tuple[float, float, float] = (0.0, 0.0, 0.0)
    red_flag: tuple[float, float, float] = (0.0, 0.0, 0.0)
    category_accuracy: float = 0.0
    category_n: int = 0
    notices_ticketed: float = 0.0
    notices_n: int = 0
    errors: list[tuple[Item, tuple[str, ...], str | None]] = field(default_factory=list)


def load_dataset(paths: Iterable[Path]) -> list[Item]:
    items = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    labels = d["labels"]
                    if not isinstance(d["text"], str) or not labels or any(x not in LABELS for x in labels):
                        raise ValueError(f"bad labels {labels!r}")
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{n}: {e}") from e
                items.append(Item(d["text"], frozenset(labels), d.get("category"), d.get("role"), d.get("id")))
    return items


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0 if fn == 0 else 0.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def evaluate(items: list[Item], predict: Callable[[str, str | None], tuple[tuple[str, ...], str | None]]) -> Report:
    rep = Report(n=len(items))
    preds = [predict(it.text, it.role) for it in items]
    f1s = []
    for lab in LABELS:
        tp = sum(1 for it, (pl, _) in zip(items, preds, strict=True) if lab in it.labels and lab in pl)
        fp = sum(1 for it, (pl, _) in zip(items, preds, strict=True) if lab not in it.labels and lab in pl)
        fn = sum(1 for it, (pl, _) in zip(items, preds, strict=True) if lab in it.labels and lab not in pl)
        p, r, f = _prf(tp, fp, fn)
        support = tp + fn
        rep.per_label[lab] = (p, r, f, support)
        if support:
            f1s.append(f)
    rep.macro_f1 = sum(f1s) / len(f1s) if f1s else 0.0

    def binary(group: frozenset[str]) -> tuple[float, float, float]:
        tp = fp = fn = 0
        for it, (pl, _) in zip(items, preds, strict=True):
            gold, pred = bool(it.labels & group), bool(set(pl) & group)
            tp += gold and pred
            fp += pred and not gold
            fn += gold and not pred
        return _prf(tp, fp, fn)

    rep.ticket = binary(TICKET)
    rep.red_flag = binary(RED_FLAG)
    cat_items = [
        (it, pc) for it, (pl, pc) in zip(items, preds, strict=True) if it.labels & {"demand", "consult"} and it.category
    ]
    rep.category_n = len(cat_items)
    rep.category_accuracy = sum(1 for it, pc in cat_items if pc == it.category) / len(cat_items) if cat_items else 1.0
    notices = [(it, pl) for it, (pl, _) in zip(items, preds, strict=True) if it.labels == {"notice"}]
    rep.notices_n = len(notices)
    rep.notices_ticketed = sum(1 for _, pl in notices if set(pl) & TICKET) / len(notices) if notices else 0.0
    for it, (pl, pc) in zip(items, preds, strict=True):
        wrong_cat = bool(it.labels & {"demand", "consult"}) and it.category and pc != it.category
        if set(pl) != it.labels or wrong_cat:
            rep.errors.append((it, pl, pc))
    return rep


def format_report(title: str, rep: Report) -> str:
    lines = [f"== {title} ({rep.n} messages) =="]
    lines.append(f"{'label':<10} {'P':>6} {'R':>6} {'F1':>6} {'n':>5}")
    for lab, (p, r, f, n) in rep.per_label.items():
        if n or p < 1.0:
            lines.append(f"{lab:<10} {p:6.3f} {r:6.3f} {f:6.3f} {n:5d}")
    lines.append(f"macro F1                      {rep.macro_f1:.3f}")
    p, r, f = rep.ticket
    lines.append(f"ticket-worthy (demand|consult|clue)   P {p:.3f} R {r:.3f} F1 {f:.3f}")
    p, r, f = rep.red_flag
    lines.append(f"red flag (banquet|gambling|abuse|clue|spam)   P {p:.3f} R {r:.3f} F1 {f:.3f}")
    lines.append(f"category accuracy (demand/consult, n={rep.category_n})   {rep.category_accuracy:.3f}")
    lines.append(f"notices wrongly ticketed (n={rep.notices_n})   {rep.notices_ticketed:.1%}")
    return "\n".join(lines)


def run_eval(rules_dir: Path, dataset_paths: list[Path], outfile: TextIO, *, show_errors: bool = False) -> int:
    """Print the evaluation report; 0 on success, 2 if rules or data cannot be loaded."""
    try:
        clf = load_classifier(rules_dir)
    except RuleLoadError as e:
        print(f"error: {e}", file=outfile)
        return 2
    for path in dataset_paths:
        try:
            items = load_dataset([path])
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=outfile)
            return 2

        def predict(text: str, role: str | None) -> tuple[tuple[str, ...], str | None]:
            c = clf.classify(text, role=role)
            return c.labels, c.category

        rep = evaluate(items, predict)
        print(format_report(f"rules {clf.version} on {path}", rep), file=outfile)
        if show_errors:
            for it, pl, pc in rep.errors:
                err: dict[str, Any] = {
                    "id": it.id,
                    "text": it.text,
                    "role": it.role,
                    "gold": [sorted(it.labels), it.category],
                    "got": [list(pl), pc],
                }
                print(json.dumps(err, ensure_ascii=False), file=outfile)
        base = evaluate(items, naive_baseline)
        print(format_report(f"naive substring baseline on {path}", base), file=outfile)
        print(file=outfile)
    return 0
