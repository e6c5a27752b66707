"""Twilio webhook latency: concurrent simulated Twilio calls against the app under waitress.

    .venv/bin/python benchmarks/bench_twilio.py                        # 50 clients, paced, 30 s
    .venv/bin/python benchmarks/bench_twilio.py --think 0              # the same clients flat out
    .venv/bin/python benchmarks/bench_twilio.py --database-url postgresql://postgres@127.0.0.1:5432/test

The server runs in its own process (this file with `--serve`): what `ivr web` builds
(`web.server.WebServer`, waitress with 8 threads, the in-process job queue) on a seeded
database (a temporary SQLite file unless `--database-url`). This process plays Twilio:
`--clients` threads, each placing calls one after the other over real HTTP with
keep-alive, every request signed with twilio's RequestValidator, following the TwiML it
gets back (Gather and Record actions, Redirects). A local fake of Twilio's REST API
(`tests.fake_twilio`) serves the recordings the server's job downloads.

Journeys: 40 % messages (1888 kinds, 137 topics with a district: record, recording
callback, wait for the fetch, keep, hear the code), 35 % key 4 case look-ups, 15 %
follow-ups by tracking code, 10 % hang-ups mid-menu; every call ends with the call status
callback. Between two webhooks a caller "listens" for `--think` seconds on average
(uniform 0.5x-1.5x; Twilio calls back only after the prompts have played, which takes
seconds), so `--clients` is the number of calls in progress. The latency is the client's
time from sending a request to having read the whole answer. Target: p99 <= 50 ms.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PUBLIC_BASE = "https://ivr.example.org"  # what Twilio is given; the proxy in front is simulated
TARGET_P99_MS = 50.0


def serve_main(port: int, samples_path: str) -> int:
    """Child process: the web app under waitress, as `ivr web` runs it, timing each request inside the app."""
    import json
    import signal

    from ivr.config import load_settings
    from web import create_app
    from web.server import WebServer

    settings = load_settings(dotenv=False)
    app = create_app(settings)
    inner = app.wsgi_app
    samples: list[tuple[float, float, str]] = []

    def timed(environ: Any, start_response: Any) -> Any:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return inner(environ, start_response)
        finally:
            path = environ.get("PATH_INFO", "")
            samples.append(((time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000, path))

    app.wsgi_app = timed  # type: ignore[method-assign]

    def stop(*_: Any) -> None:
        Path(samples_path).write_text(json.dumps(samples))
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    server = WebServer(settings, host="127.0.0.1", port=port, app=app)
    host, bound = server.address
    print(f"LISTENING {host} {bound}", flush=True)
    server.serve_forever()
    return 0


def seed(url: str, data_dir: Path) -> list[str]:
    """Migrate and seed: the 137 topics and a unit, 2,000 cases, 200 messages; their tracking codes."""
    from datetime import date

    from ivr.db import make_engine, make_sessionmaker, transaction
    from ivr.migrate import upgrade
    from ivr.models import Topic, Unit, UrbanCase
    from ivr.services.messages import register_message

    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    codes = []
    with transaction(factory) as s:
        unit = Unit(code=f"bench-{uuid.uuid4().hex[:8]}", name="منطقه ۷", kind="district_office", district=7)
        s.add(unit)
        s.flush()
        for key, code in enumerate(["cleaning", "roads", "lighting", "green", "traffic", "other_137"], 1):
            if s.query(Topic).filter_by(code=code).first() is None:
                s.add(Topic(code=code, line_code="137", name=code, menu_key=str(key), unit_id=unit.id))
        for i in range(2000):
            s.add(UrbanCase(case_number=str(5_000_000 + i), kind="urban_planning" if i % 2 else "article100",
                            stage="received" if i % 2 else "hearing_scheduled", next_date=date(2026, 12, 1)))
        for i in range(200):
            msg = register_message(s, line="1888", kind="criticism", source="operator", body=f"پیام {i}",
                                   caller="09121234567")
            codes.append(msg.tracking_code)
    engine.dispose()
    return codes


class Stats:
    """Latencies per kind of webhook, and failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.calls = 0

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.samples[kind].append(seconds * 1000)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


