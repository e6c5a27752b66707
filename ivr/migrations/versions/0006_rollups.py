"""analysis desk: rollup tables for calls and messages (daily and monthly), kept by triggers

Revision ID: 0006_rollups
Revises: 0005_inbox
Create Date: 2026-11-29 13:40:00
"""
from pathlib import Path

from alembic import op
import sqlalchemy as sa

# The trigger SQL is read from files frozen with this revision; a migration never imports live code
# (what it does must not change when the application does).
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

revision = "0006_rollups"
down_revision = "0005_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_call_hours",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("line_code", sa.String(length=4), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("key4", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "hour", "line_code", name=op.f("pk_rollup_call_hours")),
    )
    op.create_table(
        "rollup_call_outcomes",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("line_code", sa.String(length=4), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("first_key", sa.String(length=1), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "line_code", "outcome", "first_key", name=op.f("pk_rollup_call_outcomes")
        ),
    )
    counters = (
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
    op.create_table(
        "rollup_messages",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("line_code", sa.String(length=4), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("topic_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("district", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("unit_id", sa.Integer(), autoincrement=False, nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in counters),
        sa.PrimaryKeyConstraint(
            "day", "line_code", "kind", "topic_id", "district", "unit_id",
            name=op.f("pk_rollup_messages"),
        ),
    )
    op.create_index(
        op.f("ix_rollup_messages_unit_id_day"), "rollup_messages", ["unit_id", "day"], unique=False
    )
    op.create_table(
        "rollup_messages_monthly",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("line_code", sa.String(length=4), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("topic_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("district", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("unit_id", sa.Integer(), autoincrement=False, nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in counters),
        sa.PrimaryKeyConstraint(
            "month", "line_code", "kind", "topic_id", "district", "unit_id",
            name=op.f("pk_rollup_messages_monthly"),
        ),
    )
    op.create_index(
        op.f("ix_rollup_messages_monthly_unit_id_month"),
        "rollup_messages_monthly",
        ["unit_id", "month"],
        unique=False,
    )
    op.create_table(
        "rollup_call_hours_monthly",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("hour", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("line_code", sa.String(length=4), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("key4", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month", "weekday", "hour", "line_code", name=op.f("pk_rollup_call_hours_monthly")
        ),
    )
    op.create_table(
        "rollup_call_outcomes_monthly",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("line_code", sa.String(length=4), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("first_key", sa.String(length=1), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month", "line_code", "outcome", "first_key", name=op.f("pk_rollup_call_outcomes_monthly")
        ),
    )
    _run("0006_rollup_triggers")
    _run("0006_rollups_backfill")  # rows that existed before this revision are counted once, here


def downgrade() -> None:
    _run("0006_rollup_triggers_drop")
    op.drop_index(
        op.f("ix_rollup_messages_monthly_unit_id_month"), table_name="rollup_messages_monthly"
    )
    op.drop_table("rollup_messages_monthly")
    op.drop_table("rollup_call_outcomes_monthly")
    op.drop_table("rollup_call_hours_monthly")
    op.drop_index(op.f("ix_rollup_messages_unit_id_day"), table_name="rollup_messages")
    op.drop_table("rollup_messages")
    op.drop_table("rollup_call_outcomes")
    op.drop_table("rollup_call_hours")


def _run(name: str) -> None:
    """Run ivr/migrations/sql/<name>.<dialect>.sql, one statement at a time."""
    bind = op.get_bind()
    dialect = "postgresql" if bind.dialect.name == "postgresql" else "sqlite"
    for statement in _split((SQL_DIR / f"{name}.{dialect}.sql").read_text(encoding="utf-8")):
        bind.exec_driver_sql(statement)


def _split(script: str) -> list[str]:
    """Statements end at a `;` line end outside `$$` bodies and `BEGIN … END;` blocks (frozen copy)."""
    statements, current = [], []
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
