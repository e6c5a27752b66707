"""schema.sql, the SQLAlchemy models and the Alembic migrations describe one schema.

Each is materialised in its own PostgreSQL schema and reflected; the reflections
(tables, columns, types, nullability, defaults, keys, indexes, unique and check
constraints) must be identical. PostgreSQL normalises the DDL itself, so the
comparison is like for like. On SQLite the migrations are compared with the models.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from ivr.db import make_engine
from ivr.migrate import upgrade
from ivr.models import Base
from tests.conftest import POSTGRES_URL

SCHEMA_SQL = Path(__file__).resolve().parent.parent / "schema.sql"
IGNORED_TABLES = {"alembic_version"}


def describe(conn: Connection, schema: str | None) -> dict[str, Any]:
    """A comparable description of every table in `schema`."""
    insp = inspect(conn)

    def norm(s: Any) -> Any:
        if s is None:
            return None
        s = str(s)
        if schema:
            s = s.replace(f"{schema}.", "")
        return re.sub(r"\s+", " ", s).strip()

    out: dict[str, Any] = {}
    for table in sorted(set(insp.get_table_names(schema=schema)) - IGNORED_TABLES):
        cols = {
            c["name"]: (norm(c["type"]), c["nullable"], norm(c.get("default")))
            for c in insp.get_columns(table, schema=schema)
        }
        pk = insp.get_pk_constraint(table, schema=schema)
        fks = sorted(
            (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
            for fk in insp.get_foreign_keys(table, schema=schema)
        )
        indexes = sorted(
            (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
            for ix in insp.get_indexes(table, schema=schema)
        )
        uniques = sorted(
            (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table, schema=schema)
        )
        checks = sorted(
            (ck["name"], norm(ck["sqltext"])) for ck in insp.get_check_constraints(table, schema=schema)
        )
        out[table] = {
            "columns": cols,
            "pk": (pk.get("name"), tuple(pk["constrained_columns"])),
            "fks": fks,
            "indexes": indexes,
            "uniques": uniques,
            "checks": checks,
        }
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences between two descriptions."""
    diffs = []
    for table in sorted(set(a) | set(b)):
        if table not in a or table not in b:
            diffs.append(f"table {table}: only in {'first' if table in a else 'second'}")
            continue
        for aspect in a[table]:
            if aspect == "columns":
                for col in sorted(set(a[table]["columns"]) | set(b[table]["columns"])):
                    ca, cb = a[table]["columns"].get(col), b[table]["columns"].get(col)
                    if ca != cb:
                        diffs.append(f"{table}.{col}: {ca} != {cb}")
            elif a[table][aspect] != b[table][aspect]:
                diffs.append(f"{table} {aspect}: {a[table][aspect]} != {b[table][aspect]}")
    return diffs


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    engine = make_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # pragma: no cover
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}", pytrace=False)
    yield engine
    engine.dispose()


def _fresh_schema(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {name}"))


def _load_schema_sql(engine: Engine, name: str) -> None:
    _fresh_schema(engine, name)
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL search_path TO {name}"))
        conn.exec_driver_sql(SCHEMA_SQL.read_text(encoding="utf-8"))


def _create_from(engine: Engine, metadata: MetaData, name: str) -> None:
    _fresh_schema(engine, name)
    with engine.begin() as conn:
        metadata.create_all(conn.execution_options(schema_translate_map={None: name}))


def _migrate(pg: Engine, name: str) -> None:
    _fresh_schema(pg, name)
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={name}"})
    upgrade(engine)
    engine.dispose()


def _describe(engine: Engine, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return describe(conn, name)


@pytest.mark.postgres
def test_schema_sql_matches_models_on_postgres(pg: Engine) -> None:
    _load_schema_sql(pg, "ddl_sql")
    _create_from(pg, Base.metadata, "ddl_models")
    sql, models = _describe(pg, "ddl_sql"), _describe(pg, "ddl_models")
    assert len(sql) == len(Base.metadata.tables)
    assert differences(sql, models) == []


@pytest.mark.postgres
def test_schema_migrations_match_models_on_postgres(pg: Engine) -> None:
    _migrate(pg, "ddl_migrated")
    _create_from(pg, Base.metadata, "ddl_models2")
    assert differences(_describe(pg, "ddl_migrated"), _describe(pg, "ddl_models2")) == []


@pytest.mark.postgres
def test_schema_model_column_missing_from_schema_sql_is_caught(pg: Engine) -> None:
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["calls"].append_column(Column("ring_seconds", Integer, nullable=True))
    _load_schema_sql(pg, "ddl_sql2")
    _create_from(pg, changed, "ddl_changed")
    diffs = differences(_describe(pg, "ddl_sql2"), _describe(pg, "ddl_changed"))
    assert diffs == ["calls.ring_seconds: None != ('INTEGER', True, None)"]


@pytest.mark.postgres
def test_schema_sql_extra_column_is_caught(pg: Engine, tmp_path: Path) -> None:
    _load_schema_sql(pg, "ddl_sql3")
    with pg.begin() as conn:
        conn.execute(text("ALTER TABLE ddl_sql3.messages ADD COLUMN priority SMALLINT NOT NULL DEFAULT 0"))
    _create_from(pg, Base.metadata, "ddl_models3")
    diffs = differences(_describe(pg, "ddl_sql3"), _describe(pg, "ddl_models3"))
    assert diffs == ["messages.priority: ('SMALLINT', False, '0') != None"]


def test_schema_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    migrated = make_engine(f"sqlite:///{tmp_path / 'migrated.sqlite3'}")
    upgrade(migrated)
    created = make_engine(f"sqlite:///{tmp_path / 'created.sqlite3'}")
    Base.metadata.create_all(created)
    a, b = _describe(migrated, None), _describe(created, None)
    migrated.dispose()
    created.dispose()
    assert len(a) == len(Base.metadata.tables)
    assert differences(a, b) == []


@pytest.mark.postgres
def test_schema_sql_seeds_both_lines(pg: Engine) -> None:
    _load_schema_sql(pg, "ddl_sql4")
    with pg.connect() as conn:
        codes = conn.execute(text("SELECT code FROM ddl_sql4.lines ORDER BY code")).scalars().all()
    assert codes == ["137", "1888"]
