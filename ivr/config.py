"""Settings read from the environment (and an optional `.env`), validated once.

Every setting is named `IVR_*`. A missing or malformed value raises `ConfigError`
whose message names the setting; the command line prints that one line and exits.
"""
from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.vocabulary import (
    DEFAULT_DISTRICTS,
    LINES,
    MAX_DISTRICTS,
    NOTICE_CHANNELS,
    SMS_BACKENDS,
    district_range,
)


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
    # Tracking codes are read in groups of these sizes with a short pause (IVR_CODE_GROUPS).
    code_groups: tuple[int, ...] = (3, 3, 3)
    min_speech_ms: int = 300
    silence_threshold_dbfs: float = -45.0
    agi_max_calls: int = 2000
    agi_workers: int = 1
    prompt_language: str = "fa"
    agi_prompt_prefix: str = ""
    redis_url: str = ""
    queue_name: str = "ivr"
    job_backoff: tuple[int, ...] = (10, 60, 300)
    secret_key: str = ""
    cookie_secure: bool = False
    api_token_days: int = 90  # 0: API tokens never expire
    # Reverse proxies in front of the web app whose X-Forwarded-* headers are believed: a number of
    # hops, or (trusted_proxy_networks) the proxies' own addresses or networks.
    trusted_proxies: int = 0
    trusted_proxy_networks: tuple[str, ...] = ()
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    public_base_url: str = ""
    twilio_numbers: tuple[tuple[str, str], ...] = ()
    twilio_operator: str = "operator"
    twilio_api_base: str = ""
    sms_backend: str = "local"
    # follow-through (reply notices, surveys, inspections, sweeps)
    notice_channel: str = "sms"
    call_spool_dir: Path | None = None
    call_channel: str = "PJSIP/{number}@telco"
    call_max_retries: int = 2
    call_retry_seconds: int = 600
    survey_delay_minutes: int = 120
    survey_resend_hours: int = 48
    quiet_hours: tuple[time, time] = (time(21, 0), time(8, 0))
    inspection_share: float = 0.1
    inspection_seed: str = "ivr"
    inspection_photo_max_bytes: int = 5 * 1024 * 1024
    sweep_seconds: int = 300
    duplicate_window_days: int = 14
    districts: int = DEFAULT_DISTRICTS
    audio_conversions: int = 0  # replies converted at once by the web app; 0: the CPU count

    def twilio_line_for(self, number: str | None) -> str | None:
        """The line a Twilio number (`To`) belongs to, from IVR_TWILIO_NUMBERS; None if unknown."""
        wanted = _e164_key(number or "")
        return next((line for num, line in self.twilio_numbers if _e164_key(num) == wanted), None)

    def twilio_number_of(self, line: str | None) -> str | None:
        """The Twilio number of `line` (the first configured one if the line has none)."""
        for num, num_line in self.twilio_numbers:
            if num_line == line:
                return num
        return self.twilio_numbers[0][0] if self.twilio_numbers else None

    def with_(self, **changes: object) -> Settings:
        """A copy with some settings changed (tests, CLI options)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def district_numbers(self) -> range:
        """The city's district numbers, 1 to IVR_DISTRICTS."""
        return district_range(self.districts)

    @property
    def recordings_dir(self) -> Path:
        """Where stored audio lives."""
        return self.data_dir / "recordings"

    @property
    def incoming_dir(self) -> Path:
        """Where Asterisk writes RECORD FILE output before it is stored."""
        return self.data_dir / "incoming"

    @property
    def outgoing_call_dir(self) -> Path:
        """Where call files for Asterisk's outgoing spool are written (IVR_CALL_SPOOL_DIR)."""
        return self.call_spool_dir or self.data_dir / "outgoing"

    @property
    def finished_call_dir(self) -> Path:
        """Where Asterisk archives call files it has finished (`outgoing_done`, beside the outgoing spool)."""
        return self.outgoing_call_dir.parent / "outgoing_done"

    @property
    def inspection_photos_dir(self) -> Path:
        """Where field inspectors' photos are stored."""
        return self.data_dir / "inspections"

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


