-- Removes what 0006_rollup_triggers.postgresql.sql creates (the downgrade of migration 0006_rollups). One statement a line.
DROP TRIGGER IF EXISTS rollup_calls_insert_delete ON calls;
DROP TRIGGER IF EXISTS rollup_calls_update ON calls;
DROP TRIGGER IF EXISTS rollup_messages_insert_delete ON messages;
DROP TRIGGER IF EXISTS rollup_messages_update ON messages;
DROP TRIGGER IF EXISTS rollup_referrals_insert_delete ON referrals;
DROP TRIGGER IF EXISTS rollup_referrals_update ON referrals;
DROP TRIGGER IF EXISTS rollup_replies_insert_delete ON replies;
DROP TRIGGER IF EXISTS rollup_replies_update ON replies;
DROP TRIGGER IF EXISTS rollup_feedback_insert_delete ON feedback;
DROP TRIGGER IF EXISTS rollup_feedback_update ON feedback;
DROP TRIGGER IF EXISTS rollup_reminders_insert_delete ON reminders;
DROP TRIGGER IF EXISTS rollup_reminders_update ON reminders;
DROP FUNCTION IF EXISTS rollup_message_child_changed();
DROP FUNCTION IF EXISTS rollup_message_child(text, integer, integer, boolean);
DROP FUNCTION IF EXISTS rollup_messages_changed();
DROP FUNCTION IF EXISTS rollup_message_apply(messages, integer, integer, integer, integer, integer, integer);
DROP FUNCTION IF EXISTS rollup_calls_changed();
DROP FUNCTION IF EXISTS rollup_call_apply(calls, integer);
