"""A PostgreSQL schema of one's own on a shared server: the test suite's, and the benchmarks'.

Tests and benchmarks never share tables with anyone else on the server: each run creates a
schema, points its connections at it (`search_path`), and drops it when done.
"""
from __future__ import annotations

from sqlalchemy import text

from ivr.db import make_engine


def schema_url(url: str, schema: str) -> str:
    """`url` with every connection's search_path set to `schema`."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def create_schema(url: str, schema: str) -> str:
    """(Re)create an empty `schema` on the server at `url`; the URL whose connections use it."""
    admin = make_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    finally:
        admin.dispose()
    return schema_url(url, schema)


def drop_schema(url: str, schema: str) -> None:
    """Drop `schema` and everything in it."""
    admin = make_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    finally:
        admin.dispose()
