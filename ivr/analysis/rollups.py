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
# Tables whose rows feed rollup_messages through their message, and what they feed.
CHILD_TABLES = ("referrals", "replies", "feedback", "reminders")

# ---- PostgreSQL ------------------------------------------------------------------------
# The same text is the analysis section of schema.sql (tests/test_analysis_rollups.py checks).

POSTGRES_DDL = """\
CREATE FUNCTION rollup_call_apply(c calls, p_sign integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_local timestamp := c.started_at AT TIME ZONE 'Asia/Tehran';
    v_key4 integer := CASE WHEN left(c.keys, 1) = '4' THEN p_sign ELSE 0 END;
BEGIN
    INSERT INTO rollup_call_hours AS r (day, hour, line_code, calls, key4)
    VALUES (v_local::date, extract(hour FROM v_local)::smallint, c.line_code, p_sign, v_key4)
    ON CONFLICT (day, hour, line_code)
    DO UPDATE SET calls = r.calls + EXCLUDED.calls, key4 = r.key4 + EXCLUDED.key4;
    INSERT INTO rollup_call_outcomes AS r (day, line_code, outcome, first_key, calls)
    VALUES (v_local::date, c.line_code, coalesce(c.outcome, 'in_progress'), left(c.keys, 1), p_sign)
    ON CONFLICT (day, line_code, outcome, first_key)
    DO UPDATE SET calls = r.calls + EXCLUDED.calls;
    INSERT INTO rollup_call_hours_monthly AS r (month, weekday, hour, line_code, calls, key4)
    VALUES (
        date_trunc('month', v_local)::date, extract(dow FROM v_local)::smallint,
        extract(hour FROM v_local)::smallint, c.line_code, p_sign, v_key4
    )
    ON CONFLICT (month, weekday, hour, line_code)
    DO UPDATE SET calls = r.calls + EXCLUDED.calls, key4 = r.key4 + EXCLUDED.key4;
    INSERT INTO rollup_call_outcomes_monthly AS r (month, line_code, outcome, first_key, calls)
    VALUES (
        date_trunc('month', v_local)::date, c.line_code, coalesce(c.outcome, 'in_progress'),
        left(c.keys, 1), p_sign
    )
    ON CONFLICT (month, line_code, outcome, first_key)
    DO UPDATE SET calls = r.calls + EXCLUDED.calls;
END $$;

CREATE FUNCTION rollup_calls_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM rollup_call_apply(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM rollup_call_apply(NEW, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rollup_calls_insert_delete AFTER INSERT OR DELETE ON calls
FOR EACH ROW EXECUTE FUNCTION rollup_calls_changed();

CREATE TRIGGER rollup_calls_update AFTER UPDATE OF started_at, line_code, outcome, keys ON calls
FOR EACH ROW WHEN (
    OLD.started_at IS DISTINCT FROM NEW.started_at OR OLD.line_code IS DISTINCT FROM NEW.line_code
    OR OLD.outcome IS DISTINCT FROM NEW.outcome OR OLD.keys IS DISTINCT FROM NEW.keys
) EXECUTE FUNCTION rollup_calls_changed();

-- Adds to the cell of message m: `own` times the message itself (registered, not referred
-- by reason), plus the given counts of what its referrals, replies, feedback and reminders say.
CREATE FUNCTION rollup_message_apply(
    m messages, p_own integer, p_referred integer, p_answered integer,
    p_feedback integer, p_satisfied integer, p_reminders integer
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_messages AS r (
        day, line_code, kind, topic_id, district, unit_id, registered, referred,
        not_referred_incomplete_message, not_referred_incomplete_caller,
        not_referred_duplicate, not_referred_irrelevant,
        answered, feedback, satisfied, reminders
    ) VALUES (
        (m.created_at AT TIME ZONE 'Asia/Tehran')::date, m.line_code, m.kind,
        coalesce(m.topic_id, 0), coalesce(m.district, 0), coalesce(m.unit_id, 0), p_own, p_referred,
        CASE WHEN m.not_referred_reason = 'incomplete_message' THEN p_own ELSE 0 END,
        CASE WHEN m.not_referred_reason = 'incomplete_caller' THEN p_own ELSE 0 END,
        CASE WHEN m.not_referred_reason = 'duplicate' THEN p_own ELSE 0 END,
        CASE WHEN m.not_referred_reason = 'irrelevant' THEN p_own ELSE 0 END,
        p_answered, p_feedback, p_satisfied, p_reminders
    )
    ON CONFLICT (day, line_code, kind, topic_id, district, unit_id) DO UPDATE SET
        registered = r.registered + EXCLUDED.registered,
        referred = r.referred + EXCLUDED.referred,
        not_referred_incomplete_message
            = r.not_referred_incomplete_message + EXCLUDED.not_referred_incomplete_message,
        not_referred_incomplete_caller
            = r.not_referred_incomplete_caller + EXCLUDED.not_referred_incomplete_caller,
        not_referred_duplicate = r.not_referred_duplicate + EXCLUDED.not_referred_duplicate,
        not_referred_irrelevant = r.not_referred_irrelevant + EXCLUDED.not_referred_irrelevant,
        answered = r.answered + EXCLUDED.answered,
        feedback = r.feedback + EXCLUDED.feedback,
        satisfied = r.satisfied + EXCLUDED.satisfied,
        reminders = r.reminders + EXCLUDED.reminders;
    INSERT INTO rollup_messages_monthly AS r (
        month, line_code, kind, topic_id, district, unit_id, registered, referred,
        not_referred_incomplete_message, not_referred_incomplete_caller,
        not_referred_duplicate, not_referred_irrelevant,
        answered, feedback, satisfied, reminders
    ) VALUES (
        date_trunc('month', m.created_at AT TIME ZONE 'Asia/Tehran')::date, m.line_code, m.kind,
        coalesce(m.topic_id, 0), coalesce(m.district, 0), coalesce(m.unit_id, 0), p_own, p_referred,
        CASE WHEN m.not_referred_reason = 'incomplete_message' THEN p_own ELSE 0 END,
        CASE WHEN m.not_referred_reason = 'incomplete_caller' THEN p_own ELSE 0 END,
        CASE WHEN m.not_referred_reason = 'duplicate' THEN p_own ELSE 0 END,
        CASE WHEN m.not_referred_reason = 'irrelevant' THEN p_own ELSE 0 END,
        p_answered, p_feedback, p_satisfied, p_reminders
    )
    ON CONFLICT (month, line_code, kind, topic_id, district, unit_id) DO UPDATE SET
        registered = r.registered + EXCLUDED.registered,
        referred = r.referred + EXCLUDED.referred,
        not_referred_incomplete_message
            = r.not_referred_incomplete_message + EXCLUDED.not_referred_incomplete_message,
        not_referred_incomplete_caller
            = r.not_referred_incomplete_caller + EXCLUDED.not_referred_incomplete_caller,
        not_referred_duplicate = r.not_referred_duplicate + EXCLUDED.not_referred_duplicate,
        not_referred_irrelevant = r.not_referred_irrelevant + EXCLUDED.not_referred_irrelevant,
        answered = r.answered + EXCLUDED.answered,
        feedback = r.feedback + EXCLUDED.feedback,
        satisfied = r.satisfied + EXCLUDED.satisfied,
        reminders = r.reminders + EXCLUDED.reminders;
END $$;

-- Moves a whole message (with what its child rows say) out of its old cell and into its new one.
CREATE FUNCTION rollup_messages_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_id integer := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    v_referred integer := CASE WHEN EXISTS (SELECT 1 FROM referrals x WHERE x.message_id = v_id)
        THEN 1 ELSE 0 END;
    v_answered integer := CASE WHEN EXISTS (SELECT 1 FROM replies x WHERE x.message_id = v_id)
        THEN 1 ELSE 0 END;
    v_feedback integer := (SELECT count(*) FROM feedback x WHERE x.message_id = v_id);
    v_satisfied integer := (SELECT count(*) FROM feedback x WHERE x.message_id = v_id AND x.satisfied);
    v_reminders integer := (SELECT count(*) FROM reminders x WHERE x.message_id = v_id);
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM rollup_message_apply(
            OLD, -1, -v_referred, -v_answered, -v_feedback, -v_satisfied, -v_reminders
        );
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM rollup_message_apply(
            NEW, 1, v_referred, v_answered, v_feedback, v_satisfied, v_reminders
        );
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rollup_messages_insert_delete AFTER INSERT OR DELETE ON messages
FOR EACH ROW EXECUTE FUNCTION rollup_messages_changed();

CREATE TRIGGER rollup_messages_update
AFTER UPDATE OF created_at, line_code, kind, topic_id, district, unit_id, not_referred_reason
ON messages FOR EACH ROW WHEN (
    OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.line_code IS DISTINCT FROM NEW.line_code
    OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.topic_id IS DISTINCT FROM NEW.topic_id
    OR OLD.district IS DISTINCT FROM NEW.district OR OLD.unit_id IS DISTINCT FROM NEW.unit_id
    OR OLD.not_referred_reason IS DISTINCT FROM NEW.not_referred_reason
) EXECUTE FUNCTION rollup_messages_changed();

-- A referral, reply, feedback or reminder row joins (sign 1) or leaves (sign -1) message_id.
-- Referrals and replies count once per message: their triggers run BEFORE each row, when the
-- rows an earlier row of the same statement changed are visible but this one's change is not,
-- so the first row joining a message sees 0 others and the last one leaving sees itself alone,
-- however many rows one statement touches. The message row is locked first, so two
-- transactions adding a first referral to one message at once are counted once.
CREATE FUNCTION rollup_message_child(
    p_table text, p_message_id integer, p_sign integer, p_satisfied boolean
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m messages;
    v_rows integer;
    v_edge integer := CASE WHEN p_sign = 1 THEN 0 ELSE 1 END;
BEGIN
    SELECT * INTO m FROM messages x WHERE x.id = p_message_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_table = 'referrals' THEN
        v_rows := (SELECT count(*) FROM referrals x WHERE x.message_id = m.id);
        IF v_rows = v_edge THEN
            PERFORM rollup_message_apply(m, 0, p_sign, 0, 0, 0, 0);
        END IF;
    ELSIF p_table = 'replies' THEN
        v_rows := (SELECT count(*) FROM replies x WHERE x.message_id = m.id);
        IF v_rows = v_edge THEN
            PERFORM rollup_message_apply(m, 0, 0, p_sign, 0, 0, 0);
        END IF;
    ELSIF p_table = 'feedback' THEN
        PERFORM rollup_message_apply(
            m, 0, 0, 0, p_sign, CASE WHEN p_satisfied THEN p_sign ELSE 0 END, 0
        );
    ELSE
        PERFORM rollup_message_apply(m, 0, 0, 0, 0, 0, p_sign);
    END IF;
END $$;

CREATE FUNCTION rollup_message_child_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM rollup_message_child(
            TG_TABLE_NAME, OLD.message_id, -1,
            CASE WHEN TG_TABLE_NAME = 'feedback' THEN (to_jsonb(OLD) ->> 'satisfied')::boolean END
        );
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM rollup_message_child(
            TG_TABLE_NAME, NEW.message_id, 1,
            CASE WHEN TG_TABLE_NAME = 'feedback' THEN (to_jsonb(NEW) ->> 'satisfied')::boolean END
        );
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER rollup_referrals_insert_delete BEFORE INSERT OR DELETE ON referrals
FOR EACH ROW EXECUTE FUNCTION rollup_message_child_changed();
CREATE TRIGGER rollup_referrals_update BEFORE UPDATE OF message_id ON referrals
FOR EACH ROW WHEN (OLD.message_id IS DISTINCT FROM NEW.message_id)
EXECUTE FUNCTION rollup_message_child_changed();

CREATE TRIGGER rollup_replies_insert_delete BEFORE INSERT OR DELETE ON replies
FOR EACH ROW EXECUTE FUNCTION rollup_message_child_changed();
CREATE TRIGGER rollup_replies_update BEFORE UPDATE OF message_id ON replies
FOR EACH ROW WHEN (OLD.message_id IS DISTINCT FROM NEW.message_id)
EXECUTE FUNCTION rollup_message_child_changed();

CREATE TRIGGER rollup_feedback_insert_delete AFTER INSERT OR DELETE ON feedback
FOR EACH ROW EXECUTE FUNCTION rollup_message_child_changed();
CREATE TRIGGER rollup_feedback_update AFTER UPDATE OF message_id, satisfied ON feedback
FOR EACH ROW WHEN (
    OLD.message_id IS DISTINCT FROM NEW.message_id OR OLD.satisfied IS DISTINCT FROM NEW.satisfied
) EXECUTE FUNCTION rollup_message_child_changed();

CREATE TRIGGER rollup_reminders_insert_delete AFTER INSERT OR DELETE ON reminders
FOR EACH ROW EXECUTE FUNCTION rollup_message_child_changed();
CREATE TRIGGER rollup_reminders_update AFTER UPDATE OF message_id ON reminders
FOR EACH ROW WHEN (OLD.message_id IS DISTINCT FROM NEW.message_id)
EXECUTE FUNCTION rollup_message_child_changed();
"""

