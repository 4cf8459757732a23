"""Everything the bot says, from templates: defaults in bot/templates.toml, overridden by [templates] in config.

Templates are Jinja2 strings (``{{ ticket_id }}``) rendered with StrictUndefined, so a typo in a template
fails at start-up when it is checked, not in a villager's group.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined, Template, TemplateSyntaxError

from bot.errors import InputError

DEFAULTS = Path(__file__).with_name("templates.toml")


class Templates:
    def __init__(self, overrides: Mapping[str, str] | None = None, *, source: str = "config") -> None:
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
                raise InputError(f"{source}: [templates] {key}: unknown template name")
            self._text[key] = value
        env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self._compiled: dict[str, Template] = {}
        for key, value in self._text.items():
            try:
                self._compiled[key] = env.from_string(value)
            except TemplateSyntaxError as exc:
                raise InputError(f"{source}: [templates] {key}: {exc.message} (line {exc.lineno})") from exc

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
