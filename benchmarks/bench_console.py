"""Console pages with 1,000,000 messages in PostgreSQL: p95 per page, printed (target: 100 ms or less).

    .venv/bin/python benchmarks/bench_console.py                      # create/fill ivr_console_bench, measure
    .venv/bin/python benchmarks/bench_console.py --messages 200000    # a smaller run
    .venv/bin/python benchmarks/bench_console.py --reuse              # keep the data already loaded

Creates the database `ivr_console_bench` on the local server (dropped and re-made unless
--reuse finds it filled), migrates it, and bulk-inserts generated data with COPY: units and
managers, topics, 200,000 citizens, a call for every fifth message, the messages (3 % new,
waiting for screening; the rest referred, answered, closed or not referred), a recording per
voice message and a referral per referred message. Then it drives the real Flask app (test
client, real PostgreSQL, CSRF on) as a signed-in operator, supervisor or manager and times each
page end to end (routing, queries, template rendering): the screening queue, one message's
screening page (with duplicate suggestions), the screening API queue, the single window of a
busy number, the operators' hand-off list, and the managers' inbox when that page exists.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.config import load_settings  # noqa: E402
from ivr.db import make_engine  # noqa: E402
from ivr.migrate import upgrade  # noqa: E402
from ivr.services.users import hash_password  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "ivr_console_bench"
PASSWORD = "bench password 1"
TARGET_MS = 100.0
N_UNITS = 60
N_CITIZENS = 200_000
BUSY_PHONE = "09120000001"


def _copy(cur: psycopg.Cursor[Any], table: str, columns: tuple[str, ...], rows: Any) -> int:
    count = 0
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def fill(n_messages: int, seed: int) -> None:
    """Create the database and bulk-insert the generated data."""
    rnd = random.Random(seed)
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        admin.execute(f"CREATE DATABASE {DB_NAME}")
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}")
    upgrade(engine)
    engine.dispose()
    now = datetime.now(UTC)
    start = now - timedelta(days=730)
    span = (now - start).total_seconds()
    pw = hash_password(PASSWORD)
    t0 = time.perf_counter()
    with psycopg.connect(f"{SERVER}/{DB_NAME}") as conn, conn.cursor() as cur:
        _copy(cur, "units", ("id", "code", "name", "kind", "district", "active", "created_at"), (
            (i, f"unit-{i}", f"واحد {i}", "district_office" if i <= 22 else "organisation",
             i if i <= 22 else None, True, start) for i in range(1, N_UNITS + 1)))
        users = [(1, "bench-op", "کارشناس", "operator", None), (2, "bench-sup", "ناظر", "supervisor", None)]
        users += [(2 + i, f"bench-mgr-{i}", f"مدیر {i}", "manager", i) for i in range(1, N_UNITS + 1)]
        _copy(cur, "users", ("id", "username", "full_name", "role", "unit_id", "password_hash", "active", "created_at"),
              ((*u, pw, True, start) for u in users))
        topics = [(i, f"t137-{i}", "137", f"موضوع ۱۳۷ شماره {i}", rnd.randint(2, 10), rnd.randint(1, N_UNITS))
                  for i in range(1, 31)]
        topics += [(i, f"t1888-{i}", "1888", f"موضوع ۱۸۸۸ شماره {i}", rnd.randint(2, 10), rnd.randint(1, N_UNITS))
                   for i in range(31, 51)]
        _copy(cur, "topics", ("id", "code", "line_code", "name", "due_working_days", "unit_id", "active"),
              ((*t, True) for t in topics))
        _copy(cur, "citizens", ("id", "phone", "created_at"),
              ((i, f"0912{i:07d}", start) for i in range(1, N_CITIZENS + 1)))
        outcomes = ("message_registered",) * 6 + ("follow_up", "case_lookup", "operator", "dropped")

        def citizen() -> int:
            # A few callers call very often (the busy number is citizen 1).
            return 1 if rnd.random() < 0.0005 else rnd.randint(1, N_CITIZENS)

        n_calls = n_messages // 5
        call_rows = []
        for i in range(1, n_calls + 1):
            c = citizen()
            at = start + timedelta(seconds=span * i / n_calls)
            call_rows.append((i, rnd.choice(("137", "1888")), f"bench-{i}", "agi", f"0912{c:07d}", c, at, at,
                              at + timedelta(seconds=90), rnd.choice(("1", "13", "24", "0", "31")),
                              rnd.choice(outcomes)))
        _copy(cur, "calls", ("id", "line_code", "channel_id", "driver", "caller_number", "citizen_id", "started_at",
                             "answered_at", "ended_at", "keys", "outcome"), call_rows)
        del call_rows
        kinds_1888 = ("criticism", "suggestion", "complaint", "appreciation")
        messages, recordings, referrals = [], [], []
        new_from = int(n_messages * 0.97)
        for i in range(1, n_messages + 1):
            at = start + timedelta(seconds=span * i / n_messages)
            line = "137" if rnd.random() < 0.6 else "1888"
            kind = "request" if line == "137" else rnd.choice(kinds_1888)
            voice = rnd.random() < 0.85
            if i > new_from:
                status = "new"
            else:
                status = rnd.choices(("referred", "answered", "closed", "not_referred"), (15, 55, 20, 10))[0]
            topic = rnd.randint(1, 30) if line == "137" else rnd.randint(31, 50)
            screened = status != "new"
            district = rnd.randint(1, 22) if screened else None
            unit = topics[topic - 1][5] if screened else None
            reason = "irrelevant" if status == "not_referred" else None
            messages.append((i, f"{i:09d}", line, kind, topic if screened else None, district, unit, citizen(),
                             (i // 5) if i % 5 == 0 and i // 5 <= n_calls else None,
                             "phone_voice" if voice else "operator", status, reason, None if voice else "متن پیام",
                             "خلاصه" if screened else None, at, at))
            if voice:
                recordings.append((i, f"messages/{i}.wav", "wav", round(rnd.uniform(5, 120), 1), "0" * 64, 80000,
                                   "message", i, at))
            if status in ("referred", "answered", "closed"):
                due = at + timedelta(days=rnd.randint(3, 14))
                closed = at + timedelta(days=rnd.randint(1, 20)) if status != "referred" else None
                referrals.append((i, unit, 2 + unit, 1, at, due, closed))
        _copy(cur, "messages", ("id", "tracking_code", "line_code", "kind", "topic_id", "district", "unit_id",
                                "citizen_id", "call_id", "source", "status", "not_referred_reason", "body", "summary",
                                "created_at", "updated_at"), messages)
        _copy(cur, "recordings", ("id", "path", "format", "seconds", "sha256", "size_bytes", "purpose", "message_id",
                                  "created_at"), recordings)
        _copy(cur, "referrals", ("message_id", "unit_id", "manager_id", "referred_by_id", "referred_at", "due_at",
                                 "closed_at"), referrals)
        for table in ("units", "users", "topics", "citizens", "calls", "messages", "recordings"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        print(f"loaded {len(messages):,} messages, {len(recordings):,} recordings, {len(referrals):,} referrals, "
              f"{n_calls:,} calls, {N_CITIZENS:,} citizens in {time.perf_counter() - t0:.1f} s")
    with psycopg.connect(f"{SERVER}/{DB_NAME}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def loaded_messages() -> int:
    """How many messages the bench database holds (0 if it does not exist)."""
    try:
        with psycopg.connect(f"{SERVER}/{DB_NAME}") as conn:
            return conn.execute("SELECT count(*) FROM messages").fetchone()[0]  # type: ignore[index]
    except psycopg.Error:
        return 0


def _login(client: Any, username: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, f"cannot sign in as {username}"


def _measure(name: str, fn: Callable[[int], Any], n: int) -> tuple[str, float, float, float]:
    for i in range(10):  # warm-up: connections, template compilation, caches
        fn(i)
    samples = []
    for i in range(n):
        t = time.perf_counter()
        resp = fn(i)
        samples.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, f"{name}: HTTP {resp.status_code}"
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    return name, statistics.median(samples), p95, samples[-1]


def run(n: int) -> int:
    """Time each page n times; print p50/p95/max; exit status 1 if any p95 exceeds the target."""
    from web import create_app

    tmp = tempfile.mkdtemp(prefix="bench-console-")
    settings = load_settings({
        "IVR_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}", "IVR_VAR_DIR": tmp,
    }, dotenv=False)
    app = create_app(settings)
    app.extensions["ivr_limiter"].enabled = False
    operator, supervisor, manager = app.test_client(), app.test_client(), app.test_client()
    _login(operator, "bench-op")
    _login(supervisor, "bench-sup")
    _login(manager, "bench-mgr-5")
    from ivr.db import make_sessionmaker, transaction
    from ivr.services.api_tokens import create_token

    with transaction(make_sessionmaker(make_engine(settings.database_url))) as session:
        token = create_token(session, 1, "bench")[1]
        new_ids = [r[0] for r in session.execute(text(
            "SELECT id FROM messages WHERE status = 'new' ORDER BY created_at LIMIT 500"))]
        total = session.execute(text("SELECT count(*) FROM messages")).scalar_one()
    bearer = {"Authorization": f"Bearer {token}"}
    rnd = random.Random(1)
    pages: list[tuple[str, Callable[[int], Any]]] = [
        ("screening queue page (GET /screening/)", lambda i: operator.get("/screening/")),
        ("screening queue, page 20", lambda i: operator.get("/screening/?page=20")),
        ("screening message page (suggestions)", lambda i: supervisor.get(f"/screening/{rnd.choice(new_ids)}")),
        ("screening API queue (GET /api/v1/screening/queue)", lambda i: operator.get("/api/v1/screening/queue",
                                                                                    headers=bearer)),
        ("single window, busiest number", lambda i: operator.get(f"/window/?phone={BUSY_PHONE}")),
        ("single window, random number", lambda i: operator.get(f"/window/?phone=0912{rnd.randint(1, N_CITIZENS):07d}")),
        ("operators' hand-off list", lambda i: operator.get("/window/handoffs")),
    ]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("inbox.") and not rule.arguments and "GET" in (rule.methods or ()):
            pages.append((f"managers' inbox ({rule.rule})", lambda i, url=rule.rule: manager.get(url)))
    print(f"{total:,} messages in PostgreSQL ({DB_NAME}); {n} requests per page after 10 warm-up requests")
    print(f"{'page':58} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    worst = 0.0
    for name, fn in pages:
        label, p50, p95, top = _measure(name, fn, n)
        worst = max(worst, p95)
        print(f"{label:58} {p50:8.1f} {p95:8.1f} {top:8.1f}")
    verdict = "OK" if worst <= TARGET_MS else "OVER TARGET"
    print(f"worst p95: {worst:.1f} ms (target <= {TARGET_MS:.0f} ms): {verdict}")
    return 0 if worst <= TARGET_MS else 1


def main() -> int:
    """Parse options, fill the database if needed, measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--reuse", action="store_true", help="keep the data if the database already has it")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if not (args.reuse and loaded_messages() == args.messages):
        fill(args.messages, args.seed)
    return run(args.requests)


if __name__ == "__main__":
    sys.exit(main())
