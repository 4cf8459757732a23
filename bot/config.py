"""Typed configuration: one TOML file, validated once at start-up.

An error names the file, the key and what is wrong, so an IT person can fix it without reading code.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import InputError, VillagewatchError
from bot.templates import Templates
from classifiers import CATEGORIES

Role = Literal["villager", "party_member", "cadre", "staff"]
TicketKind = Literal["demand", "consult", "clue"]


class ConfigError(VillagewatchError):
    """The configuration cannot be used; the message says where and why."""


MIN_SECRET_CHARS = 32


class _Strict(BaseModel):
    # nan and inf are valid TOML floats; no setting of ours means anything with them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
"""A name of a place, a group or an account: never empty."""
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]
"""The name of an environment variable (the value itself never goes into the config file)."""


class StorageConfig(_Strict):
    url: str = ""
    """Empty means a SQLite file in the data directory; PostgreSQL as postgresql+asyncpg://…"""


class PacingConfig(_Strict):
    per_group_seconds: float = Field(default=2.0, ge=0)
    per_account_seconds: float = Field(default=1.0, ge=0)


class WechatyAccountConfig(_Strict):
    endpoint: Name
    token_env: EnvName = Field(description="name of the environment variable holding the puppet-service token")
    tls: bool = False

    def token(self) -> str:
        value = os.environ.get(self.token_env, "")
        if not value:
            raise ConfigError(f"environment variable {self.token_env} (the Wechaty token) is not set")
        return value


class AccountConfig(_Strict):
    name: Name
    adapter: Literal["sim", "wechaty"] = "sim"
    groups: list[Name] = Field(default_factory=list)
    """Groups this account sits in; empty means every configured group (one-account deployments)."""
    wechaty: WechatyAccountConfig | None = None
    pacing: PacingConfig = PacingConfig()

    @model_validator(mode="after")
    def _wechaty_needs_endpoint(self) -> AccountConfig:
        if self.adapter == "wechaty" and self.wechaty is None:
            raise ValueError("adapter = 'wechaty' needs an [accounts.wechaty] table with endpoint and token_env")
        return self


class VillageConfig(_Strict):
    name: Name
    groups: list[Name] = Field(min_length=1)
    quiet: bool = False
    """A quiet village's groups get no acknowledgements in the group (tickets still open)."""


class TownshipConfig(_Strict):
    name: Name
    villages: list[VillageConfig] = Field(min_length=1)


class CountyConfig(_Strict):
    name: Name
    townships: list[TownshipConfig] = Field(min_length=1)


def _default_working_days() -> dict[TicketKind, int]:
    return {"demand": 10, "consult": 5, "clue": 10}


class DeadlineConfig(_Strict):
    working_days: dict[TicketKind, int] = Field(default_factory=lambda: _default_working_days())
    end_of_day: time = time(17, 30)
    remind_days_before: int = Field(default=2, ge=0)
    rating_wait_days: int = Field(default=3, ge=1)
    photo_window_minutes: int = Field(default=10, ge=1)
    holidays: list[date] = Field(default_factory=list)
    """Days off the ``chinesecalendar`` package does not know yet (the State Council's arrangement for the
    next year, published each November); they win over the package."""
    workdays: list[date] = Field(default_factory=list)
    """调休: weekend days that are working days, for the same years."""

    @field_validator("working_days")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, days in value.items():
            if not 1 <= days <= 250:
                raise ValueError(f"{kind} must be between 1 and 250 working days")
        return value

    @model_validator(mode="after")
    def _days_are_one_or_the_other(self) -> DeadlineConfig:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"{both[0].isoformat()} is listed both in holidays and in workdays")
        return self


class MergeConfig(_Strict):
    window_hours: float = Field(default=72, gt=0)
    similarity: float = Field(default=30, ge=0, le=100)
    """Character-bigram Jaccard similarity (0–100) of two reports' normalised text at or above which they
    merge when neither objects nor places decide (bot/tickets/merge.py; measured in BENCHMARKS.md)."""


Severity = Literal["high", "normal", "low"]


class AlertConfig(_Strict):
    """Instant private alerts to discipline staff for flags that cannot wait for the daily digest."""

    severities: list[Severity] = Field(default_factory=lambda: list[Severity](["high"]))
    labels: list[str] = Field(default_factory=lambda: ["banquet", "clue", "abuse", "gambling"])
    """A flag alerts when its severity is listed and it carries one of these labels."""
    recipients: Literal["township", "county", "both"] = "township"
    """township: the group's township staff (county staff when the township has none); county: the
    county's staff; both."""
    burst: int = Field(default=3, ge=1)
    """Alerts sent one by one to a staff member within ``group_minutes``; more are grouped into one message."""
    group_minutes: int = Field(default=10, ge=1, le=60)


HostRole = Literal["party_member", "cadre"]


class BanquetConfig(_Strict):
    """Alerts before banquets of party members and cadres, from the dates read from banquet flags."""

    alert_days_before: int = Field(default=2, ge=0, le=60)
    """The township's discipline staff hear of a party member's or cadre's banquet this many days before it
    (0: on the day); once per banquet and staff member."""
    alert_at: time = time(8, 0)
    """When the daily check for banquets coming up runs."""
    roles: list[HostRole] = Field(default_factory=lambda: list[HostRole](["party_member", "cadre"]), min_length=1)
    """Whose banquets are alerted: the host's role on the roster."""


