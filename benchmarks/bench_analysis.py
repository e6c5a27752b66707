"""Time every analysis-desk endpoint over 10 million calls and 1 million messages (PostgreSQL).

    createdb -h 127.0.0.1 -U postgres ivr_analysis_bench
    .venv/bin/python benchmarks/bench_analysis.py \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/ivr_analysis_bench

The database is migrated, then filled up to --calls and --messages with
`ivr.analysis.generator` (COPY, triggers off, rollups rebuilt once) unless it holds that
many already: the data is kept, so a rerun only measures. Each endpoint is requested
through the real Flask app (Flask's test client: routing, sign-in, the role check, the
rollup queries and JSON, without a socket) as a signed-in analyst, for the last 30 days,
the last 365 days and the last Jalali month, and as a district manager; `--requests`
timed requests follow 3 warm-up ones. It prints p50, p95 and the slowest request per
endpoint, and ends with status 1 if any p95 is above the target (50 ms). First it checks
the dashboard's totals for the last 30 and 365 days against hand-written SQL over the
raw calls and messages (a scan, once).
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from ivr.analysis import dashboard as d
from ivr.analysis.generator import generate
from ivr.config import load_settings
from ivr.db import make_engine, make_sessionmaker, transaction
from ivr.demo import load_demo
from ivr.migrate import upgrade
from ivr.models import Call, Message, Unit, User
from ivr.services.users import add_user, hash_password

TARGET_MS = 50.0
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/ivr_analysis_bench"


def fill(factory: Any, calls: int, messages: int) -> None:
    """Generate whatever is missing up to `calls` and `messages`, saying how long it took."""
    with transaction(factory, readonly=True) as session:
        have_calls = session.scalar(select(func.count()).select_from(Call)) or 0
        have_messages = session.scalar(select(func.count()).select_from(Message)) or 0
    print(f"database holds {have_calls:,} calls and {have_messages:,} messages")
    if have_calls >= calls and have_messages >= messages:
        print("generation skipped: the data is already there")
        return
    from tqdm import tqdm

    add_calls = max(0, calls - have_calls)
    add_messages = min(max(0, messages - have_messages), add_calls)
    with tqdm(total=add_calls, desc="generating calls", unit="call", unit_scale=True) as bar:
        with transaction(factory) as session:
            report = generate(session, calls=add_calls, messages=add_messages, progress=bar.update,
                              load_city=lambda s: load_demo(s, calls=0, messages=0))
    print(f"generated {report.counts} in {report.seconds:.0f} s (rollups: {report.rollups})")


def bench_users(factory: Any) -> dict[str, tuple[str, str]]:
    """An analyst and a district-4 manager with fresh passwords (created the first time)."""
    out = {}
    with transaction(factory) as session:
        unit_code = session.scalar(select(Unit.code).where(Unit.code == "district-04"))
        for username, role in (("bench-analyst", "analyst"), ("bench-manager", "manager")):
            password = secrets.token_urlsafe(12)
            if session.scalar(select(User.id).where(User.username == username)) is None:
                add_user(session, username, "سنجش", role, unit_code if role == "manager" else None, password)
            else:
                session.execute(
                    update(User).where(User.username == username).values(password_hash=hash_password(password))
                )
            out[role] = (username, password)
    return out


def signed_in(app: Any, username: str, password: str) -> Any:
    """A test client signed in through the real form."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "no CSRF token on /login"
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token.group(1)})
    assert response.status_code == 302, f"sign-in failed for {username}"
    return client


def measure(client: Any, url: str, requests: int) -> tuple[float, float, float]:
    """p50, p95 and max milliseconds of `requests` GETs of `url`, after 3 warm-up ones."""
    for _ in range(3):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, url
    times.sort()
    p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, times[-1]


RAW_CALLS = """
SELECT count(*), sum(CASE WHEN keys LIKE '4%%' THEN 1 ELSE 0 END) FROM calls
WHERE started_at >= CAST(%(start)s AS timestamp) AT TIME ZONE 'Asia/Tehran'
  AND started_at < (CAST(%(end)s AS timestamp) + interval '1 day') AT TIME ZONE 'Asia/Tehran'
"""
RAW_MESSAGES = """
SELECT count(*),
  sum(CASE WHEN EXISTS (SELECT 1 FROM referrals r WHERE r.message_id = m.id) THEN 1 ELSE 0 END),
  sum(CASE WHEN EXISTS (SELECT 1 FROM replies p WHERE p.message_id = m.id) THEN 1 ELSE 0 END)
FROM messages m
WHERE m.created_at >= CAST(%(start)s AS timestamp) AT TIME ZONE 'Asia/Tehran'
  AND m.created_at < (CAST(%(end)s AS timestamp) + interval '1 day') AT TIME ZONE 'Asia/Tehran'
"""


