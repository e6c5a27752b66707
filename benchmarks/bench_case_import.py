"""Time the urban-planning feed import: generate N case rows, import them, import them again.

    .venv/bin/python benchmarks/bench_case_import.py --rows 1000000

The first import inserts every case, the second updates every case (a daily re-feed).
Without IVR_DATABASE_URL a temporary SQLite file is used. For PostgreSQL point
IVR_DATABASE_URL at a database of its own (e.g. postgresql://postgres@127.0.0.1/ivr_bench
after `createdb ivr_bench`): it is migrated first, and the cases are rolled back at the
end unless --keep is given, so a benchmark leaves no cases behind.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from ivr.config import load_settings
from ivr.db import make_engine, make_sessionmaker
from ivr.migrate import upgrade
from ivr.models import CASE_KINDS, CASE_STAGES, VERDICTS
from ivr.services.cases import CASES_CSV_COLUMNS, import_cases


def write_feed(path: Path, rows: int, seed: int, stage_shift: int = 0) -> None:
    """Write `rows` distinct plausible cases to `path`; `stage_shift` moves each case on."""
    rng = random.Random(seed)
    numbers = rng.sample(range(10**7, 10**10), rows)
    base = date(2024, 1, 1)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(CASES_CSV_COLUMNS)
        for i, number in enumerate(numbers):
            kind = CASE_KINDS[i % 5 < 2]  # 60 % urban_planning, 40 % article100
            stages = CASE_STAGES[kind]
            stage = stages[(rng.randrange(len(stages)) + stage_shift) % len(stages)]
            final = kind == "article100" and stage in ("final_verdict", "executed")
            out.writerow(
                (
                    number,
                    kind,
                    rng.randint(1, 22),
                    stage,
                    (base + timedelta(days=rng.randrange(900))).isoformat(),
                    rng.choice(VERDICTS) if final else "",
                    rng.randrange(10**6, 10**10) if final else "",
                    (base + timedelta(days=rng.randrange(600))).isoformat(),
                )
            )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print rows per second for the insert and the update pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=200_000, help="rows to generate (default 200000)"
    )
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument(
        "--keep", action="store_true", help="commit the cases instead of rolling back"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-cases-") as tmp:
        tmpdir = Path(tmp)
        if os.environ.get("IVR_DATABASE_URL"):
            url = load_settings(dotenv=False).database_url
        else:
            url = f"sqlite:///{tmpdir / 'bench.sqlite3'}"
        engine = make_engine(url)
        upgrade(engine)
        print(f"database: {engine.url.render_as_string(hide_password=True)}")

        feeds = [tmpdir / "feed-1.csv", tmpdir / "feed-2.csv"]
        t0 = time.perf_counter()
        write_feed(feeds[0], args.rows, args.seed)
        write_feed(feeds[1], args.rows, args.seed, stage_shift=1)
        print(f"generated 2 × {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")

        session = make_sessionmaker(engine)()
        try:
            for label, feed in zip(("insert", "update"), feeds, strict=True):
                t0 = time.perf_counter()
                with feed.open(encoding="utf-8", newline="") as f:
                    report = import_cases(session, f, batch_size=args.batch_size)
                session.flush()
                elapsed = time.perf_counter() - t0
                if not report.ok:
                    print(f"unexpected errors: {report.errors[:5]}", file=sys.stderr)
                    return 1
                print(
                    f"{label}: {report.imported:,} rows in {elapsed:.1f} s"
                    f" = {report.imported / elapsed:,.0f} rows/s"
                )
            if args.keep:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
