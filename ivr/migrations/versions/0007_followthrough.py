"""follow-through: reply notices, satisfaction surveys, escalations, field checks

Revision ID: 0007_followthrough
Revises: 0006_rollups
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_followthrough'
down_revision = '0006_rollups'
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table('reply_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reply_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('attempt', sa.SmallInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('sms_id', sa.Integer(), nullable=True),
    sa.Column('call_ref', sa.String(length=255), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    _ts('created_at', False),
    sa.CheckConstraint("channel IN ('sms', 'call')", name=op.f('ck_reply_notices_channel')),
    sa.CheckConstraint("status IN ('queued', 'sent', 'failed')", name=op.f('ck_reply_notices_status')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_reply_notices_message_id_messages')),
    sa.ForeignKeyConstraint(['reply_id'], ['replies.id'], name=op.f('fk_reply_notices_reply_id_replies')),
    sa.ForeignKeyConstraint(['sms_id'], ['sms.id'], name=op.f('fk_reply_notices_sms_id_sms')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_notices')),
    sa.UniqueConstraint('reply_id', 'channel', 'attempt', name=op.f('uq_reply_notices_reply_id_channel_attempt'))
    )
    op.create_table('surveys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reply_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    _ts('due_at'),
    sa.Column('sent_count', sa.SmallInteger(), nullable=False),
    _ts('last_sent_at'),
    sa.Column('sms_id', sa.Integer(), nullable=True),
    sa.Column('feedback_id', sa.Integer(), nullable=True),
    _ts('answered_at'),
    _ts('created_at', False),
    sa.CheckConstraint("status IN ('scheduled', 'sent', 'answered', 'superseded')", name=op.f('ck_surveys_status')),
    sa.CheckConstraint('sent_count BETWEEN 0 AND 2', name=op.f('ck_surveys_sent_count')),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], name=op.f('fk_surveys_feedback_id_feedback')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_surveys_message_id_messages')),
    sa.ForeignKeyConstraint(['reply_id'], ['replies.id'], name=op.f('fk_surveys_reply_id_replies')),
    sa.ForeignKeyConstraint(['sms_id'], ['sms.id'], name=op.f('fk_surveys_sms_id_sms')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_surveys')),
    sa.UniqueConstraint('reply_id', name=op.f('uq_surveys_reply_id'))
    )
    op.create_index(op.f('ix_surveys_message_id'), 'surveys', ['message_id'], unique=False)
    op.create_index(op.f('ix_surveys_status_due_at'), 'surveys', ['status', 'due_at'], unique=False)
    op.create_table('escalations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('to_unit_id', sa.Integer(), nullable=True),
    _ts('due_at', False),
    sa.Column('notified_sms_id', sa.Integer(), nullable=True),
    _ts('created_at', False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_escalations_message_id_messages')),
    sa.ForeignKeyConstraint(['notified_sms_id'], ['sms.id'], name=op.f('fk_escalations_notified_sms_id_sms')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_escalations_referral_id_referrals')),
    sa.ForeignKeyConstraint(['to_unit_id'], ['units.id'], name=op.f('fk_escalations_to_unit_id_units')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_escalations_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalations')),
    sa.UniqueConstraint('referral_id', 'due_at', name=op.f('uq_escalations_referral_id_due_at'))
    )
    op.create_index(op.f('ix_escalations_created_at'), 'escalations', ['created_at'], unique=False)
    op.create_index(op.f('ix_escalations_to_unit_id_created_at'), 'escalations', ['to_unit_id', 'created_at'], unique=False)
    op.create_table('field_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reply_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('inspector_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('photo_path', sa.String(length=255), nullable=True),
    sa.Column('reminder_id', sa.Integer(), nullable=True),
    _ts('sampled_at', False),
    _ts('checked_at'),
    sa.CheckConstraint("status IN ('pending', 'passed', 'failed')", name=op.f('ck_field_checks_status')),
    sa.CheckConstraint("(status = 'pending') = (checked_at IS NULL)", name=op.f('ck_field_checks_checked')),
    sa.ForeignKeyConstraint(['inspector_id'], ['users.id'], name=op.f('fk_field_checks_inspector_id_users')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_field_checks_message_id_messages')),
    sa.ForeignKeyConstraint(['reminder_id'], ['reminders.id'], name=op.f('fk_field_checks_reminder_id_reminders')),
    sa.ForeignKeyConstraint(['reply_id'], ['replies.id'], name=op.f('fk_field_checks_reply_id_replies')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_field_checks_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_field_checks')),
    sa.UniqueConstraint('reply_id', name=op.f('uq_field_checks_reply_id'))
    )
    op.create_index(op.f('ix_field_checks_status_sampled_at'), 'field_checks', ['status', 'sampled_at'], unique=False)
    op.create_index(op.f('ix_field_checks_unit_id'), 'field_checks', ['unit_id'], unique=False)


def downgrade() -> None:
    for table in ('field_checks', 'escalations', 'surveys', 'reply_notices'):
        op.drop_table(table)