def check_against_raw(factory: Any, client: Any, query: str, period: d.Period) -> bool:
    """Print the dashboard's totals beside hand-written SQL over the raw calls and messages."""
    params = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    with transaction(factory, readonly=True) as session:
        conn = session.connection()
        calls, key4 = conn.exec_driver_sql(RAW_CALLS, params).one()
        registered, referred, answered = conn.exec_driver_sql(RAW_MESSAGES, params).one()
    summary = client.get(f"/analysis/api/calls-summary?{query}").get_json()["table"]["rows"][-1]
    funnel = client.get(f"/analysis/api/funnel?{query}").get_json()["table"]["rows"][0]
    raw = (calls, key4, registered, referred, answered)
    shown = (summary["calls"], summary["key4"], funnel["registered"], funnel["referred"], funnel["answered"])
    print(f"dashboard vs raw SQL, {d.jalali(period.start)}..{d.jalali(period.end)}: calls, key 4, "
          f"registered, referred, answered = {shown} vs {raw}: {'equal' if shown == raw else 'DIFFERENT'}")
    return shown == raw


def main(argv: list[str] | None = None) -> int:
    """Fill the database if needed, then time every endpoint and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="timed requests per endpoint")
    args = parser.parse_args(argv)

    settings = load_settings(
        {"IVR_DATABASE_URL": args.database_url, "IVR_DATA_DIR": tempfile.mkdtemp(prefix="bench-analysis-")},
        dotenv=False,
    )
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    fill(factory, args.calls, args.messages)
    users = bench_users(factory)
    with transaction(factory, readonly=True) as session:
        sizes = {
            name: session.scalar(select(func.count()).select_from(model))
            for name, model in (("calls", Call), ("messages", Message))
        }

    from web import create_app

    app = create_app(settings, session_factory=factory, config={"TESTING": True})
    analyst = signed_in(app, *users["analyst"])
    manager = signed_in(app, *users["manager"])
    today = datetime.now(settings.timezone).date()
    year_from = d.jalali(today - timedelta(days=364))
    y, m = (int(x) for x in d.jalali(today).split("/")[:2])
    y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    month = d.jalali_month(f"{y}/{m:02d}")
    month_query = f"from={d.jalali(month.start)}&to={d.jalali(month.end)}"
    scenarios = [
        ("analyst, last 30 days", analyst, "", d.table_names()),
        ("analyst, last 365 days", analyst, f"from={year_from}", d.table_names()),
        (f"analyst, Jalali month {y}/{m:02d}", analyst, month_query, d.table_names()),
        ("manager (district 4), last 30 days", manager, "",
         tuple(n for n in d.table_names() if n not in d.call_tables())),
    ]
    agree = check_against_raw(factory, analyst, "", d.Period(today - timedelta(days=d.DEFAULT_DAYS - 1), today))
    agree &= check_against_raw(factory, analyst, f"from={year_from}", d.Period(today - timedelta(days=364), today))
    print(f"\n{sizes['calls']:,} calls, {sizes['messages']:,} messages; {args.requests} timed requests per endpoint")
    print("load average at start (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
          + f" on {os.cpu_count()} cores")
    print(f"{'endpoint':<38} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    worst = 0.0
    over = []
    for title, client, query, names in scenarios:
        print(f"-- {title}")
        for name in names:
            url = f"/analysis/api/{name}" + (f"?{query}" if query else "")
            p50, p95, top = measure(client, url, args.requests)
            worst = max(worst, p95)
            if p95 > TARGET_MS:
                over.append(f"{title}: {name}")
            print(f"{'/analysis/api/' + name:<38} {p50:8.1f} {p95:8.1f} {top:8.1f}")
        page = "/analysis/" + (f"?{query}" if query else "")
        p50, p95, top = measure(client, page, max(5, args.requests // 4))
        print(f"{'(whole page ' + page.split('?')[0] + ')':<38} {p50:8.1f} {p95:8.1f} {top:8.1f}")
    print("load average at the end (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"\nworst endpoint p95: {worst:.1f} ms (target {TARGET_MS:.0f} ms); over target: {len(over)}")
    for item in over:
        print(f"  over: {item}")
    return 1 if over or not agree else 0


if __name__ == "__main__":
    sys.exit(main())