class TwilioCaller:
    """One simulated Twilio call: signed POSTs to the app, following the TwiML."""

    def __init__(self, session: Any, app_base: str, stats: Stats, token: str, think: float, rng: random.Random) -> None:
        from twilio.request_validator import RequestValidator

        self.http = session
        self.app_base = app_base
        self.stats = stats
        self.validator = RequestValidator(token)
        self.think = think
        self.rng = rng
        self.sid = "CA" + uuid.uuid4().hex
        self.root: Any = None

    def _pause(self) -> None:
        if self.think > 0:
            time.sleep(self.think * self.rng.uniform(0.5, 1.5))

    def post(self, kind: str, path: str, params: dict[str, str]) -> Any:
        full = {"AccountSid": "AC" + "0" * 32, "CallSid": self.sid, "From": "+989121234567",
                "To": "+982188880000", "CallStatus": "in-progress", **params}
        headers = {"X-Twilio-Signature": self.validator.compute_signature(PUBLIC_BASE + path, full)}
        t0 = time.perf_counter()
        resp = self.http.post(self.app_base + path, data=full, headers=headers, timeout=30)
        body = resp.content
        self.stats.add(kind, time.perf_counter() - t0)
        if resp.status_code not in (200, 204):
            raise RuntimeError(f"{kind}: HTTP {resp.status_code} {body[:100]!r}")
        if resp.status_code == 200:
            self.root = ET.fromstring(body)
        return self.root

    def _action(self, tag: str) -> str:
        node = self.root.find(tag)
        if node is None:
            raise RuntimeError(f"expected <{tag}> in {ET.tostring(self.root)[:200]!r}")
        url = node.text if tag == "Redirect" else node.get("action")
        return url[len(PUBLIC_BASE):]

    def start(self, line: str) -> None:
        self.post("start", f"/twilio/voice/{line}", {"CallStatus": "ringing"})

    def press(self, keys: str, finished: str = "") -> None:
        self._pause()
        self.post("gather", self._action("Gather"), {"Digits": keys, "FinishedOnKey": finished})

    def follow(self, kind: str = "redirect") -> None:
        self.post(kind, self._action("Redirect"), {})

    def record(self, rec_sid: str, url: str) -> None:
        self._pause()
        self.post("record", self._action("Record"), {"RecordingSid": rec_sid, "RecordingUrl": url,
                                                     "RecordingDuration": "3", "Digits": "#"})

    def recording_callback(self, rec_sid: str, url: str) -> None:
        self.post("recording_cb", "/twilio/recording", {"RecordingSid": rec_sid, "RecordingUrl": url,
                                                       "RecordingStatus": "completed", "RecordingDuration": "3"})

    def hang_up(self) -> None:
        self._pause()
        self.post("status_cb", "/twilio/status", {"CallStatus": "completed", "CallDuration": "40"})


def run_call(caller: TwilioCaller, rng: random.Random, api: Any, audio: bytes, codes: list[str]) -> None:
    """One journey from the mix."""
    r = rng.random()
    if r < 0.40:  # leave a message
        line = rng.choice(["1888", "137"])
        caller.start(line)
        caller.press("1")
        caller.press(str(rng.randint(1, 4)))
        if line == "137":
            caller.press(str(rng.randint(1, 22)), "#")
        rec_sid = "RE" + uuid.uuid4().hex
        api.recordings[rec_sid] = audio
        url = api.recording_url(rec_sid)
        caller.record(rec_sid, url)
        caller.recording_callback(rec_sid, url)
        for _ in range(60):  # Twilio's <Pause length=1> and <Redirect>, scaled down
            if caller.root.find("Gather") is not None:
                break
            time.sleep(0.2)
            caller.follow("hold")
        caller.press("1")
        caller.follow()
        if caller.root.find("Gather") is None:
            raise RuntimeError("no tracking code read back")
    elif r < 0.75:  # key 4: a case
        caller.start(rng.choice(["1888", "137"]))
        caller.press("4")
        kind = rng.choice(["1", "2"])
        caller.press(kind)
        caller.press(str(5_000_000 + rng.randrange(0, 2000, 2) + (1 if kind == "1" else 0)), "#")
    elif r < 0.90:  # follow-up by tracking code
        caller.start("1888")
        caller.press("2")
        caller.press(rng.choice(codes), "#")
    else:  # hangs up in the main menu
        caller.start(rng.choice(["1888", "137"]))
    caller.hang_up()


