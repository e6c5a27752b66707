"""A local stand-in for Twilio's REST API (threaded http.server), answering as api.twilio.com does.

Messages: `POST /2010-04-01/Accounts/<sid>/Messages.json` → 201 with the message JSON, or
Twilio's error JSON (400 code 21211 for an invalid 'To', 503 while `unavailable` is set).
Recordings: `GET /2010-04-01/Accounts/<sid>/Recordings/<RE…>.wav` → the WAV bytes, or 404
with code 20404. Wrong credentials → 401 code 20003. Every request is kept in `requests`.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_BASE = "https://ivr.example.org"


@dataclass
class FakeTwilioApi:
    """The fake's state: what it knows, what it was asked, how it should misbehave."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    recordings: dict[str, bytes] = field(default_factory=dict)
    invalid_numbers: set[str] = field(default_factory=set)
    unavailable: int = 0  # answer this many requests with 503 first
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        """The base URL to give IVR_TWILIO_API_BASE."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def recording_url(self, recording_sid: str) -> str:
        """The RecordingUrl Twilio would put in a callback (without extension)."""
        return f"{self.base}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    def messages(self) -> list[dict[str, Any]]:
        """The SMS creation requests received (form fields)."""
        return [r["form"] for r in self.requests if r["method"] == "POST" and r["path"].endswith("/Messages.json")]

    def start(self) -> FakeTwilioApi:
        """Serve in a background thread."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: int, message: str) -> None:
                body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status}
                self._send(status, json.dumps(body).encode())

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{api.account_sid}:{api.auth_token}".encode()).decode()
                return self.headers.get("Authorization") == f"Basic {expected}"

            def _record(self, form: dict[str, str]) -> bool:
                with api.lock:
                    api.requests.append({"method": self.command, "path": self.path, "form": form})
                    if api.unavailable > 0:
                        api.unavailable -= 1
                        return False
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if not self._record({}):
                    return self._error(503, 20503, "Service Unavailable")
                if not self._authorised():
                    return self._error(401, 20003, "Authentication Error - invalid username")
                prefix = f"/2010-04-01/Accounts/{api.account_sid}/Recordings/"
                name = self.path.split("?", 1)[0]
                if name.startswith(prefix) and name.endswith(".wav"):
                    audio = api.recordings.get(name[len(prefix):-4])
                    if audio is not None:
                        return self._send(200, audio, "audio/x-wav")
                return self._error(404, 20404, f"The requested resource {name} was not found")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not self._record(form):
                    return self._error(503, 20503, "Service Unavailable")
                if not self._authorised():
                    return self._error(401, 20003, "Authentication Error - invalid username")
                if self.path != f"/2010-04-01/Accounts/{api.account_sid}/Messages.json":
                    return self._error(404, 20404, f"The requested resource {self.path} was not found")
                to = form.get("To", "")
                if not to.startswith("+") or to in api.invalid_numbers:
                    return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
                sid = "SM" + uuid.uuid4().hex
                body = {"sid": sid, "account_sid": api.account_sid, "to": to, "from": form.get("From"),
                        "body": form.get("Body"), "status": "queued", "num_segments": "1",
                        "direction": "outbound-api", "api_version": "2010-04-01", "error_code": None,
                        "uri": f"/2010-04-01/Accounts/{api.account_sid}/Messages/{sid}.json"}
                self._send(201, json.dumps(body).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class QueuedJobs:
    """A job queue stand-in that only records what was queued (the test runs the jobs itself)."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, str | None, dict[str, Any]]] = []

    def enqueue(self, name: str, *, job_id: str | None = None, delay: float = 0, **payload: Any) -> str:
        self.queued.append((name, job_id, payload))
        return job_id or name

    def run_all(self, settings: Any, session_factory: Any) -> list[Any]:
        """Run every queued job in order (as a worker would), emptying the queue; their results."""
        from ivr.wiring import build_registry, job_context

        registry, results = build_registry(), []
        while self.queued:
            name, _, payload = self.queued.pop(0)
            results.append(registry.get(name)(job_context(settings, session_factory, self), **payload))
        return results


# ---- fixtures shared by the Twilio tests (imported by their modules) ----------------------------------


@pytest.fixture(name="fake_api")
def fake_api_fixture() -> Iterator[FakeTwilioApi]:
    """The fake Twilio API, serving on a free local port."""
    api = FakeTwilioApi().start()
    yield api
    api.stop()


@pytest.fixture(name="twilio_settings")
def twilio_settings_fixture(settings: Any, fake_api: FakeTwilioApi) -> Any:
    """Settings for a Twilio deployment whose REST calls go to the fake API."""
    return settings.with_(
        twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, public_base_url=PUBLIC_BASE,
        twilio_numbers=(("+982112345678", "137"), ("+982188880000", "1888")),
        twilio_api_base=fake_api.base, sms_backend="twilio",
    )


# ---- Twilio's side of a call: signed webhooks to the app, TwiML answers parsed ------------------

def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature for a POST of `params` to `url`, as Twilio computes it."""
    from twilio.request_validator import RequestValidator

    return RequestValidator(token).compute_signature(url, params)


def prompt_names(root: Any) -> list[str]:
    """The prompt names a TwiML answer plays (`.../twilio/prompts/<name>.wav`; stored audio as `audio:`)."""
    names = []
    for play in root.iter("Play"):
        url = play.text or ""
        tail = url.rsplit("/", 1)[-1].removesuffix(".wav")
        names.append(tail if "/twilio/prompts/" in url else f"audio:{tail}")
    return names


class TwilioPhone:
    """Plays Twilio's part in one call against the Flask test client: it posts where the TwiML says."""

    def __init__(self, client: Any, *, caller: str = "+989121234567", to: str = "+982188880000",
                 call_sid: str | None = None) -> None:
        self.client = client
        self.caller = caller
        self.to = to
        self.call_sid = call_sid or "CA" + uuid.uuid4().hex
        self.last: Any = None
        self.heard: list[str] = []

    def params(self, **extra: str) -> dict[str, str]:
        """The parameters Twilio sends with every voice webhook, plus `extra`."""
        return {"AccountSid": ACCOUNT_SID, "CallSid": self.call_sid, "From": self.caller, "To": self.to,
                "CallStatus": "in-progress", "Direction": "inbound", "ApiVersion": "2010-04-01", **extra}

    def post(self, path: str, params: dict[str, str], *, signature: str | None = None) -> Any:
        """A signed POST (or one with the given signature) of `params` to `path`."""
        headers = {"X-Twilio-Signature": signature if signature is not None else sign(PUBLIC_BASE + path, params)}
        return self.client.post(path, data=params, headers=headers)

    def _twiml(self, path: str, params: dict[str, str]) -> Any:
        import xml.etree.ElementTree as ET

        resp = self.post(path, params)
        assert resp.status_code == 200, (resp.status_code, resp.get_data(as_text=True))
        assert resp.mimetype == "text/xml"
        self.last = ET.fromstring(resp.data)
        self.heard += prompt_names(self.last)
        return self.last

    def _path(self, url: str) -> str:
        assert url.startswith(PUBLIC_BASE), url
        return url[len(PUBLIC_BASE):]

    def start(self, path: str = "/twilio/voice/1888") -> Any:
        """The call comes in."""
        return self._twiml(path, self.params(CallStatus="ringing"))

    def _gather_action(self) -> str:
        gather = self.last.find("Gather")
        assert gather is not None, "the last TwiML gathers no keys"
        return self._path(gather.get("action"))

    def press(self, keys: str, finished_on_key: str = "") -> Any:
        """The caller answers the last <Gather> with `keys`."""
        extra = {"Digits": keys}
        if finished_on_key:
            extra["FinishedOnKey"] = finished_on_key
        return self._twiml(self._gather_action(), self.params(**extra))

    def timeout(self) -> Any:
        """The caller presses nothing: Twilio calls the <Gather> action with no digits."""
        return self._twiml(self._gather_action(), self.params(Digits="", FinishedOnKey=""))

    def follow(self) -> Any:
        """Twilio reaches the <Redirect> of the last TwiML."""
        redirect = self.last.find("Redirect")
        assert redirect is not None, "the last TwiML does not redirect"
        return self._twiml(self._path(redirect.text or ""), self.params())

    def record(self, recording_sid: str, url: str, seconds: int, digits: str = "#") -> Any:
        """The caller spoke after the beep; Twilio calls the <Record> action."""
        record = self.last.find("Record")
        assert record is not None, "the last TwiML records nothing"
        extra = {"RecordingSid": recording_sid, "RecordingUrl": url, "RecordingDuration": str(seconds)}
        if digits:
            extra["Digits"] = digits
        return self._twiml(self._path(record.get("action")), self.params(**extra))

    def recording_callback(self, recording_sid: str, url: str, seconds: int, status: str = "completed") -> Any:
        """Twilio's recording status callback."""
        params = {"AccountSid": ACCOUNT_SID, "CallSid": self.call_sid, "RecordingSid": recording_sid,
                  "RecordingUrl": url, "RecordingStatus": status, "RecordingDuration": str(seconds),
                  "RecordingChannels": "1", "RecordingSource": "RecordVerb"}
        return self.post("/twilio/recording", params)

    def hang_up(self, status: str = "completed") -> Any:
        """Twilio's call status callback at the end of the call."""
        return self.post("/twilio/status", self.params(CallStatus=status, CallDuration="42"))
