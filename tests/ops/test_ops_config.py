"""The operations settings: validated with the rest of the config; the log file rotates."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.cli import rotating_handler
from bot.config import ConfigError, LoggingConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_has_valid_ops_settings() -> None:
    config = load_config(ROOT / "config.example.toml")
    assert config.metrics.enabled and config.metrics.bind == "127.0.0.1" and config.metrics.port == 9464
    assert config.retention.message_text_days == 0
    assert config.logging.file is None and config.log_file() is None
    assert config.logging.max_bytes == 10_000_000 and config.logging.backups == 5


def test_bad_ops_values_name_their_keys(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text(
        "[logging]\nbackups = -1\n[metrics]\nport = 99999\n[retention]\nmessage_text_days = -3\nkeep = 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    message = str(info.value)
    for key in ("logging.backups", "metrics.port", "retention.message_text_days", "retention.keep"):
        assert key in message


def test_log_file_is_relative_to_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('data_dir = "d"\n[logging]\nfile = "logs/vw.log"\n', encoding="utf-8")
    assert load_config(path).log_file() == tmp_path / "d" / "logs" / "vw.log"


def test_the_log_file_rotates_and_keeps_backups(tmp_path: Path) -> None:
    handler = rotating_handler(tmp_path / "logs" / "vw.log", LoggingConfig(max_bytes=10_000, backups=2))
    logger = logging.getLogger("tests.ops.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for index in range(400):
            logger.info("第 %d 条日志 %s", index, "x" * 100)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["vw.log", "vw.log.1", "vw.log.2"]
    assert all((tmp_path / "logs" / name).stat().st_size <= 10_000 for name in files)
    assert "第 399 条日志" in (tmp_path / "logs" / "vw.log").read_text(encoding="utf-8")
