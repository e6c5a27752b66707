"""Settings read from the environment (and an optional `.env`), validated once.

Every setting is named `IVR_*`. A missing or malformed value raises `ConfigError`
whose message names the setting; the command line prints that one line and exits.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


_HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Settings:
    """Everything the parts of the system need to start."""

    database_url: str
    data_dir: Path
    prompts_dir: Path
    timezone: ZoneInfo
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    web_host: str = "127.0.0.1"
    web_port: int = 8137
    operator_hours: tuple[time, time] = (time(7, 0), time(19, 0))
    currency: str = "rial"
    min_speech_ms: int = 300
    silence_threshold_dbfs: float = -45.0
    agi_max_calls: int = 2000
    prompt_language: str = "fa"
    agi_prompt_prefix: str = ""
    redis_url: str = ""
    queue_name: str = "ivr"
    job_backoff: tuple[int, ...] = (10, 60, 300)
    secret_key: str = ""
    cookie_secure: bool = False

    def with_(self, **changes: object) -> Settings:
        """A copy with some settings changed (tests, CLI options)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def recordings_dir(self) -> Path:
        """Where stored audio lives."""
        return self.data_dir / "recordings"

    @property
    def incoming_dir(self) -> Path:
        """Where Asterisk writes RECORD FILE output before it is stored."""
        return self.data_dir / "incoming"

    @property
    def spool_dir(self) -> Path:
        """Where call results wait while the database is unreachable."""
        return self.data_dir / "spool"


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None


def _hours(env: Mapping[str, str], name: str, default: tuple[time, time]) -> tuple[time, time]:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    m = _HOURS_RE.match(raw.strip())
    if not m:
        raise ConfigError(f"{name}: expected HH:MM-HH:MM, got {raw!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    try:
        opens, closes = time(h1, m1), time(h2, m2)
    except ValueError:
        raise ConfigError(f"{name}: not a valid time range: {raw!r}") from None
    if opens >= closes:
        raise ConfigError(f"{name}: opening time must be before closing time, got {raw!r}")
    return opens, closes


def _backoff(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        delays = tuple(int(p) for p in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name}: expected seconds separated by commas, e.g. 10,60,300, got {raw!r}") from None
    if any(d < 0 for d in delays) or len(delays) > 20:
        raise ConfigError(f"{name}: expected up to 20 delays of 0 seconds or more, got {raw!r}")
    return delays


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _database_url(env: Mapping[str, str], data_root: Path) -> str:
    url = env.get("IVR_DATABASE_URL") or f"sqlite:///{data_root / 'ivr.sqlite3'}"
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
        raise ConfigError(
            f"IVR_DATABASE_URL: expected a sqlite:/// or postgresql:// URL, got {url.split('@')[-1]!r}"
        )
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Read and validate settings from `env` (default: the process environment plus `.env`)."""
    if env is None:
        if dotenv:
            from dotenv import dotenv_values

            values = {k: v for k, v in dotenv_values(".env").items() if v is not None}
            values.update(os.environ)
            env = values
        else:
            env = dict(os.environ)
    var = Path(env.get("IVR_VAR_DIR") or "var")
    data_dir = Path(env.get("IVR_DATA_DIR") or var / "data").resolve()
    prompts_dir = Path(
        env.get("IVR_PROMPTS_DIR") or Path(__file__).resolve().parent.parent / "recordings"
    ).resolve()
    tz_name = env.get("IVR_TIMEZONE") or "Asia/Tehran"
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"IVR_TIMEZONE: unknown time zone {tz_name!r}") from None
    currency = env.get("IVR_CURRENCY") or "rial"
    if currency not in ("rial", "toman"):
        raise ConfigError(f"IVR_CURRENCY: expected 'rial' or 'toman', got {currency!r}")
    return Settings(
        database_url=_database_url(env, var.resolve()),
        data_dir=data_dir,
        prompts_dir=prompts_dir,
        timezone=tz,
        agi_host=env.get("IVR_AGI_HOST") or "127.0.0.1",
        agi_port=_int(env, "IVR_AGI_PORT", 4573, 1, 65535),
        web_host=env.get("IVR_WEB_HOST") or "127.0.0.1",
        web_port=_int(env, "IVR_WEB_PORT", 8137, 1, 65535),
        operator_hours=_hours(env, "IVR_OPERATOR_HOURS", (time(7, 0), time(19, 0))),
        currency=currency,
        min_speech_ms=_int(env, "IVR_MIN_SPEECH_MS", 300, 0, 10000),
        silence_threshold_dbfs=_float(env, "IVR_SILENCE_THRESHOLD_DBFS", -45.0),
        agi_max_calls=_int(env, "IVR_AGI_MAX_CALLS", 2000, 1, 100000),
        agi_prompt_prefix=env.get("IVR_AGI_PROMPT_PREFIX") or "",
        redis_url=_redis_url(env),
        queue_name=env.get("IVR_QUEUE_NAME") or "ivr",
        job_backoff=_backoff(env, "IVR_JOB_BACKOFF", (10, 60, 300)),
        secret_key=env.get("IVR_SECRET_KEY") or "",
        cookie_secure=_bool(env, "IVR_COOKIE_SECURE", False),
    )


def _redis_url(env: Mapping[str, str]) -> str:
    url = env.get("IVR_REDIS_URL") or ""
    if url and not re.match(r"^rediss?://", url):
        raise ConfigError(f"IVR_REDIS_URL: expected a redis:// URL, got {url!r}")
    return url