POSTGRES_TRIGGERS = {
    "calls": ("rollup_calls_insert_delete", "rollup_calls_update"),
    "messages": ("rollup_messages_insert_delete", "rollup_messages_update"),
    **{t: (f"rollup_{t}_insert_delete", f"rollup_{t}_update") for t in CHILD_TABLES},
}
POSTGRES_FUNCTIONS = (
    "rollup_message_child_changed()",
    "rollup_message_child(text, integer, integer, boolean)",
    "rollup_messages_changed()",
    "rollup_message_apply(messages, integer, integer, integer, integer, integer, integer)",
    "rollup_calls_changed()",
    "rollup_call_apply(calls, integer)",
)


def postgres_statements() -> list[str]:
    """The PostgreSQL DDL split into statements (functions keep their bodies whole)."""
    statements: list[str] = []
    current: list[str] = []
    for line in POSTGRES_DDL.splitlines():
        if line.startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";") and (
            line.startswith("END $$") or not any(c.startswith("CREATE FUNCTION") for c in current)
        ):
            statements.append("\n".join(current))
            current = []
    return statements


def postgres_drop_statements() -> list[str]:
    """Statements that remove every trigger and function above."""
    drops = [
        f"DROP TRIGGER IF EXISTS {name} ON {table}"
        for table, names in POSTGRES_TRIGGERS.items()
        for name in names
    ]
    return drops + [f"DROP FUNCTION IF EXISTS {f}" for f in POSTGRES_FUNCTIONS]