class OcrConfig(_Strict):
    """Text in images: every image message is read (PP-OCRv4 models shipped in the rapidocr wheel, offline) in
    worker processes, after the message is stored; the recognised text is then classified like typed text."""

    enabled: bool = True
    """False: images are stored and shown, never read (a machine too small for OCR)."""
    workers: int = Field(default=1, ge=1, le=16)
    """Worker processes reading images side by side (each holds the models: up to ~1 GB while reading a large photo)."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """An image still being read after this long is given up (its worker is replaced) and marked."""
    max_pixels: int = Field(default=40_000_000, ge=10_000, le=40_000_000)
    """Images with more pixels than this are refused before they are decoded (decompression bombs)."""
    max_side: int = Field(default=2048, ge=320, le=8192)
    """Larger images are scaled down to this longest side before reading (bounds time and memory)."""
    memory_mb: int = Field(default=2048, ge=512, le=65536)
    """Address-space limit of a worker process; an image that needs more fails alone and is marked."""


class ScheduleConfig(_Strict):
    timezone: str = "Asia/Shanghai"
    daily_check: time = time(8, 30)
    daily_digest: time = time(9, 0)
    poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How often the live scheduler looks for jobs that fell due (a missed run is caught up on start)."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from exc
        return value


class DashboardConfig(_Strict):
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    secret_env: EnvName = "VILLAGEWATCH_SECRET"
    """Environment variable with the session secret; when unset a random one is made per start."""
    public_url: str = Field(default="", pattern=r"^(https?://[^\s/]+(/\S*)?)?$")
    session_minutes: int = Field(default=480, ge=1, le=60 * 24 * 30)

    def secret(self) -> bytes | None:
        """The session secret from the environment variable ``secret_env``; None when it is not set.

        Several dashboards behind one address must share it (a session made by one is valid on all), and
        with it sessions survive a restart. A value too short to be a secret stops the start.
        """
        value = os.environ.get(self.secret_env, "")
        if not value:
            return None
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"environment variable {self.secret_env} (the dashboard secret) must be at least "
                f"{MIN_SECRET_CHARS} characters; e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value.encode("utf-8")


class SimConfig(_Strict):
    bind: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    history: int = Field(default=200, ge=1, le=100_000)
    """Messages of each chat the simulator keeps in memory and shows (older ones stay in its journal)."""


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


class SpeechConfig(_Strict):
    """A county's own speech-recognition service, if it runs one (off by default: nothing is sent anywhere).

    Each voice message that decodes is POSTed to ``url`` as WAV (``Content-Type: audio/wav``, 16-bit mono
    24 kHz); the reply's text (JSON ``{"text": "…"}`` or plain text) becomes the message's transcript, marked
    as machine-made, and is classified like typed text. A transcript staff typed is never replaced."""

    url: str = ""
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// address, or empty (off)")
        return value


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
    alerts: AlertConfig = AlertConfig()
    banquets: BanquetConfig = BanquetConfig()
    ocr: OcrConfig = OcrConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    dashboard: DashboardConfig = DashboardConfig()
    sim: SimConfig = SimConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    retention: RetentionConfig = RetentionConfig()
    speech: SpeechConfig = SpeechConfig()
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
        for what, values in (
            ("county", [c.name for c in self.counties]),
            ("township", [t.name for c in self.counties for t in c.townships]),
            ("village", [v.name for c in self.counties for t in c.townships for v in t.villages]),
        ):
            doubled = sorted({v for v in values if values.count(v) > 1})
            if doubled:
                raise ValueError(f"{what} name {doubled[0]!r} is used twice (names must be unique in the config)")
        unknown = [key for key in self.category_names if key not in CATEGORIES]
        if unknown:
            raise ValueError(f"category_names: unknown category {unknown[0]!r}; one of {', '.join(CATEGORIES)}")
        for account in self.accounts:
            for group in account.groups:
                if group not in seen:
                    raise ValueError(f"account {account.name!r} lists unknown group {group!r}")
        return self

    def places(self) -> list[tuple[str, str, str]]:
        """Every configured (county, township, village): the hierarchy staff accounts are checked against."""
        return [(c.name, t.name, v.name) for c in self.counties for t in c.townships for v in t.villages]

    def storage_url(self) -> str:
        if self.storage.url:
            return self.storage.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'villagewatch.db').as_posix()}"

    def log_file(self) -> Path | None:
        file = self.logging.file
        if file is None or file.is_absolute():
            return file
        return self.data_dir / file

    def listed_account(self, group: str) -> str | None:
        """The account of this config whose own ``groups`` name the group (it sits there), if any."""
        for account in self.accounts:
            if group in account.groups:
                return account.name
        return None

    def catch_all_account(self) -> str | None:
        """The first account of this config with no ``groups`` (one-account deployments: every group)."""
        for account in self.accounts:
            if not account.groups:
                return account.name
        return None

    def account_for_group(self, group: str) -> str:
        """The account this process would use for a group nobody has claimed yet."""
        return self.listed_account(group) or self.catch_all_account() or self.accounts[0].name


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
    try:
        Templates(config.templates, source=str(path))
    except InputError as exc:
        raise ConfigError(str(exc)) from exc
    base = path.parent
    updates: dict[str, Any] = {}
    for key in ("data_dir", "rules_dir", "roster"):
        value = getattr(config, key)
        if value is not None and not value.is_absolute():
            updates[key] = (base / value).resolve()
    return config.model_copy(update=updates)
