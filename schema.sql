-- schema.sql: the reviewed DDL of the IVR / call-centre database (PostgreSQL dialect).
--
-- The SQLAlchemy models in ivr/models.py and the Alembic migrations in ivr/migrations/
-- must describe exactly these tables: tests/test_schema.py loads this file into a fresh
-- PostgreSQL schema and compares it, table by table, with the models and with the
-- migrated database (columns, types, nullability, keys, indexes, unique and check
-- constraints). Change all three in one commit.
--
-- Times are stored in UTC (timestamptz); the console shows them in Tehran time, Jalali.

CREATE TABLE cases (
	id SERIAL NOT NULL,
	case_number VARCHAR(15) NOT NULL,
	kind VARCHAR(16) NOT NULL,
	district SMALLINT,
	stage VARCHAR(32) NOT NULL,
	next_date DATE,
	verdict VARCHAR(12),
	fine_rials BIGINT,
	updated_on DATE,
	imported_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_cases PRIMARY KEY (id),
	CONSTRAINT uq_cases_case_number_kind UNIQUE (case_number, kind),
	CONSTRAINT ck_cases_kind CHECK (kind IN ('urban_planning', 'article100')),
	CONSTRAINT ck_cases_stage CHECK ((kind = 'urban_planning' AND stage IN ('received', 'site_visit', 'fees_calculated', 'paid', 'permit_issued', 'completion_certificate', 'rejected')) OR (kind = 'article100' AND stage IN ('violation_reported', 'referred_to_commission', 'hearing_scheduled', 'first_verdict', 'appeal', 'final_verdict', 'executed'))),
	CONSTRAINT ck_cases_verdict CHECK (verdict IN ('fine', 'demolition', 'closure')),
	CONSTRAINT ck_cases_fine CHECK (fine_rials IS NULL OR fine_rials >= 0),
	CONSTRAINT ck_cases_district CHECK (district IS NULL OR district BETWEEN 1 AND 22)
);

CREATE TABLE citizens (
	id SERIAL NOT NULL,
	phone VARCHAR(16) NOT NULL,
	name VARCHAR(200),
	national_id VARCHAR(10),
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_citizens PRIMARY KEY (id),
	CONSTRAINT uq_citizens_phone UNIQUE (phone)
);

CREATE TABLE holidays (
	day DATE NOT NULL,
	name VARCHAR(200) NOT NULL,
	CONSTRAINT pk_holidays PRIMARY KEY (day)
);

CREATE TABLE lines (
	code VARCHAR(4) NOT NULL,
	name VARCHAR(120) NOT NULL,
	CONSTRAINT pk_lines PRIMARY KEY (code),
	CONSTRAINT ck_lines_code CHECK (code IN ('137', '1888'))
);

CREATE TABLE units (
	id SERIAL NOT NULL,
	parent_id INTEGER,
	code VARCHAR(40) NOT NULL,
	name VARCHAR(200) NOT NULL,
	kind VARCHAR(20) NOT NULL,
	district SMALLINT,
	active BOOLEAN NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_units PRIMARY KEY (id),
	CONSTRAINT ck_units_kind CHECK (kind IN ('deputy', 'organisation', 'district_office', 'department')),
	CONSTRAINT ck_units_district CHECK (district IS NULL OR district BETWEEN 1 AND 22),
	CONSTRAINT fk_units_parent_id_units FOREIGN KEY(parent_id) REFERENCES units (id),
	CONSTRAINT uq_units_code UNIQUE (code)
);

CREATE INDEX ix_units_parent_id ON units (parent_id);

CREATE TABLE working_hours (
	weekday SMALLINT NOT NULL,
	opens TIME WITHOUT TIME ZONE NOT NULL,
	closes TIME WITHOUT TIME ZONE NOT NULL,
	CONSTRAINT pk_working_hours PRIMARY KEY (weekday),
	CONSTRAINT ck_working_hours_weekday CHECK (weekday BETWEEN 0 AND 6),
	CONSTRAINT ck_working_hours_range CHECK (opens < closes)
);

