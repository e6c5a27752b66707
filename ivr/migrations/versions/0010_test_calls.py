"""test_calls: calls from the console's test phone are marked with driver 'test'

Revision ID: 0010_test_calls
Revises: 0009_session_lifecycle
"""
from pathlib import Path

from alembic import op


revision = '0010_test_calls'
down_revision = '0009_session_lifecycle'
branch_labels = None
depends_on = None

# SQLite changes a check constraint by rebuilding the table, which drops its triggers: the
# rollup triggers on `calls` are made again from the file frozen with 0006 (never live code).
TRIGGERS_FILE = Path(__file__).resolve().parent.parent / "sql" / "0006_rollup_triggers.sqlite.sql"


def _calls_triggers_sqlite() -> list[str]:
    """The CREATE TRIGGER statements on `calls` in 0006's SQLite file (one statement ends at each `END;`)."""
    lines = [line for line in TRIGGERS_FILE.read_text().splitlines() if not line.startswith("--")]
    chunks = "\n".join(lines).split("END;")
    return [chunk.strip() + "\nEND;" for chunk in chunks if " ON calls " in chunk]


def _set_drivers(drivers: str) -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_constraint('driver', type_='check')
        batch.create_check_constraint('driver', f"driver IN ({drivers})")
    if op.get_bind().dialect.name == "sqlite":
        for statement in _calls_triggers_sqlite():
            op.execute(statement)


def upgrade() -> None:
    _set_drivers("'agi', 'twilio', 'test'")


def downgrade() -> None:
    # Fails while test calls remain: run `ivr calls purge-test` first.
    _set_drivers("'agi', 'twilio'")
