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
	CONSTRAINT ck_calls_driver CHECK (driver IN ('agi', 'twilio')),
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