CREATE TABLE calls (
	id SERIAL NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	channel_id VARCHAR(64) NOT NULL,
	driver VARCHAR(10) NOT NULL,
	caller_number VARCHAR(32),
	citizen_id INTEGER,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	answered_at TIMESTAMP WITH TIME ZONE,
	ended_at TIMESTAMP WITH TIME ZONE,
	keys VARCHAR(400) NOT NULL,
	outcome VARCHAR(24),
	error TEXT,
	CONSTRAINT pk_calls PRIMARY KEY (id),
	CONSTRAINT ck_calls_outcome CHECK (outcome IN ('message_registered', 'follow_up', 'case_lookup', 'guidance', 'operator', 'dropped', 'nuisance', 'irrelevant', 'failed')),
	CONSTRAINT ck_calls_driver CHECK (driver IN ('agi', 'twilio', 'test')),
	CONSTRAINT fk_calls_line_code_lines FOREIGN KEY(line_code) REFERENCES lines (code),
	CONSTRAINT uq_calls_channel_id UNIQUE (channel_id),
	CONSTRAINT fk_calls_citizen_id_citizens FOREIGN KEY(citizen_id) REFERENCES citizens (id)
);

CREATE INDEX ix_calls_caller_number ON calls (caller_number);
CREATE INDEX ix_calls_citizen_id ON calls (citizen_id);
CREATE INDEX ix_calls_line_code_started_at ON calls (line_code, started_at);

CREATE TABLE topics (
	id SERIAL NOT NULL,
	code VARCHAR(40) NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	name VARCHAR(200) NOT NULL,
	menu_key VARCHAR(1),
	due_working_days SMALLINT NOT NULL,
	unit_id INTEGER,
	active BOOLEAN NOT NULL,
	CONSTRAINT pk_topics PRIMARY KEY (id),
	CONSTRAINT ck_topics_due_days CHECK (due_working_days BETWEEN 1 AND 365),
	CONSTRAINT uq_topics_code UNIQUE (code),
	CONSTRAINT uq_topics_line_code_menu_key UNIQUE (line_code, menu_key),
	CONSTRAINT fk_topics_line_code_lines FOREIGN KEY(line_code) REFERENCES lines (code),
	CONSTRAINT fk_topics_unit_id_units FOREIGN KEY(unit_id) REFERENCES units (id)
);

CREATE TABLE users (
	id SERIAL NOT NULL,
	username VARCHAR(64) NOT NULL,
	full_name VARCHAR(200) NOT NULL,
	role VARCHAR(20) NOT NULL,
	unit_id INTEGER,
	password_hash VARCHAR(255) NOT NULL,
	phone VARCHAR(16),
	active BOOLEAN NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	last_login_at TIMESTAMP WITH TIME ZONE,
	session_version INTEGER DEFAULT 0 NOT NULL,
	CONSTRAINT pk_users PRIMARY KEY (id),
	CONSTRAINT ck_users_role CHECK (role IN ('operator', 'manager', 'supervisor', 'inspector', 'analyst', 'admin')),
	CONSTRAINT ck_users_manager_unit CHECK (role <> 'manager' OR unit_id IS NOT NULL),
	CONSTRAINT uq_users_username UNIQUE (username),
	CONSTRAINT fk_users_unit_id_units FOREIGN KEY(unit_id) REFERENCES units (id)
);

CREATE INDEX ix_users_unit_id ON users (unit_id);