def _code_groups(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = (env.get(name) or "").strip()
    if raw == "":
        return default
    if raw.lower() in ("0", "none", "off"):
        return ()  # one run of digits, as before groups existed
    try:
        sizes = tuple(int(p) for p in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name}: expected group sizes separated by commas, e.g. 3,3,3, got {raw!r}") from None
    if not 1 <= len(sizes) <= 10 or any(not 1 <= g <= 20 for g in sizes):
        raise ConfigError(f"{name}: expected 1 to 10 group sizes from 1 to 20 (or none), got {raw!r}")
    return sizes


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
        code_groups=_code_groups(env, "IVR_CODE_GROUPS", (3, 3, 3)),
        min_speech_ms=_int(env, "IVR_MIN_SPEECH_MS", 300, 0, 10000),
        silence_threshold_dbfs=_float(env, "IVR_SILENCE_THRESHOLD_DBFS", -45.0),
        agi_max_calls=_int(env, "IVR_AGI_MAX_CALLS", 2000, 1, 100000),
        # Several workers share the port with SO_REUSEPORT, which balances connections on Linux only.
        agi_workers=_int(env, "IVR_AGI_WORKERS", (os.cpu_count() or 1) if sys.platform == "linux" else 1, 1, 256),
        agi_prompt_prefix=env.get("IVR_AGI_PROMPT_PREFIX") or "",
        redis_url=_redis_url(env),
        queue_name=env.get("IVR_QUEUE_NAME") or "ivr",
        job_backoff=_backoff(env, "IVR_JOB_BACKOFF", (10, 60, 300)),
        secret_key=env.get("IVR_SECRET_KEY") or "",
        cookie_secure=_bool(env, "IVR_COOKIE_SECURE", False),
        api_token_days=_int(env, "IVR_API_TOKEN_DAYS", 90, 0, 3650),
        trusted_proxies=_trusted_proxies(env, "IVR_TRUSTED_PROXIES")[0],
        trusted_proxy_networks=_trusted_proxies(env, "IVR_TRUSTED_PROXIES")[1],
        twilio_account_sid=(env.get("IVR_TWILIO_ACCOUNT_SID") or "").strip(),
        twilio_auth_token=(env.get("IVR_TWILIO_AUTH_TOKEN") or "").strip(),
        public_base_url=_base_url(env, "IVR_PUBLIC_BASE_URL"),
        twilio_numbers=_twilio_numbers(env, "IVR_TWILIO_NUMBERS"),
        twilio_operator=(env.get("IVR_TWILIO_OPERATOR") or "operator").strip(),
        twilio_api_base=_base_url(env, "IVR_TWILIO_API_BASE"),
        sms_backend=_choice(env, "IVR_SMS_BACKEND", "local", SMS_BACKENDS),
        notice_channel=_choice(env, "IVR_NOTICE_CHANNEL", "sms", NOTICE_CHANNELS),
        call_spool_dir=Path(env["IVR_CALL_SPOOL_DIR"]).resolve() if env.get("IVR_CALL_SPOOL_DIR") else None,
        call_channel=_call_channel(env, "IVR_CALL_CHANNEL"),
        call_max_retries=_int(env, "IVR_CALL_MAX_RETRIES", 2, 0, 10),
        call_retry_seconds=_int(env, "IVR_CALL_RETRY_SECONDS", 600, 30, 86400),
        survey_delay_minutes=_int(env, "IVR_SURVEY_DELAY_MINUTES", 120, 0, 10080),
        survey_resend_hours=_int(env, "IVR_SURVEY_RESEND_HOURS", 48, 1, 720),
        quiet_hours=_quiet_hours(env, "IVR_QUIET_HOURS", (time(21, 0), time(8, 0))),
        inspection_share=_share(env, "IVR_INSPECTION_SHARE", 0.1),
        inspection_seed=env.get("IVR_INSPECTION_SEED") or "ivr",
        inspection_photo_max_bytes=_int(env, "IVR_INSPECTION_PHOTO_MAX_BYTES", 5 * 1024 * 1024, 1024, 50 * 1024 * 1024),
        sweep_seconds=_int(env, "IVR_SWEEP_SECONDS", 300, 5, 86400),
        duplicate_window_days=_int(env, "IVR_DUPLICATE_WINDOW_DAYS", 14, 1, 365),
        # At most the database's bound (the CHECK constraints on district columns).
        districts=_int(env, "IVR_DISTRICTS", DEFAULT_DISTRICTS, 1, MAX_DISTRICTS),
        audio_conversions=_int(env, "IVR_AUDIO_CONVERSIONS", os.cpu_count() or 1, 1, 256),
    )


def _redis_url(env: Mapping[str, str]) -> str:
    url = env.get("IVR_REDIS_URL") or ""
    if url and not re.match(r"^rediss?://", url):
        raise ConfigError(f"IVR_REDIS_URL: expected a redis:// URL, got {url!r}")
    return url


def _e164_key(number: str) -> str:
    return re.sub(r"[^\d]", "", number)


def _base_url(env: Mapping[str, str], name: str) -> str:
    raw = (env.get(name) or "").strip()
    if raw and not re.match(r"^https?://[^/\s]+(/\S*)?$", raw):
        raise ConfigError(f"{name}: expected an http(s):// URL, got {raw!r}")
    return raw.rstrip("/")


def _twilio_numbers(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return ()
    pairs = []
    for part in raw.split(","):
        number, sep, line = part.strip().partition("=")
        number, line = number.strip(), line.strip()
        if not sep or not re.fullmatch(r"\+\d{6,15}", number) or line not in LINES:
            raise ConfigError(f"{name}: expected +NUMBER=LINE pairs (line 137 or 1888) separated by commas, got {part!r}")
        pairs.append((number, line))
    return tuple(pairs)


def _trusted_proxies(env: Mapping[str, str], name: str) -> tuple[int, tuple[str, ...]]:
    """A number of proxy hops (0 to 5), or the proxies' addresses / networks separated by commas."""
    raw = (env.get(name) or "").strip()
    if not raw or raw.isdigit():
        return _int(env, name, 0, 0, 5), ()
    networks = []
    for part in raw.split(","):
        try:
            networks.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise ConfigError(
                f"{name}: expected a number of proxies or their addresses (e.g. 10.0.0.5,10.1.0.0/16), got {part!r}"
            ) from None
    return 0, tuple(networks)


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower() or default
    if raw not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _call_channel(env: Mapping[str, str], name: str) -> str:
    raw = (env.get(name) or "").strip() or "PJSIP/{number}@telco"
    if raw.count("{number}") != 1 or "\n" in raw:
        raise ConfigError(f"{name}: expected a dial string with one {{number}}, e.g. PJSIP/{{number}}@telco, got {raw!r}")
    return raw


def _quiet_hours(env: Mapping[str, str], name: str, default: tuple[time, time]) -> tuple[time, time]:
    """HH:MM-HH:MM that may wrap past midnight (21:00-08:00); equal ends mean no quiet hours."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    m = _HOURS_RE.match(raw)
    if not m:
        raise ConfigError(f"{name}: expected HH:MM-HH:MM, e.g. 21:00-08:00, got {raw!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    try:
        return time(h1, m1), time(h2, m2)
    except ValueError:
        raise ConfigError(f"{name}: not a valid time range: {raw!r}") from None


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}: expected a share between 0 and 1, got {value}")
    return value
