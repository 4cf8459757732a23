"""Runs replay scripts through the real `villagewatch replay` pipeline and reads back tickets and flags."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.replay import run_replay
from bot.reports import flags_as_json
from bot.tickets import tickets_as_json
from storage.engine import make_engine, make_session_factory

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).with_name("scripts")

HIERARCHY: dict[str, Any] = {
    "counties": [
        {
            "name": "舒城县",
            "townships": [
                {
                    "name": "城关镇",
                    "villages": [
                        {"name": "石桥村", "groups": ["石桥村监督服务群"]},
                        {"name": "河东村", "groups": ["河东村监督服务群"]},
                    ],
                },
                {
                    "name": "干汊河镇",
                    "villages": [{"name": "新河村", "groups": ["新河村监督服务群"], "quiet": True}],
                },
            ],
        }
    ]
}


def scenario_config(data_dir: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "rules_dir": ROOT / "rules",
        "accounts": [{"name": "demo"}],
        "dashboard": {"public_url": "http://127.0.0.1:8080"},
        **HIERARCHY,
    }
    values.update(overrides)
    return Config.model_validate(values)


@dataclass
class Outcome:
    transcript: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    flags: list[dict[str, Any]]

    def to(self, chat: str) -> list[dict[str, Any]]:
        return [line for line in self.transcript if line["to"] == chat]

    def texts(self, chat: str | None = None) -> list[str]:
        return [str(line["text"]) for line in self.transcript if chat is None or line["to"] == chat]

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        return next(t for t in self.tickets if t["id"] == ticket_id)

    def events(self, ticket_id: int) -> list[str]:
        return [e["type"] for e in self.ticket(ticket_id)["events"]]


async def replay(db_url: str, tmp_path: Path, *scripts: str, config: Config | None = None) -> Outcome:
    """Replay the scripts in order on one database (later scripts continue the first's state)."""
    config = config or scenario_config(tmp_path / "data")
    transcript: list[dict[str, Any]] = []
    for name in scripts:
        out = io.StringIO()
        await run_replay(SCRIPTS / name, config=config, db_url=db_url, transcript=out, media_root=tmp_path / "media")
        transcript.extend(json.loads(line) for line in out.getvalue().splitlines() if line.strip())
    engine = make_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            tickets = await tickets_as_json(session)
            flags = await flags_as_json(session)
    finally:
        await engine.dispose()
    return Outcome(transcript, tickets, flags)
