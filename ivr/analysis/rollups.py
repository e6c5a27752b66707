"""Rollup tables kept right by database triggers, whatever code path changes the rows.

Triggers on calls, messages, referrals, replies, feedback and reminders add a signed
delta to one row of a rollup table (an upsert), so the dashboards read a few thousand
small rows instead of scanning millions. Each change subtracts the old row's
contribution and adds the new one's, so inserts, updates and deletes all balance.

Days and hours are Tehran's. PostgreSQL converts with `AT TIME ZONE 'Asia/Tehran'`
(history included); SQLite has no time-zone database, so its triggers add a fixed
+03:30 (Iran has kept standard time all year since 2022; older summer-time hours are
one hour off on SQLite only).

`rebuild_rollups` recomputes every rollup from the raw tables in one pass: the bulk
generator loads with triggers off and calls it once at the end.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

ROLLUP_TABLES = (
    "rollup_call_hours",
    "rollup_call_outcomes",
    "rollup_messages",
    "rollup_call_hours_monthly",
    "rollup_call_outcomes_monthly",
    "rollup_messages_monthly",
)
TIMEZONE = "Asia/Tehran"
SQLITE_OFFSET = "+210 minutes"

# Counters of rollup_messages in column order, after the key columns.
MESSAGE_KEYS = ("day", "line_code", "kind", "topic_id", "district", "unit_id")
MESSAGE_COUNTERS = (
    "registered",
    "referred",
    "not_referred_incomplete_message",
    "not_referred_incomplete_caller",
    "not_referred_duplicate",
    "not_referred_irrelevant",
    "answered",
    "feedback",
    "satisfied",
    "reminders",
)
NOT_REFERRED_COLUMNS = {
    "incomplete_message": "not_referred_incomplete_message",
    "incomplete_caller": "not_referred_incomplete_caller",
    "duplicate": "not_referred_duplicate",
    "irrelevant": "not_referred_irrelevant",
}
# ---- triggers ------------------------------------------------------------------------
# The trigger SQL is written once, per dialect, in ivr/migrations/sql/: the migration that installed
# it runs those files, schema.sql holds the PostgreSQL text verbatim, and this module reads them.

TRIGGERS_REVISION = "0006"  # the migration whose trigger files are in force
SQL_DIR = Path(__file__).resolve().parent.parent / "migrations" / "sql"


def _sqlite_day(column: str) -> str:
    return f"date({column}, '{SQLITE_OFFSET}')"


def _dialect_file(name: str, dialect: str) -> Path:
    return SQL_DIR / f"{TRIGGERS_REVISION}_{name}.{'postgresql' if dialect == 'postgresql' else 'sqlite'}.sql"


def split_sql(script: str) -> list[str]:
    """A SQL file's statements: each ends at a `;` line end outside `$$` bodies and `BEGIN … END;` blocks."""
    statements: list[str] = []
    current: list[str] = []
    in_dollar = in_block = False
    for line in script.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        if line.count("$$") % 2:
            in_dollar = not in_dollar
        if not in_dollar and stripped.upper().endswith("BEGIN") and not stripped.startswith("--"):
            in_block = True
        if stripped.endswith(";") and not in_dollar and (not in_block or stripped.upper() == "END;"):
            statements.append("\n".join(current).rstrip().removesuffix(";"))
            current, in_block = [], False
    return statements


def trigger_sql(dialect: str) -> str:
    """The rollup trigger DDL for `dialect` (`postgresql` or `sqlite`), as the migration ran it."""
    return _dialect_file("rollup_triggers", dialect).read_text(encoding="utf-8")


def install_triggers(conn: Connection) -> None:
    """Create the rollup triggers on this connection's database."""
    for statement in split_sql(trigger_sql(conn.dialect.name)):
        conn.exec_driver_sql(statement)


def drop_triggers(conn: Connection) -> None:
    """Remove the rollup triggers (and PostgreSQL functions)."""
    script = _dialect_file("rollup_triggers_drop", conn.dialect.name).read_text(encoding="utf-8")
    for statement in split_sql(script):
        conn.exec_driver_sql(statement)


# ---- rebuilding ------------------------------------------------------------------------


def _local(dialect: str, column: str) -> tuple[str, str]:
    """SQL for the Tehran day and hour of a UTC timestamp column."""
    if dialect == "postgresql":
        local = f"({column} AT TIME ZONE '{TIMEZONE}')"
        return f"{local}::date", f"extract(hour FROM {local})::smallint"
    return (
        _sqlite_day(column),
        f"CAST(strftime('%H', {column}, '{SQLITE_OFFSET}') AS INTEGER)",
    )