CREATE TABLE audit_log (
	id SERIAL NOT NULL,
	user_id INTEGER,
	action VARCHAR(40) NOT NULL,
	object_type VARCHAR(40) NOT NULL,
	object_id INTEGER,
	detail TEXT,
	ip VARCHAR(45),
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_audit_log PRIMARY KEY (id),
	CONSTRAINT fk_audit_log_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE INDEX ix_audit_log_created_at ON audit_log (created_at);
CREATE INDEX ix_audit_log_object_type_object_id ON audit_log (object_type, object_id);

CREATE TABLE messages (
	id SERIAL NOT NULL,
	tracking_code VARCHAR(12) NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	kind VARCHAR(20) NOT NULL,
	topic_id INTEGER,
	district SMALLINT,
	unit_id INTEGER,
	citizen_id INTEGER,
	call_id INTEGER,
	source VARCHAR(16) NOT NULL,
	status VARCHAR(16) NOT NULL,
	not_referred_reason VARCHAR(24),
	duplicate_of_id INTEGER,
	body TEXT,
	summary TEXT,
	origin_key VARCHAR(100),
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	screened_at TIMESTAMP WITH TIME ZONE,
	screened_by_id INTEGER,
	claimed_by_id INTEGER,
	claim_expires_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_messages PRIMARY KEY (id),
	CONSTRAINT ck_messages_kind CHECK (kind IN ('criticism', 'suggestion', 'complaint', 'appreciation', 'request')),
	CONSTRAINT ck_messages_line_kind CHECK ((line_code = '137' AND kind = 'request') OR (line_code = '1888' AND kind <> 'request')),
	CONSTRAINT ck_messages_source CHECK (source IN ('phone_voice', 'operator', 'sms')),
	CONSTRAINT ck_messages_status CHECK (status IN ('new', 'screening', 'referred', 'answered', 'closed', 'not_referred')),
	CONSTRAINT ck_messages_reason CHECK (not_referred_reason IN ('incomplete_message', 'incomplete_caller', 'duplicate', 'irrelevant')),
	CONSTRAINT ck_messages_status_reason CHECK ((status = 'not_referred') = (not_referred_reason IS NOT NULL)),
	CONSTRAINT ck_messages_duplicate_link CHECK ((not_referred_reason = 'duplicate') = (duplicate_of_id IS NOT NULL)),
	CONSTRAINT ck_messages_district CHECK (district IS NULL OR district BETWEEN 1 AND 22),
	CONSTRAINT uq_messages_tracking_code UNIQUE (tracking_code),
	CONSTRAINT fk_messages_line_code_lines FOREIGN KEY(line_code) REFERENCES lines (code),
	CONSTRAINT fk_messages_topic_id_topics FOREIGN KEY(topic_id) REFERENCES topics (id),
	CONSTRAINT fk_messages_unit_id_units FOREIGN KEY(unit_id) REFERENCES units (id),
	CONSTRAINT fk_messages_citizen_id_citizens FOREIGN KEY(citizen_id) REFERENCES citizens (id),
	CONSTRAINT fk_messages_call_id_calls FOREIGN KEY(call_id) REFERENCES calls (id),
	CONSTRAINT fk_messages_duplicate_of_id_messages FOREIGN KEY(duplicate_of_id) REFERENCES messages (id),
	CONSTRAINT uq_messages_origin_key UNIQUE (origin_key),
	CONSTRAINT fk_messages_screened_by_id_users FOREIGN KEY(screened_by_id) REFERENCES users (id),
	CONSTRAINT fk_messages_claimed_by_id_users FOREIGN KEY(claimed_by_id) REFERENCES users (id)
);

CREATE INDEX ix_messages_call_id ON messages (call_id);
CREATE INDEX ix_messages_citizen_id ON messages (citizen_id);
CREATE INDEX ix_messages_status_created_at ON messages (status, created_at);
CREATE INDEX ix_messages_unit_id_status ON messages (unit_id, status);

CREATE TABLE referrals (
	id SERIAL NOT NULL,
	message_id INTEGER NOT NULL,
	unit_id INTEGER NOT NULL,
	manager_id INTEGER,
	referred_by_id INTEGER,
	referred_at TIMESTAMP WITH TIME ZONE NOT NULL,
	due_at TIMESTAMP WITH TIME ZONE NOT NULL,
	closed_at TIMESTAMP WITH TIME ZONE,
	escalated_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_referrals PRIMARY KEY (id),
	CONSTRAINT fk_referrals_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_referrals_unit_id_units FOREIGN KEY(unit_id) REFERENCES units (id),
	CONSTRAINT fk_referrals_manager_id_users FOREIGN KEY(manager_id) REFERENCES users (id),
	CONSTRAINT fk_referrals_referred_by_id_users FOREIGN KEY(referred_by_id) REFERENCES users (id)
);

CREATE INDEX ix_referrals_message_id ON referrals (message_id);
CREATE INDEX ix_referrals_unit_id_closed_at ON referrals (unit_id, closed_at);

CREATE TABLE sms (
	id SERIAL NOT NULL,
	direction VARCHAR(3) NOT NULL,
	phone VARCHAR(16) NOT NULL,
	body TEXT NOT NULL,
	status VARCHAR(12) NOT NULL,
	purpose VARCHAR(24),
	provider_sid VARCHAR(64),
	message_id INTEGER,
	error TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_sms PRIMARY KEY (id),
	CONSTRAINT ck_sms_direction CHECK (direction IN ('in', 'out')),
	CONSTRAINT ck_sms_status CHECK (status IN ('queued', 'sent', 'delivered', 'failed', 'undelivered', 'received')),
	CONSTRAINT uq_sms_provider_sid UNIQUE (provider_sid),
	CONSTRAINT fk_sms_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id)
);

