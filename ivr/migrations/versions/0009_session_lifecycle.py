"""session_lifecycle: a session version per user, an expiry per API token

Revision ID: 0009_session_lifecycle
Revises: 0008_topic_deadlines
"""
from datetime import timedelta

from alembic import op
import sqlalchemy as sa


revision = '0009_session_lifecycle'
down_revision = '0008_topic_deadlines'
branch_labels = None
depends_on = None

# Tokens made before this revision get the default lifetime from their creation (IVR_API_TOKEN_DAYS).
EXISTING_TOKEN_DAYS = 90


def upgrade() -> None:
    op.add_column('users', sa.Column('session_version', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('api_tokens', sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    tokens = sa.table(
        'api_tokens', sa.column('id', sa.Integer()), sa.column('created_at', sa.DateTime(timezone=True)),
        sa.column('expires_at', sa.DateTime(timezone=True)),
    )
    conn = op.get_bind()
    # A few rows at most, so a portable loop rather than dialect-specific date arithmetic.
    for token_id, created_at in conn.execute(sa.select(tokens.c.id, tokens.c.created_at)).all():
        conn.execute(
            tokens.update().where(tokens.c.id == token_id)
            .values(expires_at=created_at + timedelta(days=EXISTING_TOKEN_DAYS))
        )


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('expires_at')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
