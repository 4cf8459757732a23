"""The dashboard's own settings, built by the entry point from the bot's Config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dashboards.security import new_secret


@dataclass(frozen=True)
class DashboardSettings:
    session_minutes: int = 480
    secure_cookies: bool = False
    """Set the Secure flag on cookies (when served over https, e.g. public_url starts with https://)."""
    tz_hours: int = 8
    """Offset of local time (Asia/Shanghai) used for display and for grouping statistics by day/month."""
    media_dir: Path | None = None
    """Where message and ticket photo paths are relative to; photos are not served when None."""
    page_size: int = 50
    login_attempts: int = 5
    """Failed logins per username and address in ``login_window_minutes`` before each further try must
    wait a delay that doubles with every failure (never a ban: the owner gets in after the delay)."""
    login_attempts_per_source: int = 20
    """The same, for one address trying any usernames."""
    login_attempts_per_user: int = 20
    """The same, for one username tried from any addresses."""
    login_window_minutes: int = 15
    category_names: Mapping[str, str] = field(default_factory=dict)
    """Overrides of the Chinese names of categories (the Config's category_names)."""
    title: str = "村级监督服务平台"
    max_upload_bytes: int = 10 * 1024 * 1024
    secret: bytes = field(default_factory=new_secret, repr=False)
    """Key of the session-token HMAC: the same on every dashboard of a deployment (config: secret_env)."""
    freeze_gc: bool = True
    """gc.freeze() when the app starts, so full garbage collections do not stall page loads."""