CREATE INDEX ix_sms_phone_created_at ON sms (phone, created_at);

CREATE TABLE replies (
	id SERIAL NOT NULL,
	message_id INTEGER NOT NULL,
	referral_id INTEGER,
	author_id INTEGER,
	text TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	heard_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_replies PRIMARY KEY (id),
	CONSTRAINT fk_replies_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_replies_referral_id_referrals FOREIGN KEY(referral_id) REFERENCES referrals (id),
	CONSTRAINT fk_replies_author_id_users FOREIGN KEY(author_id) REFERENCES users (id)
);

CREATE INDEX ix_replies_message_id ON replies (message_id);

CREATE TABLE feedback (
	id SERIAL NOT NULL,
	message_id INTEGER NOT NULL,
	reply_id INTEGER,
	satisfied BOOLEAN NOT NULL,
	channel VARCHAR(8) NOT NULL,
	raw_text TEXT,
	origin_key VARCHAR(100),
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_feedback PRIMARY KEY (id),
	CONSTRAINT ck_feedback_channel CHECK (channel IN ('phone', 'sms', 'web')),
	CONSTRAINT uq_feedback_origin_key UNIQUE (origin_key),
	CONSTRAINT fk_feedback_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_feedback_reply_id_replies FOREIGN KEY(reply_id) REFERENCES replies (id)
);

CREATE INDEX ix_feedback_message_id ON feedback (message_id);

CREATE TABLE recordings (
	id SERIAL NOT NULL,
	path VARCHAR(255) NOT NULL,
	format VARCHAR(10) NOT NULL,
	seconds FLOAT NOT NULL,
	sha256 VARCHAR(64) NOT NULL,
	size_bytes INTEGER NOT NULL,
	purpose VARCHAR(10) NOT NULL,
	message_id INTEGER,
	reply_id INTEGER,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_recordings PRIMARY KEY (id),
	CONSTRAINT ck_recordings_purpose CHECK (purpose IN ('message', 'reply')),
	CONSTRAINT ck_recordings_owner CHECK ((purpose = 'message' AND message_id IS NOT NULL AND reply_id IS NULL) OR (purpose = 'reply' AND reply_id IS NOT NULL)),
	CONSTRAINT ck_recordings_seconds CHECK (seconds >= 0),
	CONSTRAINT uq_recordings_path UNIQUE (path),
	CONSTRAINT fk_recordings_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_recordings_reply_id_replies FOREIGN KEY(reply_id) REFERENCES replies (id)
);

