"""Typed configuration: one TOML file, validated once at start-up.

An error names the file, the key and what is wrong, so an IT person can fix it without reading code.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Role = Literal["villager", "party_member", "cadre", "staff"]
TicketKind = Literal["demand", "consult", "clue"]


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Strict):
    url: str = ""
    """Empty means a SQLite file in the data directory; PostgreSQL as postgresql+asyncpg://…"""


class PacingConfig(_Strict):
    per_group_seconds: float = Field(default=2.0, ge=0)
    per_account_seconds: float = Field(default=1.0, ge=0)


class WechatyAccountConfig(_Strict):
    endpoint: str
    token_env: str = Field(description="name of the environment variable holding the puppet-service token")
    tls: bool = False

    def token(self) -> str:
        value = os.environ.get(self.token_env, "")
        if not value:
            raise ConfigError(f"environment variable {self.token_env} (the Wechaty token) is not set")
        return value


class AccountConfig(_Strict):
    name: str
    adapter: Literal["sim", "wechaty"] = "sim"
    groups: list[str] = Field(default_factory=list)
    """Groups this account sits in; empty means every configured group (one-account deployments)."""
    wechaty: WechatyAccountConfig | None = None
    pacing: PacingConfig = PacingConfig()

    @model_validator(mode="after")
    def _wechaty_needs_endpoint(self) -> AccountConfig:
        if self.adapter == "wechaty" and self.wechaty is None:
            raise ValueError("adapter = 'wechaty' needs an [accounts.wechaty] table with endpoint and token_env")
        return self


class VillageConfig(_Strict):
    name: str
    groups: list[str] = Field(min_length=1)
    quiet: bool = False
    """A quiet village's groups get no acknowledgements in the group (tickets still open)."""


class TownshipConfig(_Strict):
    name: str
    villages: list[VillageConfig] = Field(min_length=1)


class CountyConfig(_Strict):
    name: str
    townships: list[TownshipConfig] = Field(min_length=1)


def _default_working_days() -> dict[TicketKind, int]:
    return {"demand": 10, "consult": 5, "clue": 10}


class DeadlineConfig(_Strict):
    working_days: dict[TicketKind, int] = Field(default_factory=lambda: _default_working_days())
    end_of_day: time = time(17, 30)
    remind_days_before: int = Field(default=2, ge=0)
    rating_wait_days: int = Field(default=3, ge=1)
    photo_window_minutes: int = Field(default=10, ge=1)

    @field_validator("working_days")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, days in value.items():
            if days < 1:
                raise ValueError(f"{kind} must be at least 1 working day")
        return value


class MergeConfig(_Strict):
    window_hours: float = Field(default=72, gt=0)
    similarity: float = Field(default=55, ge=0, le=100)
    """rapidfuzz token-set score (0–100) over normalised text at or above which two reports merge."""


class ScheduleConfig(_Strict):
    timezone: str = "Asia/Shanghai"
    daily_check: time = time(8, 30)
    daily_digest: time = time(9, 0)
    poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How often the live scheduler looks for jobs that fell due (a missed run is caught up on start)."""


class DashboardConfig(_Strict):
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    secret_env: str = "VILLAGEWATCH_SECRET"
    """Environment variable with the session secret; when unset a random one is made per start."""
    public_url: str = ""
    session_minutes: int = Field(default=480, ge=1)


class SimConfig(_Strict):
    bind: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)


class LoggingConfig(_Strict):
    """Where the log goes besides stderr (journald under systemd picks stderr up by itself)."""

    file: Path | None = None
    """A log file, relative to ``data_dir``; none = stderr only. Rotated at ``max_bytes``."""
    max_bytes: int = Field(default=10_000_000, ge=10_000)
    backups: int = Field(default=5, ge=0, le=1000)
    """Rotated files kept (villagewatch.log.1 … .N); 0 truncates the file when it is full."""


class MetricsConfig(_Strict):
    """The Prometheus ``/metrics`` endpoint, on a listener of its own (also in processes without a dashboard)."""

    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    token_env: str = "VILLAGEWATCH_METRICS_TOKEN"
    """Environment variable with a bearer token. Set: every scrape must send ``Authorization: Bearer …``.
    Unset: only loopback clients are answered, and binding to a non-loopback address is refused."""


class RetentionConfig(_Strict):
    """How long message text is kept; tickets, their events (the audit) and flags are never blanked."""

    message_text_days: int = Field(default=0, ge=0)
    """Text (and the raw payload) of messages older than this many days is blanked daily; 0 keeps it."""
    run_at: time = time(3, 0)


class Config(_Strict):
    data_dir: Path = Path("data")
    rules_dir: Path = Path("rules")
    roster: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    storage: StorageConfig = StorageConfig()
    accounts: list[AccountConfig] = Field(default_factory=lambda: [AccountConfig(name="sim")])
    counties: list[CountyConfig] = Field(default_factory=list)
    deadlines: DeadlineConfig = DeadlineConfig()
    merge: MergeConfig = MergeConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    dashboard: DashboardConfig = DashboardConfig()
    sim: SimConfig = SimConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    retention: RetentionConfig = RetentionConfig()
    templates: dict[str, str] = Field(default_factory=dict)
    category_names: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: dict[str, str] = {}
        for county in self.counties:
            for township in county.townships:
                for village in township.villages:
                    for group in village.groups:
                        if group in seen:
                            raise ValueError(f"group {group!r} is listed under both {seen[group]} and {village.name}")
                        seen[group] = village.name
        names = [a.name for a in self.accounts]
        if len(set(names)) != len(names):
            raise ValueError("account names must be unique")
        for account in self.accounts:
            for group in account.groups:
                if group not in seen:
                    raise ValueError(f"account {account.name!r} lists unknown group {group!r}")
        return self

    def storage_url(self) -> str:
        if self.storage.url:
            return self.storage.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'villagewatch.db').as_posix()}"

    def log_file(self) -> Path | None:
        file = self.logging.file
        if file is None or file.is_absolute():
            return file
        return self.data_dir / file

    def account_for_group(self, group: str) -> str:
        for account in self.accounts:
            if not account.groups or group in account.groups:
                return account.name
        return self.accounts[0].name


def _locate(data: Any, loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_config(path: Path) -> Config:
    """Read and validate a config file; relative paths inside it are taken from the file's folder."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_locate(data, err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
    base = path.parent
    updates: dict[str, Any] = {}
    for key in ("data_dir", "rules_dir", "roster"):
        value = getattr(config, key)
        if value is not None and not value.is_absolute():
            updates[key] = (base / value).resolve()
    return config.model_copy(update=updates)
