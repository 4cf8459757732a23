"""Everything the bot says, from templates: defaults in bot/templates.toml, overridden by [templates] in config.

Templates are Jinja2 strings (``{{ ticket_id }}``) rendered with StrictUndefined, so a typo in a template
fails at start-up when it is checked, not in a villager's group.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined, Template, TemplateSyntaxError, UndefinedError

from bot.errors import InputError

DEFAULTS = Path(__file__).with_name("templates.toml")


_TICKET = {"ticket_id": 12, "deadline": "9月21日17:30"}
_ACK = {**_TICKET, "category": "water", "kind": "demand", "assignee": "李书记", "reporter": "高某林"}
_ITEM = {"id": 12, "category": "water", "village": "石桥村"}
_DUE = [{**_ITEM, "deadline": "9月21日17:30"}]
_ALERT = {
    "village": "石桥村",
    "sender": "刘建国",
    "role": "party_member",
    "labels": ["banquet"],
    "text": "家父七十大寿,略备薄酒",
    "at": "9月21日 09:30",
}
_ESCALATED = [{**_ITEM, "level": "township", "overdue": True}]

SAMPLES: dict[str, dict[str, Any]] = {
    "ticket_ack": _ACK,
    "ticket_ack_consult": _ACK,
    "ticket_ack_unassigned": {**_ACK, "assignee": ""},
    "ticket_ack_merged": {**_TICKET, "count": 3, "assignee": "李书记", "reporter": "高某林"},
    "ticket_ack_repeat": {**_ACK, "parent_id": 7, "level": "township"},
    "ticket_clue_private": {"ticket_id": 12},
    "ticket_private_ack": {**_TICKET, "kind": "clue"},
    "ticket_staff_new": {**_TICKET, "kind": "clue", "village": "石桥村", "reporter": "高某林", "text": "反映的内容"},
    "ticket_private_help": {},
    "ticket_cadre_help": {},
    "ticket_accepted": {"ticket_id": 12, "actor": "李书记"},
    "ticket_progress": {"ticket_id": 12, "actor": "李书记", "text": "已联系水厂"},
    "ticket_photo_request": {"ticket_id": 12, "actor": "李书记", "minutes": 10},
    "ticket_resolved": {
        "ticket_id": 12,
        "kind": "demand",
        "note": "管道已修好",
        "actor": "李书记",
        "reporters": ["高某林", "张大妈"],
        "photo_missing": False,
    },
    "ticket_photo_added": {"ticket_id": 12},
    "ticket_rating_thanks": {"ticket_id": 12, "rating": "satisfied", "closed": True},
    "ticket_split": {**_TICKET, "reporter": "张大妈", "source_id": 7, "assignee": "王主任"},
    "ticket_merged_by_staff": {**_TICKET, "source_id": 7, "count": 2, "assignee": "王主任"},
    "ticket_reopened_by_staff": {**_TICKET, "assignee": "刘干事"},
    "ticket_assigned": _TICKET,
    "ticket_reopened": {**_TICKET, "level": "township", "assignee": "刘干事"},
    "ticket_rating_which": {"ids": [12, 15]},
    "ticket_reminder": {"assignee": "李书记", "tickets": _DUE},
    "ticket_overdue_escalated": {"assignee": "刘干事", "level": "township", "tickets": _DUE},
    "ticket_escalated": {
        **_TICKET,
        "level": "township",
        "assignee": "刘干事",
        "actor": "李书记",
        "reason": "需镇里协调",
    },
    "ticket_extension_requested": {
        "ticket_id": 12,
        "days": 5,
        "actor": "李书记",
        "reason": "等材料",
        "village": "石桥村",
    },
    "ticket_extension_pending": {"ticket_id": 12, "days": 5},
    "ticket_extended": {**_TICKET, "days": 5},
    "ticket_transferred": {**_TICKET, "assignee": "王主任", "actor": "刘干事"},
    "ticket_digest": {
        "date": "9月21日",
        "scope": "城关镇",
        "new": 3,
        "active": 5,
        "overdue": 1,
        "escalated": 1,
        "resolved": 2,
        "awaiting_rating": 1,
        "flags": 4,
        "high_flags": 1,
        "tickets": _ESCALATED,
        "url": "http://127.0.0.1:8080/",
    },
    "ticket_unknown": {"ticket_id": 12},
    **{
        f"ticket_refused_{reason}": {"ticket_id": 12}
        for reason in [
            "not_allowed",
            "closed",
            "resolved",
            "accepted",
            "not_resolved",
            "active",
            "top",
            "not_awaiting_photo",
            "not_awaiting_rating",
            "extension_pending",
            "no_extension_days",
            "awaiting_photo",
            "not_same_place",
            "single_reporter",
            "not_reporter",
            "conflict",
            "unknown",
        ]
    },
    "flag_alert": {**_ALERT, "group": "石桥村监督服务群", "severity": "high", "url": "http://127.0.0.1:8080/flags/3"},
    "flag_alert_line": _ALERT,
    "flag_alert_group": {"minutes": 10, "until": "19:40"},
    "banquet_alert": {
        "date": "11月18日",
        "weekday": "周三",
        "days": 2,
        "lunar": "农历十月初十",
        "approximate": False,
        "time": "中午",
        "place": "村委会旁",
        "event": "寿宴",
        "relation": "父亲",
        "scale": "二十桌",
        "village": "石桥村",
        "host": "刘建国",
        "sender": "刘建国",
        "role": "party_member",
        "text": "家父七十大寿,定于农历十月初十中午在村委会旁摆二十桌",
        "at": "9月7日19:30",
        "url": "http://127.0.0.1:8080/banquets",
    },
    "broadcast_notice": {"text": "明天停水检修"},
    "broadcast_clarification": {"text": "网传消息不实"},
}
"""Sample values of every template, as the bot passes them: each template is rendered with these at start-up."""


class Templates:
    def __init__(self, overrides: Mapping[str, str] | None = None, *, source: str = "配置文件") -> None:
        defaults = tomllib.loads(DEFAULTS.read_text(encoding="utf-8"))
        self._text: dict[str, str] = {str(k): str(v) for k, v in defaults["templates"].items()}
        self.category_names: dict[str, str] = dict(defaults.get("category_names", {}))
        self.kind_names: dict[str, str] = dict(defaults.get("kind_names", {}))
        self.level_names: dict[str, str] = dict(defaults.get("level_names", {}))
        self.rating_names: dict[str, str] = dict(defaults.get("rating_names", {}))
        self.extra_names: dict[str, dict[str, str]] = {
            table: dict(defaults.get(table, {})) for table in ("label_names", "role_names", "severity_names")
        }
        for key, value in (overrides or {}).items():
            if key not in self._text:
                raise InputError(
                    f"{source}: [templates] {key}: 没有这个模板名称(可用的名称:{', '.join(sorted(self._text))})"
                )
            self._text[key] = value
        env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self._compiled: dict[str, Template] = {}
        for key, value in self._text.items():
            try:
                self._compiled[key] = env.from_string(value)
            except TemplateSyntaxError as exc:
                raise InputError(
                    f"{source}: [templates] {key}: 模板语法错误(模板第{exc.lineno}行):{exc.message}"
                ) from exc
        self.check(source=source)

    def check(self, *, source: str = "配置文件") -> None:
        """Render every template with its sample values, so a typo stops the start, not a villager's reply."""
        for key in self._compiled:
            sample = SAMPLES.get(key)
            if sample is None:
                continue
            try:
                self.render(key, **sample)
            except UndefinedError as exc:
                raise InputError(
                    f"{source}: [templates] {key}: 模板用到了不存在的变量({exc.message});"
                    f"这个模板可用的变量:{', '.join(sorted(sample)) or '无'}"
                ) from exc
            except Exception as exc:  # any other failure of a staff-written template: name it and stop
                raise InputError(f"{source}: [templates] {key}: 模板无法生成消息:{exc}") from exc
            if not self.render(key, **sample):
                raise InputError(f"{source}: [templates] {key}: 模板生成的消息是空的")

    def render(self, name: str, **values: Any) -> str:
        values.setdefault("category_names", self.category_names)
        values.setdefault("kind_names", self.kind_names)
        values.setdefault("level_names", self.level_names)
        values.setdefault("rating_names", self.rating_names)
        for table, names in self.extra_names.items():
            values.setdefault(table, names)
        return self._compiled[name].render(**values).strip()

    def names(self) -> list[str]:
        return sorted(self._text)

    def category_name(self, category: str | None) -> str:
        return self.category_names.get(category or "other", category or "其他")