CREATE INDEX ix_recordings_message_id ON recordings (message_id);
CREATE INDEX ix_recordings_reply_id ON recordings (reply_id);

CREATE TABLE reminders (
	id SERIAL NOT NULL,
	message_id INTEGER NOT NULL,
	unit_id INTEGER NOT NULL,
	reason VARCHAR(24) NOT NULL,
	feedback_id INTEGER,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	resolved_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_reminders PRIMARY KEY (id),
	CONSTRAINT ck_reminders_reason CHECK (reason IN ('dissatisfied', 'field_check_failed')),
	CONSTRAINT fk_reminders_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_reminders_unit_id_units FOREIGN KEY(unit_id) REFERENCES units (id),
	CONSTRAINT fk_reminders_feedback_id_feedback FOREIGN KEY(feedback_id) REFERENCES feedback (id)
);

CREATE INDEX ix_reminders_message_id ON reminders (message_id);
CREATE INDEX ix_reminders_unit_id_created_at ON reminders (unit_id, created_at);

INSERT INTO lines (code, name) VALUES
    ('137', 'سامانه ۱۳۷ مدیریت شهری'),
    ('1888', 'سامانه ۱۸۸۸ سازمان بازرسی');

-- ---------------------------------------------------------------------------
-- 0002: background jobs that kept failing (in-process queue; RQ keeps its own)
-- ---------------------------------------------------------------------------
CREATE TABLE failed_jobs (
	id SERIAL NOT NULL,
	job_id VARCHAR(120) NOT NULL,
	name VARCHAR(60) NOT NULL,
	payload TEXT NOT NULL,
	error TEXT NOT NULL,
	attempts SMALLINT NOT NULL,
	failed_at TIMESTAMP WITH TIME ZONE NOT NULL,
	retried_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_failed_jobs PRIMARY KEY (id)
);

CREATE INDEX ix_failed_jobs_failed_at ON failed_jobs (failed_at);

-- ---------------------------------------------------------------------------
-- 0007: follow-through (reply notices, satisfaction surveys, escalations, field checks)
-- ---------------------------------------------------------------------------
CREATE TABLE reply_notices (
	id SERIAL NOT NULL,
	reply_id INTEGER NOT NULL,
	message_id INTEGER NOT NULL,
	channel VARCHAR(8) NOT NULL,
	attempt SMALLINT NOT NULL,
	status VARCHAR(10) NOT NULL,
	sms_id INTEGER,
	call_ref VARCHAR(255),
	error TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_reply_notices PRIMARY KEY (id),
	CONSTRAINT ck_reply_notices_channel CHECK (channel IN ('sms', 'call')),
	CONSTRAINT ck_reply_notices_status CHECK (status IN ('queued', 'sent', 'failed')),
	CONSTRAINT uq_reply_notices_reply_id_channel_attempt UNIQUE (reply_id, channel, attempt),
	CONSTRAINT fk_reply_notices_reply_id_replies FOREIGN KEY(reply_id) REFERENCES replies (id),
	CONSTRAINT fk_reply_notices_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_reply_notices_sms_id_sms FOREIGN KEY(sms_id) REFERENCES sms (id)
);

