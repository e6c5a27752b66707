"""Talking to Twilio's REST API: the twilio client, and downloads of recordings.

`IVR_TWILIO_API_BASE` points every request at another host (a local fake in tests, a
recording proxy in production) through the twilio client's pluggable HTTP client, so
nothing else in the code knows where Twilio lives.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ivr.config import Settings
from ivr.ports import DownloadError

TWILIO_API = "https://api.twilio.com"
DOWNLOAD_TIMEOUT = 30.0
# Twilio error codes that will not go away by retrying (bad or unreachable number, opted out...).
PERMANENT_ERROR_CODES = frozenset({21211, 21212, 21408, 21610, 21612, 21614, 30003, 30004, 30005, 30006})


class TwilioError(Exception):
    """A Twilio request that failed; `permanent` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.code = code


class RebasedHttpClient(TwilioHttpClient):
    """The twilio HTTP client, sending every request to `base` instead of Twilio's hosts."""

    def __init__(self, base: str = "", timeout: float = 15.0) -> None:
        super().__init__(timeout=timeout)
        self.base = base.rstrip("/")

    def rebase(self, url: str) -> str:
        """`url` with its scheme and host replaced by the configured base (unchanged without one)."""
        if not self.base:
            return url
        target, original = urlsplit(self.base), urlsplit(url)
        return urlunsplit((target.scheme, target.netloc, target.path + original.path, original.query, ""))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """Send a REST request (rebased)."""
        return super().request(method, self.rebase(url), *args, **kwargs)

    def download(self, url: str, auth: tuple[str, str]) -> bytes:
        """GET binary content (a recording) with the account credentials; TwilioError on failure."""
        session = self.session or requests.Session()
        try:
            resp = session.get(self.rebase(url), auth=auth, timeout=DOWNLOAD_TIMEOUT)
        except requests.RequestException as exc:
            raise TwilioError(f"download of {url} failed: {exc}", permanent=False) from None
        if resp.status_code == 200:
            return resp.content
        code = _error_code(resp)
        permanent = resp.status_code in (400, 401, 403, 404, 410)
        raise TwilioError(
            f"download of {url}: HTTP {resp.status_code}" + (f", Twilio error {code}" if code else ""),
            permanent=permanent, status=resp.status_code, code=code,
        )


def _error_code(resp: Any) -> int | None:
    try:
        code = resp.json().get("code")
    except ValueError:
        return None
    return int(code) if isinstance(code, int) else None


def is_twilio_url(settings: Settings, url: str) -> bool:
    """True when `url` is on Twilio's API host (or the configured stand-in): we send credentials only there."""
    allowed = urlsplit(settings.twilio_api_base or TWILIO_API)
    given = urlsplit(url)
    return given.scheme == allowed.scheme and given.netloc == allowed.netloc or (
        given.scheme == "https" and given.netloc == urlsplit(TWILIO_API).netloc
    )


def build_client(settings: Settings) -> Client:
    """The twilio REST client for the configured account."""
    return Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=RebasedHttpClient(settings.twilio_api_base),
    )


def rest_error(exc: TwilioRestException) -> TwilioError:
    """A twilio exception as a TwilioError: 4xx with a known code (or 400/404) is permanent, the rest transient."""
    status = int(exc.status or 0)
    permanent = (exc.code in PERMANENT_ERROR_CODES) or status in (400, 401, 403, 404)
    if status == 429:
        permanent = False
    text = f"Twilio error {exc.code}: {exc.msg}" if exc.code else f"Twilio HTTP {status}: {exc.msg}"
    return TwilioError(text[:2000], permanent=permanent, status=status, code=exc.code)


class TwilioRecordings:
    """The `RecordingDownloader` port for Twilio: WAV downloads with the account's credentials."""

    def __init__(self, settings: Settings, client: RebasedHttpClient | None = None) -> None:
        self.settings = settings
        self.client = client or RebasedHttpClient(settings.twilio_api_base)

    def download(self, url: str) -> bytes:
        """The recording at Twilio's `url` as WAV; a URL on another host is refused (permanently)."""
        if not is_twilio_url(self.settings, url):
            raise DownloadError(f"not a Twilio URL: {url[:200]}", permanent=True)
        try:
            return self.client.download(url + ".wav", (self.settings.twilio_account_sid, self.settings.twilio_auth_token))
        except TwilioError as exc:
            raise DownloadError(str(exc), permanent=exc.permanent) from None
