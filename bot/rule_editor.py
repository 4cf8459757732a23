"""The rule editor behind the dashboard (dashboards.ports.RuleEditor): check, dry-run, save, roll back, sync.

An edit becomes new text for the rule's TOML file (tomlkit: comments and layout outside the edited rule kept
byte for byte). It is checked by the rule loader itself on a copy of the rules folder, so the editor refuses
exactly what a restart would refuse, with the field named in Chinese. A dry run classifies the stored
messages of the last days with the rules in use and with the edited copy and lists what changes.

Saving writes the file, swaps the running rules (``ClassifierHolder.reload``; a refused reload puts the file
back and keeps the rules in use) and records the whole file before and after in ``rule_versions``. Several
bot processes may share one PostgreSQL: each runs :meth:`RuleEditor.watch`, which looks for a version newer
than the last one it applied and writes those files into its own rules folder, then reloads. The database is
the truth for every file changed from the dashboard: a process starting with an older copy of such a file
takes the stored one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.clock import Clock
from classifiers import CATEGORIES, LABELS, Classification, Classifier, ClassifierHolder, RuleLoadError
from classifiers.editing import add_rule_text, copy_with, edit_rule_text, rule_card, rule_file, write_atomically
from classifiers.loader import load_candidate
from classifiers.normalize import Normalizer
from classifiers.rules import Rule
from dashboards.ports import ActionRefused, DryRunChange, DryRunResult, RuleEdit
from storage.engine import SessionFactory
from storage.repos import rules as rules_repo

log = logging.getLogger(__name__)

FIELDS = {
    "id": "规则编号",
    "label": "标签",
    "category": "类别",
    "any": "关键词",
    "all": "组合关键词",
    "none": "排除词",
    "window": "词距",
    "weight": "权重",
    "shadow": "试运行",
    "note": "说明",
    "note_zh": "中文说明",
    "roles": "适用身份",
    "not_roles": "不适用身份",
    "severity": "严重程度",
    "start": "开头词数",
    "max_len": "最长字数",
    "negatable": "否定词",
    "fuzzy": "错别字",
    "decide": "最终决定",
}
_EXPLAIN = [
    (re.compile(r"'(\w+)' must be a positive integer"), "“{field}”必须是正整数"),
    (re.compile(r"'(\w+)' must be a number"), "“{field}”必须是数字"),
    (re.compile(r"'(\w+)' must be true or false"), "“{field}”只能是“是”或“否”"),
    (re.compile(r"'(\w+)' must be a string"), "“{field}”必须是文字"),
    (re.compile(r"'(\w+)' must be a list"), "“{field}”必须是一组词"),
    (re.compile(r"weight\(权重\)必须是有限的数字"), "“权重”必须是有限的数字"),
    (re.compile(r"empty after normalisation|a term must be a non-empty string"), "关键词不能为空或只有符号"),
    (re.compile(r"'\*' is only allowed"), "关键词里的“*”只能写在开头或结尾"),
    (re.compile(r"needs 'any' or 'all' terms"), "规则至少要有一个关键词"),
    (re.compile(r"duplicate rule id"), "规则编号重复"),
    (re.compile(r"unknown or missing label|unknown category"), "标签或类别不正确"),
    (re.compile(r"TOML syntax error"), "规则文件格式错误"),
]
DRY_RUN_LIMIT = 20_000
"""At most this many stored messages (the newest) are tried in a dry run."""
SYNC_SECONDS = 5.0
"""How often each process looks for a rule version saved by another process."""


def explain(error: str) -> str:
    """A loader error (``rules/labels/x.toml:12: 'weight' must be a number``) for staff, in Chinese."""
    found = re.match(r"^.*?:(\d+): (.*)$", error, re.S)
    line, message = (found.group(1), found.group(2)) if found else ("", error)
    for pattern, text in _EXPLAIN:
        hit = pattern.search(message)
        if hit:
            field = FIELDS.get(hit.group(1), hit.group(1)) if hit.groups() else ""
            reason = text.format(field=field)
            break
    else:
        reason = "规则内容不符合要求"
    where = f"(规则文件第 {line} 行)" if line and line != "0" else ""
    return f"规则校验未通过:{reason}{where}。原规则仍在使用。"


def _terms(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        for part in re.split(r"[\s,，、;；]+", value):
            if part and part not in out:
                out.append(part)
    return out


def _number(text: str) -> float | str:
    """A number when ``text`` is one; otherwise the text itself, for the loader to refuse with the field named."""
    try:
        value = float(text.strip())
    except ValueError:
        return text
    return value


def _whole(text: str) -> int | str:
    try:
        return int(text.strip())
    except ValueError:
        return text


@dataclass
class _Plan:
    """What an edit does to the files: new text per changed file, and the rule it is about."""

    files: dict[str, str]
    rule_id: str
    action: str


class RuleEditor:
    def __init__(self, *, sessions: SessionFactory, holder: ClassifierHolder, clock: Clock) -> None:
        self._sessions = sessions
        self._holder = holder
        self._clock = clock
        self._lock = asyncio.Lock()
        self._seen = 0

    @property
    def rules_dir(self) -> Path:
        return self._holder.rules_dir

    def cards(self) -> list[dict[str, Any]]:
        return [rule_card(rule) for rule in self._holder.current.ruleset.rules]

    def _rule(self, rule_id: str) -> Rule:
        for rule in self._holder.current.ruleset.rules:
            if rule.id == rule_id:
                return rule
        raise ActionRefused("未找到该规则,可能已被修改,请刷新页面。")

    def _read(self, name: str) -> str:
        path = self.rules_dir / name
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    def _plan(self, edit: RuleEdit) -> _Plan:
        """The new file text for ``edit``; raises ActionRefused (Chinese) for what the form itself gets wrong."""
        any_terms, none_terms = _terms(edit.any), _terms(edit.none)
        weight: float | str = _number(edit.weight) if edit.weight.strip() else 1.0
        window: int | str | None = _whole(edit.window) if edit.window.strip() else None
        description = edit.description.strip()
        if not edit.rule_id:
            target = edit.target
            if target in LABELS:
                name, prefix, head = f"labels/{target}.toml", target, {"label": target}
            elif target.startswith("category:") and target[9:] in CATEGORIES:
                name, prefix, head = f"categories/{target[9:]}.toml", f"cat.{target[9:]}", {"category": target[9:]}
            else:
                raise ActionRefused("请选择新规则识别的标签或类别。")
            taken = {rule.id for rule in self._holder.current.ruleset.rules}
            number = 1
            while f"{prefix}.staff_{number}" in taken:
                number += 1
            rule_id = f"{prefix}.staff_{number}"
            text = self._read(name)
            pack_label = re.search(r'^\s*label\s*=\s*"(\w+)"', text.split("[[rule]]", 1)[0], re.M)
            if pack_label and head.get("label") == pack_label.group(1):
                head = {}  # the file's [pack] already gives the label
            fields: dict[str, Any] = {
                "id": rule_id,
                **head,
                "note_zh": description or None,
                "any": any_terms or None,
                "none": none_terms or None,
                "window": window,
                "weight": weight,
                "shadow": edit.shadow,
            }
            return _Plan({name: add_rule_text(text, fields)}, rule_id, "add")
        rule = self._rule(edit.rule_id)
        name = rule_file(rule)
        changes: dict[str, Any] = {}
        if any_terms != [t.raw for t in rule.any]:
            changes["any"] = any_terms or None
        if none_terms != [t.raw for t in rule.none]:
            changes["none"] = none_terms or None
        if not (isinstance(weight, float) and math.isclose(weight, rule.weight)):
            changes["weight"] = weight
        if window != rule.window:
            changes["window"] = window
        if edit.shadow != rule.shadow:
            changes["shadow"] = edit.shadow
        if description != rule.note_zh.strip() and description != rule_card(rule)["description"]:
            changes["note_zh"] = description or None
        if not changes:
            raise ActionRefused("没有修改任何内容。")
        try:
            text = edit_rule_text(self._read(name), rule.id, changes)
        except KeyError as exc:
            raise ActionRefused("规则文件里找不到这条规则,可能已被修改,请刷新页面。") from exc
        except Exception as exc:  # tomlkit's ParseError: the file on disk is broken
            raise ActionRefused("规则文件格式错误,无法修改;请先修复该文件。") from exc
        return _Plan({name: text}, rule.id, "edit")

    def _candidate(self, files: dict[str, str]) -> Classifier:
        """The classifier the changed files would give, built by the loader; ActionRefused if it refuses."""
        with tempfile.TemporaryDirectory(prefix="villagewatch-rules-") as tmp:
            root = copy_with(self.rules_dir, Path(tmp), files)
            try:
                return load_candidate(root, self._holder.current.model)
            except RuleLoadError as exc:
                raise ActionRefused(explain(str(exc))) from exc

    async def dry_run(
        self,
        edit: RuleEdit,
        *,
        days: int,
        county: str | None,
        township: str | None,
        village: str | None,
        page: int,
        per_page: int,
    ) -> DryRunResult:
        plan = self._plan(edit)
        candidate = await asyncio.to_thread(self._candidate, plan.files)
        current = self._holder.current
        end = self._clock.now()
        async with self._sessions() as session:
            items = await rules_repo.recent_texts(
                session,
                start=end - timedelta(days=max(1, days)),
                end=end,
                county=county,
                township=township,
                village=village,
                limit=DRY_RUN_LIMIT,
            )
        changes = await asyncio.to_thread(
            _compare, current, candidate, plan.rule_id, items, _terms_of(plan.rule_id, current, candidate)
        )
        gained = sum(1 for c in changes if c.gained)
        pages = max(1, math.ceil(len(changes) / per_page))
        page = min(max(1, page), pages)
        shown = tuple(changes[(page - 1) * per_page : page * per_page])
        return DryRunResult(
            days=days,
            scanned=len(items),
            gained=gained,
            lost=len(changes) - gained,
            page=page,
            pages=pages,
            changes=shown,
        )

    async def save(self, edit: RuleEdit, *, actor: str, reason: str) -> str:
        if not reason.strip():
            raise ActionRefused("请写明修改原因。")
        async with self._lock:
            plan = self._plan(edit)
            await asyncio.to_thread(self._candidate, plan.files)
            await self._apply(plan, actor=actor, reason=reason.strip())
            return plan.rule_id

    async def rollback(self, version_id: int, *, actor: str, reason: str) -> None:
        async with self._lock:
            async with self._sessions() as session:
                if version_id and await rules_repo.get_version(session, version_id) is None:
                    raise ActionRefused("未找到该版本。")
                target = await rules_repo.files_at(session, version_id)
                names = await rules_repo.changed_since(session, version_id)
            files = {name: target[name] for name in names if name in target and self._read(name) != target[name]}
            if not files:
                raise ActionRefused("规则已经是该版本的内容,无需恢复。")
            await asyncio.to_thread(self._candidate, files)
            label = f"恢复到版本 {version_id}" if version_id else "恢复到最初的规则文件"
            await self._apply(
                _Plan(files, "", "rollback"),
                actor=actor,
                reason=f"{label}:{reason.strip()}" if reason.strip() else label,
            )

    async def _apply(self, plan: _Plan, *, actor: str, reason: str) -> None:
        previous = {name: self._read(name) for name in plan.files}
        existed = {name: (self.rules_dir / name).is_file() for name in plan.files}
        self._write(plan.files)
        if not await asyncio.to_thread(self._holder.reload):
            error = self._holder.last_error or ""
            self._restore(previous, existed)
            raise ActionRefused(explain(error))
        try:
            async with self._sessions() as session:
                newest = 0
                for name, content in plan.files.items():
                    row = await rules_repo.add_version(
                        session,
                        at=self._clock.now(),
                        username=actor,
                        action=plan.action,
                        reason=reason,
                        rule_id=plan.rule_id,
                        file=name,
                        content=content,
                        previous=previous[name],
                        ruleset_version=self._holder.current.version,
                    )
                    newest = row.id or 0
                await session.commit()
        except BaseException:
            self._restore(previous, existed)
            raise
        self._seen = max(self._seen, newest)

    def _write(self, files: dict[str, str]) -> None:
        for name, content in files.items():
            path = self.rules_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, content)

    def _restore(self, previous: dict[str, str], existed: dict[str, bool]) -> None:
        for name, content in previous.items():
            path = self.rules_dir / name
            if existed[name]:
                write_atomically(path, content)
            else:
                path.unlink(missing_ok=True)
        self._holder.reload()

    async def sync(self) -> bool:
        """Take the rule versions other processes saved: write the newer files and swap the rules.

        Returns True when this process's rules changed. A stored version the loader refuses here (a
        different program version, say) is logged and the rules in use are kept.
        """
        async with self._lock:
            async with self._sessions() as session:
                newest = await rules_repo.latest_id(session)
                if newest <= self._seen:
                    return False
                stored = await rules_repo.files_at(session)
            files = {name: content for name, content in stored.items() if self._read(name) != content}
            self._seen = newest
            if not files:
                return False
            previous = {name: self._read(name) for name in files}
            existed = {name: (self.rules_dir / name).is_file() for name in files}
            self._write(files)
            if not await asyncio.to_thread(self._holder.reload):
                log.error(
                    "rule version %s from the database refused, keeping the rules in use: %s",
                    newest,
                    self._holder.last_error,
                )
                self._restore(previous, existed)
                return False
            log.info("rules brought to version %s from the database (%s)", newest, ", ".join(sorted(files)))
            return True

    async def watch(self, interval: float = SYNC_SECONDS) -> None:
        """Call :meth:`sync` every ``interval`` seconds until cancelled; a failing check is logged, not fatal."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except Exception:
                log.exception("checking for new rule versions failed; will try again")