CREATE TABLE surveys (
	id SERIAL NOT NULL,
	reply_id INTEGER NOT NULL,
	message_id INTEGER NOT NULL,
	phone VARCHAR(16) NOT NULL,
	status VARCHAR(12) NOT NULL,
	due_at TIMESTAMP WITH TIME ZONE,
	sent_count SMALLINT NOT NULL,
	last_sent_at TIMESTAMP WITH TIME ZONE,
	sms_id INTEGER,
	feedback_id INTEGER,
	answered_at TIMESTAMP WITH TIME ZONE,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_surveys PRIMARY KEY (id),
	CONSTRAINT ck_surveys_status CHECK (status IN ('scheduled', 'sent', 'answered', 'superseded')),
	CONSTRAINT ck_surveys_sent_count CHECK (sent_count BETWEEN 0 AND 2),
	CONSTRAINT uq_surveys_reply_id UNIQUE (reply_id),
	CONSTRAINT fk_surveys_reply_id_replies FOREIGN KEY(reply_id) REFERENCES replies (id),
	CONSTRAINT fk_surveys_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_surveys_sms_id_sms FOREIGN KEY(sms_id) REFERENCES sms (id),
	CONSTRAINT fk_surveys_feedback_id_feedback FOREIGN KEY(feedback_id) REFERENCES feedback (id)
);

CREATE INDEX ix_surveys_message_id ON surveys (message_id);

CREATE INDEX ix_surveys_status_due_at ON surveys (status, due_at);

CREATE TABLE escalations (
	id SERIAL NOT NULL,
	referral_id INTEGER NOT NULL,
	message_id INTEGER NOT NULL,
	unit_id INTEGER NOT NULL,
	to_unit_id INTEGER,
	due_at TIMESTAMP WITH TIME ZONE NOT NULL,
	notified_sms_id INTEGER,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_escalations PRIMARY KEY (id),
	CONSTRAINT uq_escalations_referral_id_due_at UNIQUE (referral_id, due_at),
	CONSTRAINT fk_escalations_referral_id_referrals FOREIGN KEY(referral_id) REFERENCES referrals (id),
	CONSTRAINT fk_escalations_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_escalations_unit_id_units FOREIGN KEY(unit_id) REFERENCES units (id),
	CONSTRAINT fk_escalations_to_unit_id_units FOREIGN KEY(to_unit_id) REFERENCES units (id),
	CONSTRAINT fk_escalations_notified_sms_id_sms FOREIGN KEY(notified_sms_id) REFERENCES sms (id)
);

CREATE INDEX ix_escalations_created_at ON escalations (created_at);

CREATE INDEX ix_escalations_to_unit_id_created_at ON escalations (to_unit_id, created_at);

CREATE TABLE field_checks (
	id SERIAL NOT NULL,
	reply_id INTEGER NOT NULL,
	message_id INTEGER NOT NULL,
	unit_id INTEGER NOT NULL,
	weight FLOAT NOT NULL,
	status VARCHAR(8) NOT NULL,
	inspector_id INTEGER,
	note TEXT,
	photo_path VARCHAR(255),
	reminder_id INTEGER,
	sampled_at TIMESTAMP WITH TIME ZONE NOT NULL,
	checked_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_field_checks PRIMARY KEY (id),
	CONSTRAINT ck_field_checks_status CHECK (status IN ('pending', 'passed', 'failed')),
	CONSTRAINT ck_field_checks_checked CHECK ((status = 'pending') = (checked_at IS NULL)),
	CONSTRAINT uq_field_checks_reply_id UNIQUE (reply_id),
	CONSTRAINT fk_field_checks_reply_id_replies FOREIGN KEY(reply_id) REFERENCES replies (id),
	CONSTRAINT fk_field_checks_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id),
	CONSTRAINT fk_field_checks_unit_id_units FOREIGN KEY(unit_id) REFERENCES units (id),
	CONSTRAINT fk_field_checks_inspector_id_users FOREIGN KEY(inspector_id) REFERENCES users (id),
	CONSTRAINT fk_field_checks_reminder_id_reminders FOREIGN KEY(reminder_id) REFERENCES reminders (id)
);

CREATE INDEX ix_field_checks_status_sampled_at ON field_checks (status, sampled_at);

CREATE INDEX ix_field_checks_unit_id ON field_checks (unit_id);