# ---- SQLite ----------------------------------------------------------------------------


def _sqlite_day(column: str) -> str:
    return f"date({column}, '{SQLITE_OFFSET}')"


def _sqlite_call_upsert(row: str, sign: int) -> str:
    key4 = f"CASE WHEN substr({row}.keys, 1, 1) = '4' THEN {sign} ELSE 0 END"
    hour = f"CAST(strftime('%H', {row}.started_at, '{SQLITE_OFFSET}') AS INTEGER)"
    weekday = f"CAST(strftime('%w', {row}.started_at, '{SQLITE_OFFSET}') AS INTEGER)"
    month = f"date({row}.started_at, '{SQLITE_OFFSET}', 'start of month')"
    outcome = f"coalesce({row}.outcome, 'in_progress'), substr({row}.keys, 1, 1)"
    return (
        "INSERT INTO rollup_call_hours (day, hour, line_code, calls, key4) "
        f"VALUES ({_sqlite_day(row + '.started_at')}, {hour}, {row}.line_code, {sign}, {key4}) "
        "ON CONFLICT (day, hour, line_code) DO UPDATE SET "
        "calls = calls + excluded.calls, key4 = key4 + excluded.key4;\n"
        "INSERT INTO rollup_call_outcomes (day, line_code, outcome, first_key, calls) "
        f"VALUES ({_sqlite_day(row + '.started_at')}, {row}.line_code, {outcome}, {sign}) "
        "ON CONFLICT (day, line_code, outcome, first_key) DO UPDATE SET "
        "calls = calls + excluded.calls;\n"
        "INSERT INTO rollup_call_hours_monthly (month, weekday, hour, line_code, calls, key4) "
        f"VALUES ({month}, {weekday}, {hour}, {row}.line_code, {sign}, {key4}) "
        "ON CONFLICT (month, weekday, hour, line_code) DO UPDATE SET "
        "calls = calls + excluded.calls, key4 = key4 + excluded.key4;\n"
        "INSERT INTO rollup_call_outcomes_monthly (month, line_code, outcome, first_key, calls) "
        f"VALUES ({month}, {row}.line_code, {outcome}, {sign}) "
        "ON CONFLICT (month, line_code, outcome, first_key) DO UPDATE SET "
        "calls = calls + excluded.calls;"
    )


