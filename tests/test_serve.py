"""`ivr serve`, the main job, as a newcomer runs it: it starts, says where things are, answers, stops."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fakes import FakeAsteriskCall, press, run_fake_call_tcp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_says_where_things_are_answers_calls_and_stops_gracefully(tmp_path: Path) -> None:
    agi_port, web_port = _free_port(), _free_port()
    env = dict(
        os.environ,
        IVR_VAR_DIR=str(tmp_path / "var"),
        IVR_DATA_DIR=str(tmp_path / "data"),
        IVR_AGI_PORT=str(agi_port),
        IVR_WEB_PORT=str(web_port),
    )
    env.pop("IVR_DATABASE_URL", None)
    ivr = str(Path(sys.executable).with_name("ivr"))
    proc = subprocess.Popen([ivr, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"ivr serve exited: {proc.stderr.read()}"
            banner.append(line)
            if "Stop with Ctrl-C" in line:
                break
        text = "".join(banner)
        assert f"agi://127.0.0.1:{agi_port}/1888" in text and f"agi://127.0.0.1:{agi_port}/137" in text
        assert f"http://127.0.0.1:{web_port}/healthz" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok", "database": "ok", "spooled_calls": 0}
        fake = FakeAsteriskCall([press("0")], incoming_root=tmp_path / "data")
        run_fake_call_tcp("127.0.0.1", agi_port, fake, timeout=15)
        assert fake.heard[0] == "welcome_1888" and fake.closed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert (tmp_path / "var" / "ivr.sqlite3").is_file()