-- 0003_twilio: the Twilio driver's call state between webhooks, and the
-- recordings it fetches from Twilio (checked for speech, stored, linked)
-- ---------------------------------------------------------------------------
CREATE TABLE twilio_calls (
	id SERIAL NOT NULL,
	call_sid VARCHAR(64) NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	state TEXT NOT NULL,
	last_fingerprint VARCHAR(64),
	last_twiml TEXT,
	version INTEGER NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_twilio_calls PRIMARY KEY (id),
	CONSTRAINT uq_twilio_calls_call_sid UNIQUE (call_sid),
	CONSTRAINT fk_twilio_calls_line_code_lines FOREIGN KEY(line_code) REFERENCES lines (code)
);

CREATE TABLE twilio_recordings (
	id SERIAL NOT NULL,
	recording_sid VARCHAR(64) NOT NULL,
	call_sid VARCHAR(64) NOT NULL,
	status VARCHAR(12) NOT NULL,
	duration_ms INTEGER,
	audio TEXT,
	keep TEXT,
	message_id INTEGER,
	error TEXT,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_twilio_recordings PRIMARY KEY (id),
	CONSTRAINT uq_twilio_recordings_recording_sid UNIQUE (recording_sid),
	CONSTRAINT ck_twilio_recordings_status CHECK (status IN ('pending', 'speech', 'empty', 'absent', 'discarded')),
	CONSTRAINT fk_twilio_recordings_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id)
);

CREATE INDEX ix_twilio_recordings_call_sid ON twilio_recordings (call_sid);

