"""Engines and sessions. Callers own their transactions: one per call step or request."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import UpdateBase

READONLY = "ivr_readonly"
# A pooled connection unused for longer than this is checked (one round trip) before use:
# it may have been cut by a database restart or a firewall meanwhile.
PING_AFTER_IDLE_SECONDS = 2.0
_LAST_USED = "ivr_last_used"  # pool record info: when the connection was last checked in


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
    # No `pool_pre_ping`: it costs a round trip on every checkout, and the phone path checks
    # out a connection per step. A connection idle for a while is pinged instead (below); a
    # busy one that breaks raises a disconnect error, which recycles the whole pool.
    ping_after = kwargs.pop("ping_after_idle", PING_AFTER_IDLE_SECONDS)
    kwargs.setdefault("pool_pre_ping", False)
    # One process runs hundreds of call threads, each holding a connection for a statement
    # or two. At most 30 per process as before, but 20 are kept: with 10 kept, peaks opened
    # and closed ~0.2 connections per call (a new backend each time, CPU on shared cores).
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    engine = create_engine(url, **kwargs)
    if not kwargs["pool_pre_ping"] and ping_after is not None:
        _ping_idle_connections(engine, ping_after)
    return engine


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Ping a connection at checkout only when it has been idle: the pessimistic check, made cheap."""

    @event.listens_for(engine, "checkin")
    def _stamp(dbapi_conn: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is None or time.monotonic() - last < idle_seconds:
            return  # new, or used a moment ago
        try:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SELECT 1")
            finally:
                cur.close()
            dbapi_conn.rollback()  # the ping opened a transaction: end it before the session begins
        except Exception as exc:
            # The pool drops this connection and checks out another (SQLAlchemy retries).
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(
    factory: sessionmaker[Session], *, readonly: bool = False, single: bool = False
) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    `readonly` promises the work only reads; on SQLite it then takes no write lock.
    `single` promises the work is one statement (atomic by itself): on PostgreSQL it then
    runs in autocommit, without the BEGIN and COMMIT round trips; elsewhere nothing changes.
    """
    session = factory()
    options: dict[str, Any] = {}
    if readonly:
        options[READONLY] = True
    bind = session.get_bind()
    # Only on a session of its own: one joined to an outer transaction (tests) keeps it.
    if single and isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    if options:
        session.connection(execution_options=options)
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
