"""inbox: partial indexes for the managers' inbox (unanswered referrals by due date, open reminders)

Revision ID: 0005_inbox
Revises: 0004_console
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_inbox'
down_revision = '0004_console'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_referrals_open', 'referrals', ['unit_id', 'due_at', 'id'], unique=False,
                    postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))
    op.create_index('ix_reminders_open', 'reminders', ['unit_id', 'message_id'], unique=False,
                    postgresql_where=sa.text('resolved_at IS NULL'), sqlite_where=sa.text('resolved_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_reminders_open', table_name='reminders')
    op.drop_index('ix_referrals_open', table_name='referrals')
