"""SQLite transactions: writers lock up front, read-only work never waits for them."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ivr.db import make_engine, make_sessionmaker, transaction
from ivr.migrate import upgrade


def test_sqlite_readonly_transaction_reads_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}", connect_args={"timeout": 0.5, "check_same_thread": False})
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as writer:
        writer.execute(text("UPDATE lines SET name = name WHERE code = '137'"))
        with transaction(factory, readonly=True) as reader:
            assert reader.execute(text("SELECT count(*) FROM lines")).scalar_one() == 2
        with pytest.raises(OperationalError, match="database is locked"):
            with transaction(factory) as second_writer:
                second_writer.execute(text("SELECT 1"))
    engine.dispose()


def test_sqlite_savepoints_roll_back_inside_outer_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    with engine.connect() as conn:
        outer = conn.begin()
        nested = conn.begin_nested()
        conn.execute(text("INSERT INTO holidays (day, name) VALUES ('2026-03-21', 'نوروز')"))
        nested.rollback()
        assert conn.execute(text("SELECT count(*) FROM holidays")).scalar_one() == 0
        outer.rollback()
    engine.dispose()