def _sqlite_message_upsert(source: str, where: str, own: str, counts: dict[str, str]) -> str:
    """INSERT ... SELECT adding to the cell of message `m` (from `source`) when `where` holds."""
    values = {
        "registered": own,
        **{
            column: f"CASE WHEN m.not_referred_reason = '{reason}' THEN {own} ELSE 0 END"
            for reason, column in NOT_REFERRED_COLUMNS.items()
        },
        "referred": "0",
        "answered": "0",
        "feedback": "0",
        "satisfied": "0",
        "reminders": "0",
        **counts,
    }
    columns = ", ".join((*MESSAGE_KEYS, *MESSAGE_COUNTERS))
    select = ", ".join(
        (
            _sqlite_day("m.created_at"),
            "m.line_code",
            "m.kind",
            "coalesce(m.topic_id, 0)",
            "coalesce(m.district, 0)",
            "coalesce(m.unit_id, 0)",
            *(values[c] for c in MESSAGE_COUNTERS),
        )
    )
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in MESSAGE_COUNTERS)
    monthly_columns = columns.replace("day,", "month,", 1)
    monthly_select = select.replace(
        _sqlite_day("m.created_at"), f"date(m.created_at, '{SQLITE_OFFSET}', 'start of month')", 1
    )
    monthly_keys = ", ".join(("month", *MESSAGE_KEYS[1:]))
    return (
        f"INSERT INTO rollup_messages ({columns}) SELECT {select} FROM {source} WHERE {where} "
        f"ON CONFLICT ({', '.join(MESSAGE_KEYS)}) DO UPDATE SET {updates};\n"
        f"INSERT INTO rollup_messages_monthly ({monthly_columns}) SELECT {monthly_select} "
        f"FROM {source} WHERE {where} "
        f"ON CONFLICT ({monthly_keys}) DO UPDATE SET {updates};"
    )


