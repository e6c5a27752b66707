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
