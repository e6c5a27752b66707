"""console: API tokens; indexes for duplicate suggestions and the operators' hand-off list

Revision ID: 0004_console
Revises: 0003_twilio
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_console'
down_revision = '0003_twilio'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_index(op.f('ix_api_tokens_user_id'), 'api_tokens', ['user_id'], unique=False)
    op.create_index('ix_messages_topic_id_district_created_at', 'messages',
                    ['topic_id', 'district', 'created_at'], unique=False)
    op.create_index('ix_calls_outcome_started_at', 'calls', ['outcome', 'started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_calls_outcome_started_at', table_name='calls')
    op.drop_index('ix_messages_topic_id_district_created_at', table_name='messages')
    op.drop_index(op.f('ix_api_tokens_user_id'), table_name='api_tokens')
    op.drop_table('api_tokens')
