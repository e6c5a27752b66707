"""twilio_calls and twilio_recordings: the Twilio driver's call state and fetched recordings

Revision ID: 0003_twilio
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_twilio'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('twilio_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('line_code', sa.String(length=4), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('last_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('last_twiml', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['line_code'], ['lines.code'], name=op.f('fk_twilio_calls_line_code_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_twilio_calls')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_twilio_calls_call_sid'))
    )
    op.create_table('twilio_recordings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_sid', sa.String(length=64), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('audio', sa.Text(), nullable=True),
    sa.Column('keep', sa.Text(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'speech', 'empty', 'absent', 'discarded')", name=op.f('ck_twilio_recordings_status')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_twilio_recordings_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_twilio_recordings')),
    sa.UniqueConstraint('recording_sid', name=op.f('uq_twilio_recordings_recording_sid'))
    )
    op.create_index(op.f('ix_twilio_recordings_call_sid'), 'twilio_recordings', ['call_sid'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_twilio_recordings_call_sid'), table_name='twilio_recordings')
    op.drop_table('twilio_recordings')
    op.drop_table('twilio_calls')