def _sqlite_own_counts(message_id: str, sign: int) -> dict[str, str]:
    minus = "-" if sign < 0 else ""
    return {
        "referred": f"{minus}EXISTS (SELECT 1 FROM referrals x WHERE x.message_id = {message_id})",
        "answered": f"{minus}EXISTS (SELECT 1 FROM replies x WHERE x.message_id = {message_id})",
        "feedback": f"{minus}(SELECT count(*) FROM feedback x WHERE x.message_id = {message_id})",
        "satisfied": (
            f"{minus}(SELECT count(*) FROM feedback x "
            f"WHERE x.message_id = {message_id} AND x.satisfied)"
        ),
        "reminders": f"{minus}(SELECT count(*) FROM reminders x WHERE x.message_id = {message_id})",
    }


def _sqlite_message_row(row: str) -> str:
    """A one-row subquery standing for OLD or NEW of messages, named m."""
    columns = ("id", "created_at", "line_code", "kind", "topic_id", "district", "unit_id")
    return (
        "(SELECT "
        + ", ".join(f"{row}.{c} AS {c}" for c in columns)
        + f", {row}.not_referred_reason AS not_referred_reason) AS m"
    )


def _sqlite_child_upsert(table: str, row: str, sign: int) -> str:
    """Add what one referral, reply, feedback or reminder row (OLD or NEW) says."""
    source = "messages m"
    where = f"m.id = {row}.message_id"
    if table in ("referrals", "replies"):
        column = "referred" if table == "referrals" else "answered"
        wanted = 1 if sign > 0 else 0
        where += (
            f" AND (SELECT count(*) FROM {table} x WHERE x.message_id = {row}.message_id) = {wanted}"
        )
        counts = {column: str(sign)}
    elif table == "feedback":
        counts = {
            "feedback": str(sign),
            "satisfied": f"CASE WHEN {row}.satisfied THEN {sign} ELSE 0 END",
        }
    else:
        counts = {"reminders": str(sign)}
    return _sqlite_message_upsert(source, where, "0", counts)