def rebuild_statements(dialect: str) -> list[str]:
    """DELETE and INSERT ... SELECT statements recomputing every rollup from the raw rows."""
    day, hour = _local(dialect, "c.started_at")
    first = "left(c.keys, 1)" if dialect == "postgresql" else "substr(c.keys, 1, 1)"
    mday, _ = _local(dialect, "m.created_at")
    happy = "x.satisfied" if dialect == "postgresql" else "x.satisfied = 1"
    month = "CAST(date_trunc('month', day) AS date)" if dialect == "postgresql" else "date(day, 'start of month')"
    weekday = (
        "CAST(extract(dow FROM day) AS smallint)"
        if dialect == "postgresql"
        else "CAST(strftime('%w', day) AS INTEGER)"
    )
    reasons = ", ".join(
        f"sum(CASE WHEN m.not_referred_reason = '{r}' THEN 1 ELSE 0 END)"
        for r in NOT_REFERRED_COLUMNS
    )
    return [
        *(f"DELETE FROM {t}" for t in ROLLUP_TABLES),
        "INSERT INTO rollup_call_hours (day, hour, line_code, calls, key4) "
        f"SELECT {day}, {hour}, c.line_code, count(*), "
        f"sum(CASE WHEN {first} = '4' THEN 1 ELSE 0 END) FROM calls c GROUP BY 1, 2, 3",
        "INSERT INTO rollup_call_outcomes (day, line_code, outcome, first_key, calls) "
        f"SELECT {day}, c.line_code, coalesce(c.outcome, 'in_progress'), {first}, count(*) "
        "FROM calls c GROUP BY 1, 2, 3, 4",
        f"INSERT INTO rollup_messages ({', '.join((*MESSAGE_KEYS, *MESSAGE_COUNTERS))}) "
        f"SELECT {mday}, m.line_code, m.kind, coalesce(m.topic_id, 0), coalesce(m.district, 0), "
        "coalesce(m.unit_id, 0), count(*), "
        "sum(CASE WHEN r.message_id IS NULL THEN 0 ELSE 1 END), "
        f"{reasons}, "
        "sum(CASE WHEN p.message_id IS NULL THEN 0 ELSE 1 END), "
        "coalesce(sum(f.feedback), 0), coalesce(sum(f.satisfied), 0), coalesce(sum(n.reminders), 0) "
        "FROM messages m "
        "LEFT JOIN (SELECT DISTINCT message_id FROM referrals) r ON r.message_id = m.id "
        "LEFT JOIN (SELECT DISTINCT message_id FROM replies) p ON p.message_id = m.id "
        "LEFT JOIN (SELECT x.message_id, count(*) AS feedback, "
        f"sum(CASE WHEN {happy} THEN 1 ELSE 0 END) AS satisfied "
        "FROM feedback x GROUP BY x.message_id) f ON f.message_id = m.id "
        "LEFT JOIN (SELECT message_id, count(*) AS reminders FROM reminders GROUP BY message_id) n "
        "ON n.message_id = m.id "
        "GROUP BY 1, 2, 3, 4, 5, 6",
        "INSERT INTO rollup_call_hours_monthly (month, weekday, hour, line_code, calls, key4) "
        f"SELECT {month}, {weekday}, hour, line_code, sum(calls), sum(key4) "
        "FROM rollup_call_hours GROUP BY 1, 2, 3, 4",
        "INSERT INTO rollup_call_outcomes_monthly (month, line_code, outcome, first_key, calls) "
        f"SELECT {month}, line_code, outcome, first_key, sum(calls) "
        "FROM rollup_call_outcomes GROUP BY 1, 2, 3, 4",
        f"INSERT INTO rollup_messages_monthly (month, {', '.join((*MESSAGE_KEYS[1:], *MESSAGE_COUNTERS))}) "
        f"SELECT {month}, {', '.join(MESSAGE_KEYS[1:])}, "
        + ", ".join(f"sum({c})" for c in MESSAGE_COUNTERS)
        + " FROM rollup_messages GROUP BY 1, 2, 3, 4, 5, 6",
    ]


def rebuild_rollups(session: Session) -> dict[str, int]:
    """Recompute every rollup table from the raw tables; returns rows per rollup. Does not commit."""
    conn = session.connection()
    for statement in rebuild_statements(conn.dialect.name):
        conn.exec_driver_sql(statement)
    return {
        table: int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in ROLLUP_TABLES
    }
