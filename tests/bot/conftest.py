"""The bot's services as `villagewatch run` builds them, on the database of the `engine` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import CHINA, SimulatedClock
from bot.config import load_config
from bot.services import Services, build_services

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 9, 7, 9, 0, tzinfo=CHINA)


@pytest.fixture
async def services(engine: AsyncEngine, db_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    """Config, roster, rules and the real ticket workflow of config.example.toml, on a simulated clock."""
    config = load_config(ROOT / "config.example.toml").model_copy(update={"data_dir": tmp_path / "data"})
    built = await build_services(
        config, clock=SimulatedClock(T0), db_url=db_url, media_root=tmp_path / "media", migrate=False
    )
    try:
        yield built
    finally:
        await built.close()
