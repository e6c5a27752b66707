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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


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
