"""Time the managers' inbox pages with a million messages in PostgreSQL.

    .venv/bin/python benchmarks/bench_inbox.py                       # 1,000,000 messages, local PostgreSQL
    .venv/bin/python benchmarks/bench_inbox.py --messages 200000 --database-url postgresql://...

Makes a schema of its own (dropped at the end; `--keep NAME` keeps it and a later run with the
same name reuses the data), bulk-loads generated data with COPY:
messages (80 % referred, of those 30 % still waiting, the rest answered or closed), one
voice recording per message, referrals to 200 units (one large unit gets a tenth of all
referrals, the others share the rest), 1 % re-referred to a second unit, reminders on some
requests. Then it opens the real pages through the Flask app (signed in as managers and a
supervisor) and prints p50/p95/max per page.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.config import load_settings  # noqa: E402
from ivr.db import make_engine, make_sessionmaker  # noqa: E402
from ivr.migrate import upgrade  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KINDS_1888 = ("criticism", "suggestion", "complaint", "appreciation")


def _copy(dbapi_conn: object, table: str, columns: tuple[str, ...], rows: Iterator[tuple[object, ...]]) -> int:
    count = 0
    with dbapi_conn.cursor() as cur:  # type: ignore[attr-defined]
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def load(engine: object, messages: int, units: int, seed: int) -> dict[str, int]:
    """Bulk-load units, users, citizens, messages, recordings, referrals and reminders."""
    from ivr.services.users import hash_password

    rng = random.Random(seed)
    now = datetime.now(UTC)
    password = hash_password("bench password")
    raw = engine.raw_connection()  # type: ignore[attr-defined]
    try:
        conn = raw.driver_connection
        _copy(conn, "units", ("id", "code", "name", "kind", "active", "created_at"),
              ((u, f"unit-{u}", f"واحد {u}", "department", True, now) for u in range(1, units + 1)))
        _copy(conn, "users", ("id", "username", "full_name", "role", "unit_id", "password_hash", "active", "created_at"),
              [(u, f"manager{u}", f"مدیر {u}", "manager", u, password, True, now) for u in range(1, units + 1)]
              + [(units + 1, "supervisor", "ناظر", "supervisor", None, password, True, now)])
        citizens = max(1, messages // 10)
        _copy(conn, "citizens", ("id", "phone", "created_at"),
              ((c, f"09{c:09d}", now) for c in range(1, citizens + 1)))

        plan: list[tuple[int, str, int | None]] = []  # (message id, status, unit)
        for m in range(1, messages + 1):
            if rng.random() < 0.8:
                unit = 1 if rng.random() < 0.1 else rng.randint(2, units)
                r = rng.random()
                plan.append((m, "referred" if r < 0.3 else ("answered" if r < 0.8 else "closed"), unit))
            else:
                plan.append((m, "new", None))

        def message_rows() -> Iterator[tuple[object, ...]]:
            for m, status, unit in plan:
                line = "137" if m % 2 else "1888"
                kind = "request" if line == "137" else KINDS_1888[m % 4]
                created = now - timedelta(minutes=m % 500_000)
                yield (m, f"{m:012d}", line, kind, rng.randint(1, 22), unit, rng.randint(1, citizens),
                       "phone_voice", status, created, created)

        _copy(conn, "messages", ("id", "tracking_code", "line_code", "kind", "district", "unit_id", "citizen_id",
                                 "source", "status", "created_at", "updated_at"), message_rows())
        _copy(conn, "recordings", ("id", "path", "format", "seconds", "sha256", "size_bytes", "purpose",
                                   "message_id", "created_at"),
              ((m, f"2026/01/01/{m:032x}.wav", "wav", 20.0, "0" * 64, 320_000, "message", m, now)
               for m in range(1, messages + 1)))

        def referral_rows() -> Iterator[tuple[object, ...]]:
            rid = 0
            for m, status, unit in plan:
                if unit is None:
                    continue
                referred = now - timedelta(minutes=m % 500_000)
                if rng.random() < 0.01:  # re-referred: an older referral to another unit first
                    rid += 1
                    yield (rid, m, rng.randint(2, units), referred - timedelta(days=1), referred, referred)
                rid += 1
                closed = None if status == "referred" else referred + timedelta(days=2)
                yield (rid, m, unit, referred, referred + timedelta(days=rng.randint(-10, 14)), closed)

        counts = {"referrals": _copy(conn, "referrals", ("id", "message_id", "unit_id", "referred_at", "due_at",
                                                         "closed_at"), referral_rows())}
        reminders = [(i + 1, m, unit, "dissatisfied", now)
                     for i, (m, _status, unit) in enumerate(p for p in plan if p[1] == "referred" and p[0] % 20 == 1)]
        _copy(conn, "reminders", ("id", "message_id", "unit_id", "reason", "created_at"), iter(reminders))
        conn.commit()
        with conn.cursor() as cur:
            for table in ("units", "users", "citizens", "messages", "recordings", "referrals", "reminders"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            conn.commit()
            cur.execute("ANALYZE")
        conn.commit()
    finally:
        raw.close()
    counts.update(messages=messages, reminders=len(reminders),
                  big_unit=sum(1 for p in plan if p[2] == 1))
    return counts


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Milliseconds per call of `fn`, after two warm-up calls."""
    fn()
    fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(label: str, samples: list[float]) -> None:
    """One line: p50, p95, max."""
    ordered = sorted(samples)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    print(f"  {label:<52} p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   max {ordered[-1]:7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    """Load the data, open the pages, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("IVR_BENCH_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page (default 100)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", metavar="SCHEMA", help="load into SCHEMA and keep it (or reuse it if loaded)")
    args = parser.parse_args(argv)

    schema = args.keep or f"bench_inbox_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(args.database_url)
    with admin.begin() as conn:
        reuse = bool(conn.scalar(text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": schema}))
        if not reuse:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(args.database_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        upgrade(engine)
        print(f"database: {engine.url.render_as_string(hide_password=True)} schema {schema}")
        if not reuse:
            t = time.perf_counter()
            counts = load(engine, args.messages, args.units, args.seed)
            print(f"loaded {counts['messages']:,} messages, {counts['referrals']:,} referrals, "
                  f"{counts['reminders']:,} reminders in {time.perf_counter() - t:.0f} s; "
                  f"largest unit holds {counts['big_unit']:,} referred messages")
        run_pages(engine, args)
    finally:
        engine.dispose()
        if not args.keep:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
    return 0


def run_pages(engine: object, args: argparse.Namespace) -> None:
    """Sign in through the real form and time the inbox pages."""
    import re
    import tempfile

    from ivr.wiring import build_in_process_jobs
    from web import create_app

    rng = random.Random(args.seed + 1)
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as tmp:
        settings = load_settings({"IVR_DATA_DIR": tmp, "IVR_VAR_DIR": tmp, "IVR_SECRET_KEY": "bench"}, dotenv=False)
        factory = make_sessionmaker(engine)  # type: ignore[arg-type]
        jobs = build_in_process_jobs(settings, factory, workers=1)
        app = create_app(settings, session_factory=factory, jobs=jobs, config={"WTF_CSRF_ENABLED": False})

        def client_for(username: str) -> object:
            client = app.test_client()
            response = client.post("/login", data={"username": username, "password": "bench password"})
            assert response.status_code == 302, f"sign-in as {username} failed"
            return client

        def get(client: object, url: str) -> Callable[[], object]:
            def call() -> object:
                response = client.get(url)  # type: ignore[attr-defined]
                assert response.status_code == 200, (url, response.status_code)
                return response
            return call

        big, typical = client_for("manager1"), client_for(f"manager{rng.randint(2, args.units)}")
        supervisor = client_for("supervisor")
        page = big.get("/inbox/").get_data(as_text=True)  # type: ignore[attr-defined]
        first_message = re.search(r'href="/inbox/messages/(\d+)"', page).group(1)  # type: ignore[union-attr]
        n = args.requests
        print(f"pages ({n} timed requests each, Flask test client, whole request incl. sign-in check and rendering):")
        report("inbox, largest unit, page 1", timed(get(big, "/inbox/"), n))
        report("inbox, largest unit, open only, page 1", timed(get(big, "/inbox/?state=open"), n))
        report("inbox, largest unit, answered, page 100", timed(get(big, "/inbox/?state=answered&page=100"), n))
        report("inbox, largest unit, all, page 100", timed(get(big, "/inbox/?page=100"), n))
        report("inbox, typical unit, page 1", timed(get(typical, "/inbox/"), n))
        report("inbox, supervisor viewing the largest unit", timed(get(supervisor, "/inbox/?unit=1"), n))
        report("message page", timed(get(big, f"/inbox/messages/{first_message}"), n))
        jobs.close(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
