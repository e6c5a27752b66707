"""initial schema: lines, units, users, citizens, topics, calls, messages and what follows them

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 10:30:08.377347
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_number', sa.String(length=15), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('district', sa.SmallInteger(), nullable=True),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('next_date', sa.Date(), nullable=True),
    sa.Column('verdict', sa.String(length=12), nullable=True),
    sa.Column('fine_rials', sa.BigInteger(), nullable=True),
    sa.Column('updated_on', sa.Date(), nullable=True),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'urban_planning' AND stage IN ('received', 'site_visit', 'fees_calculated', 'paid', 'permit_issued', 'completion_certificate', 'rejected')) OR (kind = 'article100' AND stage IN ('violation_reported', 'referred_to_commission', 'hearing_scheduled', 'first_verdict', 'appeal', 'final_verdict', 'executed'))", name=op.f('ck_cases_stage')),
    sa.CheckConstraint("kind IN ('urban_planning', 'article100')", name=op.f('ck_cases_kind')),
    sa.CheckConstraint("verdict IN ('fine', 'demolition', 'closure')", name=op.f('ck_cases_verdict')),
    sa.CheckConstraint('district IS NULL OR district BETWEEN 1 AND 22', name=op.f('ck_cases_district')),
    sa.CheckConstraint('fine_rials IS NULL OR fine_rials >= 0', name=op.f('ck_cases_fine')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('case_number', 'kind', name=op.f('uq_cases_case_number_kind'))
    )
    op.create_table('citizens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('national_id', sa.String(length=10), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_citizens')),
    sa.UniqueConstraint('phone', name=op.f('uq_citizens_phone'))
    )
    op.create_table('holidays',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_holidays'))
    )
    op.create_table('lines',
    sa.Column('code', sa.String(length=4), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.CheckConstraint("code IN ('137', '1888')", name=op.f('ck_lines_code')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_lines'))
    )
    op.create_table('units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('district', sa.SmallInteger(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('deputy', 'organisation', 'district_office', 'department')", name=op.f('ck_units_kind')),
    sa.CheckConstraint('district IS NULL OR district BETWEEN 1 AND 22', name=op.f('ck_units_district')),
    sa.ForeignKeyConstraint(['parent_id'], ['units.id'], name=op.f('fk_units_parent_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units')),
    sa.UniqueConstraint('code', name=op.f('uq_units_code'))
    )
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_units_parent_id'), ['parent_id'], unique=False)

    op.create_table('working_hours',
    sa.Column('weekday', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('opens', sa.Time(), nullable=False),
    sa.Column('closes', sa.Time(), nullable=False),
    sa.CheckConstraint('opens < closes', name=op.f('ck_working_hours_range')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_working_hours_weekday')),
    sa.PrimaryKeyConstraint('weekday', name=op.f('pk_working_hours'))
    )
    op.create_table('calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('line_code', sa.String(length=4), nullable=False),
    sa.Column('channel_id', sa.String(length=64), nullable=False),
    sa.Column('driver', sa.String(length=10), nullable=False),
    sa.Column('caller_number', sa.String(length=32), nullable=True),
    sa.Column('citizen_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('keys', sa.String(length=400), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("driver IN ('agi', 'twilio')", name=op.f('ck_calls_driver')),
    sa.CheckConstraint("outcome IN ('message_registered', 'follow_up', 'case_lookup', 'guidance', 'operator', 'dropped', 'nuisance', 'irrelevant', 'failed')", name=op.f('ck_calls_outcome')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_calls_citizen_id_citizens')),
    sa.ForeignKeyConstraint(['line_code'], ['lines.code'], name=op.f('fk_calls_line_code_lines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('channel_id', name=op.f('uq_calls_channel_id'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calls_caller_number'), ['caller_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_citizen_id'), ['citizen_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_calls_line_code_started_at'), ['line_code', 'started_at'], unique=False)

    op.create_table('topics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('line_code', sa.String(length=4), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('menu_key', sa.String(length=1), nullable=True),
    sa.Column('due_working_days', sa.SmallInteger(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint('due_working_days BETWEEN 1 AND 365', name=op.f('ck_topics_due_days')),
    sa.ForeignKeyConstraint(['line_code'], ['lines.code'], name=op.f('fk_topics_line_code_lines')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_topics_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topics')),
    sa.UniqueConstraint('code', name=op.f('uq_topics_code')),
    sa.UniqueConstraint('line_code', 'menu_key', name=op.f('uq_topics_line_code_menu_key'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role <> 'manager' OR unit_id IS NOT NULL", name=op.f('ck_users_manager_unit')),
    sa.CheckConstraint("role IN ('operator', 'manager', 'supervisor', 'inspector', 'analyst', 'admin')", name=op.f('ck_users_role')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_users_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_unit_id'), ['unit_id'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audit_log_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_object_type_object_id'), ['object_type', 'object_id'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tracking_code', sa.String(length=12), nullable=False),
    sa.Column('line_code', sa.String(length=4), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=True),
    sa.Column('district', sa.SmallInteger(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('citizen_id', sa.Integer(), nullable=True),
    sa.Column('call_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('not_referred_reason', sa.String(length=24), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('origin_key', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('screened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('screened_by_id', sa.Integer(), nullable=True),
    sa.Column('claimed_by_id', sa.Integer(), nullable=True),
    sa.Column('claim_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(line_code = '137' AND kind = 'request') OR (line_code = '1888' AND kind <> 'request')", name=op.f('ck_messages_line_kind')),
    sa.CheckConstraint("(not_referred_reason = 'duplicate') = (duplicate_of_id IS NOT NULL)", name=op.f('ck_messages_duplicate_link')),
    sa.CheckConstraint("(status = 'not_referred') = (not_referred_reason IS NOT NULL)", name=op.f('ck_messages_status_reason')),
    sa.CheckConstraint("kind IN ('criticism', 'suggestion', 'complaint', 'appreciation', 'request')", name=op.f('ck_messages_kind')),
    sa.CheckConstraint("not_referred_reason IN ('incomplete_message', 'incomplete_caller', 'duplicate', 'irrelevant')", name=op.f('ck_messages_reason')),
    sa.CheckConstraint("source IN ('phone_voice', 'operator', 'sms')", name=op.f('ck_messages_source')),
    sa.CheckConstraint("status IN ('new', 'screening', 'referred', 'answered', 'closed', 'not_referred')", name=op.f('ck_messages_status')),
    sa.CheckConstraint('district IS NULL OR district BETWEEN 1 AND 22', name=op.f('ck_messages_district')),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_messages_call_id_calls')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_messages_citizen_id_citizens')),
    sa.ForeignKeyConstraint(['claimed_by_id'], ['users.id'], name=op.f('fk_messages_claimed_by_id_users')),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['messages.id'], name=op.f('fk_messages_duplicate_of_id_messages')),
    sa.ForeignKeyConstraint(['line_code'], ['lines.code'], name=op.f('fk_messages_line_code_lines')),
    sa.ForeignKeyConstraint(['screened_by_id'], ['users.id'], name=op.f('fk_messages_screened_by_id_users')),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], name=op.f('fk_messages_topic_id_topics')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_messages_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('origin_key', name=op.f('uq_messages_origin_key')),
    sa.UniqueConstraint('tracking_code', name=op.f('uq_messages_tracking_code'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_citizen_id'), ['citizen_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_status_created_at'), ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_unit_id_status'), ['unit_id', 'status'], unique=False)

    op.create_table('referrals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('referred_by_id', sa.Integer(), nullable=True),
    sa.Column('referred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['manager_id'], ['users.id'], name=op.f('fk_referrals_manager_id_users')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_referrals_message_id_messages')),
    sa.ForeignKeyConstraint(['referred_by_id'], ['users.id'], name=op.f('fk_referrals_referred_by_id_users')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_referrals_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referrals'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referrals_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_referrals_unit_id_closed_at'), ['unit_id', 'closed_at'], unique=False)

    op.create_table('sms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('purpose', sa.String(length=24), nullable=True),
    sa.Column('provider_sid', sa.String(length=64), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("direction IN ('in', 'out')", name=op.f('ck_sms_direction')),
    sa.CheckConstraint("status IN ('queued', 'sent', 'delivered', 'failed', 'undelivered', 'received')", name=op.f('ck_sms_status')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_sms_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms')),
    sa.UniqueConstraint('provider_sid', name=op.f('uq_sms_provider_sid'))
    )
    with op.batch_alter_table('sms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_phone_created_at'), ['phone', 'created_at'], unique=False)

    op.create_table('replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=True),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heard_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_replies_author_id_users')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_replies_message_id_messages')),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_replies_referral_id_referrals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replies'))
    )
    with op.batch_alter_table('replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_replies_message_id'), ['message_id'], unique=False)

    op.create_table('feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('reply_id', sa.Integer(), nullable=True),
    sa.Column('satisfied', sa.Boolean(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('raw_text', sa.Text(), nullable=True),
    sa.Column('origin_key', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("channel IN ('phone', 'sms', 'web')", name=op.f('ck_feedback_channel')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_feedback_message_id_messages')),
    sa.ForeignKeyConstraint(['reply_id'], ['replies.id'], name=op.f('fk_feedback_reply_id_replies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback')),
    sa.UniqueConstraint('origin_key', name=op.f('uq_feedback_origin_key'))
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_message_id'), ['message_id'], unique=False)

    op.create_table('recordings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('reply_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(purpose = 'message' AND message_id IS NOT NULL AND reply_id IS NULL) OR (purpose = 'reply' AND reply_id IS NOT NULL)", name=op.f('ck_recordings_owner')),
    sa.CheckConstraint("purpose IN ('message', 'reply')", name=op.f('ck_recordings_purpose')),
    sa.CheckConstraint('seconds >= 0', name=op.f('ck_recordings_seconds')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_recordings_message_id_messages')),
    sa.ForeignKeyConstraint(['reply_id'], ['replies.id'], name=op.f('fk_recordings_reply_id_replies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings')),
    sa.UniqueConstraint('path', name=op.f('uq_recordings_path'))
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recordings_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_recordings_reply_id'), ['reply_id'], unique=False)

    op.create_table('reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('feedback_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("reason IN ('dissatisfied', 'field_check_failed')", name=op.f('ck_reminders_reason')),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], name=op.f('fk_reminders_feedback_id_feedback')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_reminders_message_id_messages')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_reminders_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminders'))
    )
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminders_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reminders_unit_id_created_at'), ['unit_id', 'created_at'], unique=False)


    lines = sa.table("lines", sa.column("code", sa.String), sa.column("name", sa.String))
    op.bulk_insert(
        lines,
        [
            {"code": "137", "name": "سامانه ۱۳۷ مدیریت شهری"},
            {"code": "1888", "name": "سامانه ۱۸۸۸ سازمان بازرسی"},
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminders_unit_id_created_at'))
        batch_op.drop_index(batch_op.f('ix_reminders_message_id'))

    op.drop_table('reminders')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recordings_reply_id'))
        batch_op.drop_index(batch_op.f('ix_recordings_message_id'))

    op.drop_table('recordings')
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_message_id'))

    op.drop_table('feedback')
    with op.batch_alter_table('replies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_replies_message_id'))

    op.drop_table('replies')
    with op.batch_alter_table('sms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_phone_created_at'))

    op.drop_table('sms')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referrals_unit_id_closed_at'))
        batch_op.drop_index(batch_op.f('ix_referrals_message_id'))

    op.drop_table('referrals')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_unit_id_status'))
        batch_op.drop_index(batch_op.f('ix_messages_status_created_at'))
        batch_op.drop_index(batch_op.f('ix_messages_citizen_id'))
        batch_op.drop_index(batch_op.f('ix_messages_call_id'))

    op.drop_table('messages')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_object_type_object_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_created_at'))

    op.drop_table('audit_log')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_unit_id'))

    op.drop_table('users')
    op.drop_table('topics')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calls_line_code_started_at'))
        batch_op.drop_index(batch_op.f('ix_calls_citizen_id'))
        batch_op.drop_index(batch_op.f('ix_calls_caller_number'))

    op.drop_table('calls')
    op.drop_table('working_hours')
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_units_parent_id'))

    op.drop_table('units')
    op.drop_table('lines')
    op.drop_table('holidays')
    op.drop_table('citizens')
    op.drop_table('cases')
