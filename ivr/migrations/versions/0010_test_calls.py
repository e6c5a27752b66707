"""test_calls: calls from the console's test phone are marked with driver 'test'

Revision ID: 0010_test_calls
Revises: 0009_session_lifecycle
"""
from alembic import op


revision = '0010_test_calls'
down_revision = '0009_session_lifecycle'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch: SQLite rebuilds the table to change a check constraint; PostgreSQL alters it in place.
    with op.batch_alter_table('calls') as batch:
        batch.drop_constraint('driver', type_='check')
        batch.create_check_constraint('driver', "driver IN ('agi', 'twilio', 'test')")


def downgrade() -> None:
    # Fails while test calls remain: run `ivr calls purge-test` first.
    with op.batch_alter_table('calls') as batch:
        batch.drop_constraint('driver', type_='check')
        batch.create_check_constraint('driver', "driver IN ('agi', 'twilio')")