def _pg_schema(url: str, ddl: str) -> None:
    from sqlalchemy import text

    from ivr.db import make_engine

    engine = make_engine(url.split("?")[0])
    with engine.begin() as conn:
        conn.execute(text(ddl))
    engine.dispose()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))] if s else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--samples", default="", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of new calls")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between a caller's webhooks")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if args.serve:
        return serve_main(args.port, args.samples)

    import requests

    from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioApi
    from tests.fakes import write_speech_wav

    work = Path(tempfile.mkdtemp(prefix="bench-twilio-"))
    url = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    schema = f"bench_twilio_{os.getpid()}" if url.startswith("postgresql") else ""
    if schema:  # a schema of its own, dropped at the end
        _pg_schema(url, f"CREATE SCHEMA {schema}")
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    codes = seed(url, work / "data")
    api = FakeTwilioApi().start()
    audio = write_speech_wav(work / "speech.wav", 3.0).read_bytes()
    env = dict(os.environ, IVR_DATABASE_URL=url, IVR_DATA_DIR=str(work / "data"), IVR_VAR_DIR=str(work),
               IVR_TWILIO_ACCOUNT_SID=ACCOUNT_SID, IVR_TWILIO_AUTH_TOKEN=AUTH_TOKEN, IVR_PUBLIC_BASE_URL=PUBLIC_BASE,
               IVR_TWILIO_NUMBERS="+982112345678=137,+982188880000=1888", IVR_TWILIO_API_BASE=api.base,
               IVR_REDIS_URL="")
    server_log = (work / "server.log").open("w")
    samples_path = work / "server-samples.json"
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--samples", str(samples_path)], env=env, stdout=subprocess.PIPE, text=True,
                              stderr=server_log, cwd=str(work))
    try:
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("LISTENING"):
            print(f"server did not start: {line!r}")
            return 1
        _, host, port = line.split()
        app_base = f"http://{host}:{port}"
        stats = Stats()
        deadline = time.monotonic() + args.duration

        def client(n: int) -> None:
            rng = random.Random(n)
            session = requests.Session()
            time.sleep(rng.uniform(0, max(args.think, 0.1)))  # calls do not all start at once
            while time.monotonic() < deadline:
                caller = TwilioCaller(session, app_base, stats, AUTH_TOKEN, args.think, rng)
                try:
                    run_call(caller, rng, api, audio, codes)
                    with stats.lock:
                        stats.calls += 1
                except Exception as exc:  # counted and shown, the run goes on
                    stats.error(f"{type(exc).__name__}: {exc}"[:200])
            session.close()

        print(f"{args.clients} clients, {args.duration:.0f} s of calls, think {args.think} s, "
              f"database {url.split('://')[0]}, server pid {server.pid}", flush=True)
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
    finally:
        server.terminate()
        server.wait(10)
        server_log.close()
        api.stop()
        if schema:
            _pg_schema(url.split("?")[0], f"DROP SCHEMA {schema} CASCADE")

    every = [x for v in stats.samples.values() for x in v]
    print(f"calls completed: {stats.calls}, failed: {len(stats.errors)}; "
          f"webhooks: {len(every)} in {elapsed:.1f} s ({len(every) / elapsed:.1f}/s)")
    print(f"{'webhook':<14}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind in sorted(stats.samples):
        v = stats.samples[kind]
        print(f"{kind:<14}{len(v):>7}{statistics.median(v):>9.1f}{pct(v, 95):>9.1f}{pct(v, 99):>9.1f}{max(v):>9.1f}")
    p50, p99 = statistics.median(every), pct(every, 99)
    print(f"{'all':<14}{len(every):>7}{p50:>9.1f}{pct(every, 95):>9.1f}{p99:>9.1f}{max(every):>9.1f}")
    print(f"webhook latency p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 <= {TARGET_P99_MS:.0f} ms): "
          + ("met" if p99 <= TARGET_P99_MS else "NOT met"))
    import json

    inside = json.loads(samples_path.read_text()) if samples_path.exists() else []
    if inside:
        cpu, wall = [c for c, _, _ in inside], [w for _, w, _ in inside]
        print(f"inside the app: CPU per webhook p50 {statistics.median(cpu):.1f} ms, p99 {pct(cpu, 99):.1f} ms; "
              f"time in the app p50 {statistics.median(wall):.1f} ms, p99 {pct(wall, 99):.1f} ms "
              f"({sum(cpu) / 1000 / elapsed * 100:.0f} % of one core)")
        by_path: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for c, w, path in inside:
            by_path[path if not path.startswith("/twilio/voice/") or path.endswith("step") else "/twilio/voice/<line>"].append((c, w))
        for path, v in sorted(by_path.items()):
            print(f"  {path:<22} CPU p50 {statistics.median(c for c, _ in v):.1f} p99 {pct([c for c, _ in v], 99):.1f} ms,"
                  f" in app p50 {statistics.median(w for _, w in v):.1f} p99 {pct([w for _, w in v], 99):.1f} ms")
    log_text = (work / "server.log").read_text()
    queued = log_text.count("Task queue depth")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"waitress found all its threads busy {queued} times")
    for err in stats.errors[:5]:
        print("  error:", err)
    return 0 if not stats.errors else 1


if __name__ == "__main__":
    sys.exit(main())