-- 0004_console: API bearer tokens (hashed); indexes for the console's queries
-- ---------------------------------------------------------------------------
CREATE TABLE api_tokens (
	id SERIAL NOT NULL,
	user_id INTEGER NOT NULL,
	token_hash VARCHAR(64) NOT NULL,
	name VARCHAR(100) NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	last_used_at TIMESTAMP WITH TIME ZONE,
	revoked_at TIMESTAMP WITH TIME ZONE,
	expires_at TIMESTAMP WITH TIME ZONE,
	CONSTRAINT pk_api_tokens PRIMARY KEY (id),
	CONSTRAINT uq_api_tokens_token_hash UNIQUE (token_hash),
	CONSTRAINT fk_api_tokens_user_id_users FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE INDEX ix_api_tokens_user_id ON api_tokens (user_id);
-- Likely originals of a duplicate: same topic and district, recent first.
CREATE INDEX ix_messages_topic_id_district_created_at ON messages (topic_id, district, created_at);
-- The callers the IVR handed to the operators' queue, newest first.
CREATE INDEX ix_calls_outcome_started_at ON calls (outcome, started_at);

-- 0005_inbox: the managers' inbox reads unanswered referrals in due-date order
-- and requests sent back by an open reminder straight from these indexes
-- ---------------------------------------------------------------------------
CREATE INDEX ix_referrals_open ON referrals (unit_id, due_at, id) WHERE closed_at IS NULL;
CREATE INDEX ix_reminders_open ON reminders (unit_id, message_id) WHERE resolved_at IS NULL;



-- ==== analysis desk (issue 7): rollup tables and the triggers that keep them ====
-- The trigger DDL below is ivr/migrations/sql/0006_rollup_triggers.postgresql.sql verbatim (a test checks).

CREATE TABLE rollup_call_hours (
	day DATE NOT NULL,
	hour SMALLINT NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	calls INTEGER NOT NULL,
	key4 INTEGER NOT NULL,
	CONSTRAINT pk_rollup_call_hours PRIMARY KEY (day, hour, line_code)
);

CREATE TABLE rollup_call_outcomes (
	day DATE NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	outcome VARCHAR(24) NOT NULL,
	first_key VARCHAR(1) NOT NULL,
	calls INTEGER NOT NULL,
	CONSTRAINT pk_rollup_call_outcomes PRIMARY KEY (day, line_code, outcome, first_key)
);

CREATE TABLE rollup_messages (
	day DATE NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	kind VARCHAR(20) NOT NULL,
	topic_id INTEGER NOT NULL,
	district SMALLINT NOT NULL,
	unit_id INTEGER NOT NULL,
	registered INTEGER NOT NULL,
	referred INTEGER NOT NULL,
	not_referred_incomplete_message INTEGER NOT NULL,
	not_referred_incomplete_caller INTEGER NOT NULL,
	not_referred_duplicate INTEGER NOT NULL,
	not_referred_irrelevant INTEGER NOT NULL,
	answered INTEGER NOT NULL,
	feedback INTEGER NOT NULL,
	satisfied INTEGER NOT NULL,
	reminders INTEGER NOT NULL,
	CONSTRAINT pk_rollup_messages PRIMARY KEY (day, line_code, kind, topic_id, district, unit_id)
);

CREATE INDEX ix_rollup_messages_unit_id_day ON rollup_messages (unit_id, day);

CREATE TABLE rollup_messages_monthly (
	month DATE NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	kind VARCHAR(20) NOT NULL,
	topic_id INTEGER NOT NULL,
	district SMALLINT NOT NULL,
	unit_id INTEGER NOT NULL,
	registered INTEGER NOT NULL,
	referred INTEGER NOT NULL,
	not_referred_incomplete_message INTEGER NOT NULL,
	not_referred_incomplete_caller INTEGER NOT NULL,
	not_referred_duplicate INTEGER NOT NULL,
	not_referred_irrelevant INTEGER NOT NULL,
	answered INTEGER NOT NULL,
	feedback INTEGER NOT NULL,
	satisfied INTEGER NOT NULL,
	reminders INTEGER NOT NULL,
	CONSTRAINT pk_rollup_messages_monthly PRIMARY KEY (month, line_code, kind, topic_id, district, unit_id)
);

CREATE INDEX ix_rollup_messages_monthly_unit_id_month ON rollup_messages_monthly (unit_id, month);

CREATE TABLE rollup_call_hours_monthly (
	month DATE NOT NULL,
	weekday SMALLINT NOT NULL,
	hour SMALLINT NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	calls INTEGER NOT NULL,
	key4 INTEGER NOT NULL,
	CONSTRAINT pk_rollup_call_hours_monthly PRIMARY KEY (month, weekday, hour, line_code)
);

CREATE TABLE rollup_call_outcomes_monthly (
	month DATE NOT NULL,
	line_code VARCHAR(4) NOT NULL,
	outcome VARCHAR(24) NOT NULL,
	first_key VARCHAR(1) NOT NULL,
	calls INTEGER NOT NULL,
	CONSTRAINT pk_rollup_call_outcomes_monthly PRIMARY KEY (month, line_code, outcome, first_key)
);

-- Rollup triggers for PostgreSQL (migration 0006_rollups), written once: the migration runs this file,
-- ivr/analysis/rollups.py reads it and schema.sql holds it verbatim (tests/test_analysis_rollups.py). Frozen with its migration:
-- a change to the triggers is a new migration with a new file.

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

-- ---------------------------------------------------------------------------
-- 0008: deadlines per kind of message on a topic (override the topic's own)
-- ---------------------------------------------------------------------------
CREATE TABLE topic_deadlines (
	topic_id INTEGER NOT NULL,
	kind VARCHAR(20) NOT NULL,
	due_working_days SMALLINT NOT NULL,
	CONSTRAINT pk_topic_deadlines PRIMARY KEY (topic_id, kind),
	CONSTRAINT ck_topic_deadlines_kind CHECK (kind IN ('criticism', 'suggestion', 'complaint', 'appreciation', 'request')),
	CONSTRAINT ck_topic_deadlines_days CHECK (due_working_days BETWEEN 1 AND 365),
	CONSTRAINT fk_topic_deadlines_topic_id_topics FOREIGN KEY(topic_id) REFERENCES topics (id) ON DELETE CASCADE
);