def sqlite_statements() -> list[str]:
    """CREATE TRIGGER statements for SQLite, one per event and table."""
    out = []
    call_cols = "started_at, line_code, outcome, keys"
    call_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in call_cols.split(", "))
    out += [
        "CREATE TRIGGER rollup_calls_insert AFTER INSERT ON calls BEGIN\n"
        + _sqlite_call_upsert("NEW", 1)
        + "\nEND",
        "CREATE TRIGGER rollup_calls_delete AFTER DELETE ON calls BEGIN\n"
        + _sqlite_call_upsert("OLD", -1)
        + "\nEND",
        f"CREATE TRIGGER rollup_calls_update AFTER UPDATE OF {call_cols} ON calls "
        f"WHEN {call_changed} BEGIN\n"
        + _sqlite_call_upsert("OLD", -1)
        + "\n"
        + _sqlite_call_upsert("NEW", 1)
        + "\nEND",
    ]
    msg_cols = "created_at, line_code, kind, topic_id, district, unit_id, not_referred_reason"
    msg_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in msg_cols.split(", "))

    def message(row: str, sign: int) -> str:
        return _sqlite_message_upsert(
            _sqlite_message_row(row), "1", str(sign), _sqlite_own_counts(f"{row}.id", sign)
        )

    out += [
        "CREATE TRIGGER rollup_messages_insert AFTER INSERT ON messages BEGIN\n"
        + message("NEW", 1)
        + "\nEND",
        "CREATE TRIGGER rollup_messages_delete AFTER DELETE ON messages BEGIN\n"
        + message("OLD", -1)
        + "\nEND",
        f"CREATE TRIGGER rollup_messages_update AFTER UPDATE OF {msg_cols} ON messages "
        f"WHEN {msg_changed} BEGIN\n" + message("OLD", -1) + "\n" + message("NEW", 1) + "\nEND",
    ]
    for table in CHILD_TABLES:
        changed = "OLD.message_id IS NOT NEW.message_id"
        update_of = "message_id"
        if table == "feedback":
            changed += " OR OLD.satisfied IS NOT NEW.satisfied"
            update_of += ", satisfied"
        out += [
            f"CREATE TRIGGER rollup_{table}_insert AFTER INSERT ON {table} BEGIN\n"
            + _sqlite_child_upsert(table, "NEW", 1)
            + "\nEND",
            f"CREATE TRIGGER rollup_{table}_delete AFTER DELETE ON {table} BEGIN\n"
            + _sqlite_child_upsert(table, "OLD", -1)
            + "\nEND",
            f"CREATE TRIGGER rollup_{table}_update AFTER UPDATE OF {update_of} ON {table} "
            f"WHEN {changed} BEGIN\n"
            + _sqlite_child_upsert(table, "OLD", -1)
            + "\n"
            + _sqlite_child_upsert(table, "NEW", 1)
            + "\nEND",
        ]
    return out


def sqlite_drop_statements() -> list[str]:
    """Statements that remove every SQLite rollup trigger."""
    names = [f"rollup_{t}_{e}" for t in ("calls", "messages", *CHILD_TABLES) for e in ("insert", "delete", "update")]
    return [f"DROP TRIGGER IF EXISTS {n}" for n in names]


def install_triggers(conn: Connection) -> None:
    """Create the rollup triggers on this connection's database (migrations call it)."""
    statements = postgres_statements() if conn.dialect.name == "postgresql" else sqlite_statements()
    for statement in statements:
        conn.exec_driver_sql(statement)


def drop_triggers(conn: Connection) -> None:
    """Remove the rollup triggers (and PostgreSQL functions)."""
    postgres = conn.dialect.name == "postgresql"
    for statement in postgres_drop_statements() if postgres else sqlite_drop_statements():
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
