"""Engines and sessions. Callers own their transactions: one per call step or request."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import UpdateBase

READONLY = "ivr_readonly"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling breaks SAVEPOINTs: let SQLAlchemy emit BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock up front: a deferred transaction that later writes
            # fails at once with "database is locked" instead of waiting for the busy timeout.
            # Read-only units of work (`transaction(..., readonly=True)`) need no lock in WAL
            # mode, so they do not queue behind writers.
            readonly = conn.get_execution_options().get(READONLY)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, readonly: bool = False) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    `readonly` promises the work only reads; on SQLite it then takes no write lock.
    """
    session = factory()
    if readonly:
        session.connection(execution_options={READONLY: True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def execute_dml(session: Session, statement: UpdateBase) -> CursorResult[Any]:
    """Run an INSERT, UPDATE or DELETE in `session`; its CursorResult, for `rowcount`.

    `Session.execute` is typed to return a plain Result, which has no `rowcount`; for DML
    it always returns a CursorResult, and this checks so rather than casting.
    """
    result = session.execute(statement)
    if not isinstance(result, CursorResult):  # pragma: no cover - SQLAlchemy's contract for DML
        raise TypeError(f"expected a CursorResult for {type(statement).__name__}, got {type(result).__name__}")
    return result