def _terms_of(rule_id: str, *classifiers: Classifier) -> tuple[str, ...] | None:
    """The literals one of which a message must contain for the rule to fire, before or after the edit; None
    when that cannot be said (a fuzzy rule matches with a typo). Only the edited rule differs between the two
    rule sets and the trained model reads rules by name, so a message containing none of them keeps its result.
    """
    found: set[str] = set()
    for classifier in classifiers:
        for rule in classifier.ruleset.rules:
            if rule.id != rule_id:
                continue
            if rule.fuzzy:
                return None
            found.update(t.text for t in rule.any)
            found.update(t.text for group in rule.all for t in group)
    return tuple(found)


def _contains_any(core: str, terms: tuple[str, ...]) -> bool:
    return any(t in core for t in terms)


def _compare(
    current: Classifier,
    candidate: Classifier,
    rule_id: str,
    items: list[tuple[int, Any, str, str, str, str]],
    terms: tuple[str, ...] | None,
) -> list[DryRunChange]:
    if terms is not None:
        wanted = terms
        items = [item for item in items if _contains_any(Normalizer.core(current.normalize(item[4])), wanted)]
    changes: list[DryRunChange] = []
    olds: list[Classification] = []
    news: list[Classification] = []
    for start in range(0, len(items), 500):  # classified together, a batch at a time
        pairs: list[tuple[str, str | None]] = [(item[4], item[5]) for item in items[start : start + 500]]
        olds.extend(current.classify_many(pairs))
        news.extend(candidate.classify_many(pairs))
    for (message_id, at, group, sender, text, _role), old, new in zip(items, olds, news, strict=True):
        old_hit = any(m.rule == rule_id for m in (*old.matches, *old.shadow_matches))
        new_hit = any(m.rule == rule_id for m in (*new.matches, *new.shadow_matches))
        added = set(new.labels) - set(old.labels) - {"chat"}
        removed = set(old.labels) - set(new.labels) - {"chat"}
        if not (added or removed or old_hit != new_hit):
            continue
        changes.append(
            DryRunChange(
                message_id=message_id,
                at=at,
                group=group,
                sender=sender,
                text=text,
                old_labels=tuple(old.labels),
                new_labels=tuple(new.labels),
                gained=bool(added) or (new_hit and not old_hit),
            )
        )
    return changes
