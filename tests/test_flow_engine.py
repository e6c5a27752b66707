"""The call-flow engine without any I/O: (node, input) → next step, and the graph."""
from __future__ import annotations

import pytest

from ivr.flow.definition import FlowError, load_flow, parse_flow
from ivr.flow.engine import ActionResult, CallState, End, Engine, stronger_outcome
from ivr.flow.steps import (
    ActionRequest,
    Digits,
    Done,
    Hangup,
    HungUp,
    Key,
    Play,
    ReadDigits,
    ReadKey,
    Record,
    Recorded,
    SetVariable,
    Started,
    Timeout,
    Transfer,
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_flow())


def at(engine: Engine, line: str, node: str, **vars: str) -> CallState:
    """A state parked at `node`, as if the call had just arrived there."""
    state, _ = engine.start(line, vars)
    state.node = node
    engine.advance(state, Started())
    return state


def test_engine_1888_start_plays_welcome_then_main_menu(engine: Engine) -> None:
    state, step = engine.start("1888")
    assert step == ReadKey(
        prompts=("welcome_1888", "call_may_be_recorded", "menu_main_1888"),
        keys="*01249",
        timeout_ms=5000,
    )
    assert state.node == "main"


def test_engine_main_menu_repeat_skips_welcome(engine: Engine) -> None:
    state, _ = engine.start("137")
    step = engine.advance(state, Key("9"))
    assert step == ReadKey(prompts=("menu_main_137",), keys="*01249", timeout_ms=5000)
    assert state.keys == "9"


@pytest.mark.parametrize(
    ("line", "key", "node"),
    [
        ("1888", "1", "leave_message"),
        ("1888", "2", "followup_code"),
        ("1888", "4", "case_menu"),
        ("1888", "0", "operator_check"),
        ("137", "1", "leave_message"),
        ("137", "2", "followup_code"),
        ("137", "4", "case_menu"),
    ],
)
def test_engine_main_menu_keys_lead_to_their_nodes(engine: Engine, line: str, key: str, node: str) -> None:
    state, _ = engine.start(line)
    engine.advance(state, Key(key))
    assert state.node == node


@pytest.mark.parametrize(
    ("key", "kind"), [("1", "criticism"), ("2", "suggestion"), ("3", "complaint"), ("4", "appreciation")]
)
def test_engine_1888_kind_keys_set_kind_and_record(engine: Engine, key: str, kind: str) -> None:
    state = at(engine, "1888", "leave_message")
    step = engine.advance(state, Key(key))
    assert isinstance(step, Record) and step.prompts == ("record_after_beep",) and step.max_seconds == 120
    assert state.vars["kind"] == kind


@pytest.mark.parametrize(
    ("key", "topic"),
    [("1", "cleaning"), ("2", "roads"), ("3", "lighting"), ("4", "green"), ("5", "traffic"), ("6", "other_137")],
)
def test_engine_137_topic_keys_ask_for_district(engine: Engine, key: str, topic: str) -> None:
    state = at(engine, "137", "leave_message")
    step = engine.advance(state, Key(key))
    assert step == ReadDigits(prompts=("enter_district",), max_digits=2, timeout_ms=7000)
    assert state.vars["topic"] == topic and state.vars["kind"] == "request"


def test_engine_137_district_checked_by_action(engine: Engine) -> None:
    state = at(engine, "137", "district", kind="request", topic="roads")
    step = engine.advance(state, Digits("7"))
    assert step == ActionRequest(name="check_district", args={"district": "7"})
    step = engine.on_action(state, ActionResult("ok", {"district": "7"}))
    assert isinstance(step, Record)
    assert state.keys == "7#"


def test_engine_137_bad_district_three_times_goes_to_fail_exit(engine: Engine) -> None:
    state = at(engine, "137", "district")
    for attempt in range(3):
        engine.advance(state, Digits("99"))
        step = engine.on_action(state, ActionResult("invalid"))
        if attempt < 2:
            assert step == Play(prompts=("district_invalid",))
            step = engine.advance(state, Done())
            assert isinstance(step, ReadDigits)
    assert step == ActionRequest(name="operator_available", args={})
    assert state.node == "fail_exit"


def test_engine_record_then_keep_registers_and_reads_code_twice(engine: Engine) -> None:
    state = at(engine, "1888", "leave_message")
    engine.advance(state, Key("3"))
    step = engine.advance(state, Recorded(path="/tmp/x.wav", ended_by="dtmf", duration_ms=4000))
    assert step == ActionRequest(name="check_recording", args={"recording": "/tmp/x.wav"})
    step = engine.on_action(state, ActionResult("speech"))
    assert step == ReadKey(prompts=("review_keep_or_rerecord",), keys="*129", timeout_ms=5000)
    step = engine.advance(state, Key("1"))
    assert step == ActionRequest(
        name="register_message",
        args={"line": "1888", "kind": "complaint", "topic": "", "district": "", "recording": "/tmp/x.wav"},
    )
    step = engine.on_action(state, ActionResult("ok", {"tracking_code": "120"}))
    assert step == SetVariable(name="TRACKING_CODE", value="120")  # before a word is said
    assert state.outcome == "message_registered"
    step = engine.advance(state, Done())
    assert step == Play(prompts=("message_registered",))
    step = engine.advance(state, Done())
    assert isinstance(step, ReadKey)
    assert step.prompts == (
        "your_tracking_code_is", "num_1", "num_2", "num_0", "pause",
        "repeat_tracking_code", "num_1", "num_2", "num_0", "after_message_options",
    )
    assert state.outcome == "message_registered"
    assert state.keys == "3#1"


def test_engine_record_again_discards_first_take(engine: Engine) -> None:
    state = at(engine, "1888", "review_recording", recording="/tmp/a.wav", kind="criticism")
    step = engine.advance(state, Key("2"))
    assert step == ActionRequest(name="discard_recording", args={"recording": "/tmp/a.wav"})
    assert isinstance(engine.on_action(state, ActionResult("ok")), Record)


def test_engine_silent_recording_three_times_says_goodbye(engine: Engine) -> None:
    state = at(engine, "1888", "record_message", kind="criticism")
    for attempt in range(3):
        engine.advance(state, Recorded(path="/tmp/s.wav", ended_by="timeout"))
        step = engine.on_action(state, ActionResult("empty"))
        if attempt < 2:
            assert step == Play(prompts=("no_voice_recorded",))
            assert isinstance(engine.advance(state, Done()), Record)
    assert step == Play(prompts=("goodbye",))
    assert engine.advance(state, Done()) == Hangup()
    assert engine.advance(state, Done()) == End()


def test_engine_hangup_during_recording_leaves_pending_message(engine: Engine) -> None:
    state = at(engine, "1888", "record_message", kind="criticism")
    step = engine.advance(state, Recorded(path="/tmp/p.wav", ended_by="hangup", duration_ms=3000))
    assert step == End()
    assert state.vars["pending_recording"] == "/tmp/p.wav"
    assert state.hung_up and state.outcome == "dropped"


def test_engine_invalid_key_reprompts_then_fails_after_three(engine: Engine) -> None:
    state, _ = engine.start("1888")
    step = engine.advance(state, Key("7"))
    assert step == ReadKey(prompts=("invalid_key", "menu_main_1888"), keys="*01249", timeout_ms=5000)
    step = engine.advance(state, Timeout())
    assert step == ReadKey(prompts=("no_input", "menu_main_1888"), keys="*01249", timeout_ms=5000)
    step = engine.advance(state, Timeout())
    assert step == ActionRequest(name="operator_available", args={})
    step = engine.on_action(state, ActionResult("closed"))
    assert step == Play(prompts=("goodbye",))
    assert state.outcome == "guidance"


def test_engine_fail_exit_in_working_hours_transfers(engine: Engine) -> None:
    state = at(engine, "1888", "fail_exit")
    step = engine.on_action(state, ActionResult("open"))
    assert step == Play(prompts=("connecting_to_operator",))
    assert engine.advance(state, Done()) == Transfer(target="operator")
    assert engine.advance(state, Done()) == End()
    assert state.outcome == "operator"


def test_engine_star_goes_back_to_previous_menu(engine: Engine) -> None:
    state, _ = engine.start("1888")
    engine.advance(state, Key("4"))
    assert state.node == "case_menu"
    step = engine.advance(state, Key("*"))
    assert state.node == "main"
    assert step == ReadKey(prompts=("menu_main_1888",), keys="*01249", timeout_ms=5000)


def test_engine_star_while_typing_goes_back_to_menu(engine: Engine) -> None:
    state, _ = engine.start("1888")
    engine.advance(state, Key("4"))
    engine.advance(state, Key("1"))
    assert state.node == "case_number"
    engine.advance(state, Digits("*"))
    assert state.node == "case_menu"


def test_engine_star_on_main_menu_repeats_it(engine: Engine) -> None:
    state, _ = engine.start("137")
    step = engine.advance(state, Key("*"))
    assert state.node == "main" and step == ReadKey(prompts=("menu_main_137",), keys="*01249", timeout_ms=5000)


def test_engine_followup_invalid_code_gets_one_more_try(engine: Engine) -> None:
    state = at(engine, "1888", "followup_code")
    step = engine.advance(state, Digits("12345"))
    assert step == ActionRequest(name="lookup_message", args={"code": "12345"})
    step = engine.on_action(state, ActionResult("invalid"))
    assert step == Play(prompts=("tracking_code_invalid",))
    assert engine.advance(state, Done()) == ReadDigits(prompts=("enter_tracking_code",), max_digits=12, timeout_ms=7000)
    engine.advance(state, Digits("123456789"))
    step = engine.on_action(state, ActionResult("unknown"))
    assert step == Play(prompts=("tracking_code_unknown",))
    assert isinstance(engine.advance(state, Done()), ReadKey)
    assert state.node == "main"
    assert state.outcome == "follow_up"


REPLY = "rec:2026/01/01/a.wav"


def at_reply(engine: Engine) -> CallState:
    """A follow-up whose message has a spoken reply, just looked up (the status is playing)."""
    state = at(engine, "137", "followup_code")
    engine.advance(state, Digits("123456789"))
    step = engine.on_action(
        state,
        ActionResult("with_reply", {"status_prompts": ["status_answered"], "reply_audio": REPLY, "reply_id": 7}),
    )
    # Keys during the status are not taken: the status prompts ignore them.
    assert step == Play(prompts=("status_answered", "reply_follows"), interrupt="")
    return state


def test_engine_followup_with_reply_asks_satisfaction_only_after_the_reply(engine: Engine) -> None:
    state = at_reply(engine)
    assert engine.advance(state, Done()) == Play(prompts=(REPLY,), interrupt="0123456789*#")
    # Played to its end: heard, then the question.
    assert engine.advance(state, Done(played_ms=1500)) == ActionRequest(name="reply_heard", args={"reply": "7"})
    step = engine.on_action(state, ActionResult("ok"))
    assert step == ReadKey(prompts=("satisfaction_question",), keys="*129", timeout_ms=5000)
    step = engine.advance(state, Key("2"))
    assert step == ActionRequest(name="store_feedback", args={"code": "123456789", "satisfied": "0"})
    assert engine.on_action(state, ActionResult("dissatisfied")) == Play(prompts=("feedback_dissatisfied", "goodbye"))


@pytest.mark.parametrize(
    ("played_ms", "next_step"),
    [
        (0, ReadKey(prompts=("satisfaction_question",), keys="*129", timeout_ms=5000)),
        (4999, ReadKey(prompts=("satisfaction_question",), keys="*129", timeout_ms=5000)),
        (5000, ActionRequest(name="reply_heard", args={"reply": "7"})),
        (60000, ActionRequest(name="reply_heard", args={"reply": "7"})),
    ],
)
def test_engine_reply_skipped_counts_as_heard_only_after_heard_after_ms(
    engine: Engine, played_ms: int, next_step: object
) -> None:
    state = at_reply(engine)
    engine.advance(state, Done())
    # A key during the reply skips it and is not an answer; the question comes next either way.
    assert engine.advance(state, Key("1", played_ms=played_ms)) == next_step
    assert state.vars.get("satisfied") is None and state.keys.endswith("1")


def test_engine_reply_failing_to_mark_heard_still_asks(engine: Engine) -> None:
    state = at_reply(engine)
    engine.advance(state, Done())
    engine.advance(state, Done())
    assert engine.on_action(state, ActionResult("failed")) == ReadKey(
        prompts=("satisfaction_question",), keys="*129", timeout_ms=5000
    )


def test_engine_hangup_during_reply_asks_nothing_and_marks_nothing(engine: Engine) -> None:
    state = at_reply(engine)
    engine.advance(state, Done())
    assert engine.advance(state, HungUp()) == End()
    assert state.outcome == "follow_up"


def test_engine_case_lookup_speaks_report_and_offers_repeat(engine: Engine) -> None:
    state = at(engine, "1888", "case_menu")
    engine.advance(state, Key("2"))
    step = engine.advance(state, Digits("445566"))
    assert step == ActionRequest(name="lookup_case", args={"kind": "article100", "number": "445566"})
    step = engine.on_action(state, ActionResult("found", {"case_prompts": ["case_kind_article100", "stage_appeal"]}))
    assert step == ReadKey(
        prompts=("case_kind_article100", "stage_appeal", "case_after_options"), keys="#*09", timeout_ms=5000
    )
    assert engine.advance(state, Key("#")) == ReadKey(prompts=("menu_main_1888",), keys="*01249", timeout_ms=5000)
    assert state.outcome == "case_lookup"


def test_engine_unknown_case_offers_to_type_again(engine: Engine) -> None:
    state = at(engine, "137", "case_number", case_kind="urban_planning")
    engine.advance(state, Digits("1"))
    step = engine.on_action(state, ActionResult("unknown"))
    assert isinstance(step, ReadKey) and step.prompts == ("case_not_found", "case_not_found_options")
    assert isinstance(engine.advance(state, Key("1")), ReadDigits)


def test_engine_hangup_anywhere_ends_call_as_dropped(engine: Engine) -> None:
    state, _ = engine.start("137")
    assert engine.advance(state, HungUp()) == End()
    assert state.outcome == "dropped" and state.finished
    assert engine.advance(state, Key("1")) == End()


def test_engine_hangup_keeps_stronger_outcome(engine: Engine) -> None:
    state = at(engine, "137", "case_number", case_kind="urban_planning")
    engine.advance(state, Digits("1"))
    engine.on_action(state, ActionResult("found", {"case_prompts": ["stage_paid"]}))
    engine.advance(state, HungUp())
    assert state.outcome == "case_lookup"


def test_engine_state_survives_json_round_trip(engine: Engine) -> None:
    import json

    state, _ = engine.start("1888")
    engine.advance(state, Key("1"))
    again = CallState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert engine.advance(again, Key("2")) == engine.advance(state, Key("2"))


def test_engine_operator_closed_offers_message(engine: Engine) -> None:
    state, _ = engine.start("137")
    engine.advance(state, Key("0"))
    step = engine.on_action(state, ActionResult("closed"))
    assert isinstance(step, ReadKey) and step.prompts == ("operator_closed_leave_message",)
    engine.advance(state, Key("1"))
    assert state.node == "leave_message"


def test_flow_definition_every_target_exists_and_actions_known() -> None:
    flow = load_flow()
    from ivr.runner import CallActions

    for name in flow.actions():
        assert hasattr(CallActions, f"do_{name}"), name


def test_flow_definition_typo_in_target_is_refused() -> None:
    data = {
        "lines": {"137": {"start": "main", "nodes": {"main": {"type": "menu", "options": {"1": "nowhere"}}}}}
    }
    with pytest.raises(FlowError, match="target 'nowhere' does not exist"):
        parse_flow(data)


def test_flow_definition_bad_key_is_refused() -> None:
    data = {"lines": {"137": {"start": "m", "nodes": {"m": {"type": "menu", "options": {"12": "m"}}}}}}
    with pytest.raises(FlowError, match="not a phone key"):
        parse_flow(data)


def test_flow_definition_admin_can_add_a_key_by_data() -> None:
    import yaml

    from ivr.flow.definition import DEFAULT_FLOW

    data = yaml.safe_load(DEFAULT_FLOW.read_text(encoding="utf-8"))
    data["lines"]["137"]["nodes"]["main"]["options"]["3"] = "goodbye"
    engine = Engine(parse_flow(data))
    state, first = engine.start("137")
    assert isinstance(first, ReadKey) and "3" in first.keys
    assert engine.advance(state, Key("3")) == Play(prompts=("goodbye",))


def test_engine_digits_filling_the_field_log_no_hash(engine: Engine) -> None:
    state = at(engine, "137", "district")
    engine.advance(state, Digits("07"))
    assert state.keys == "07"
    state = at(engine, "137", "district")
    engine.advance(state, Digits("7"))
    assert state.keys == "7#"
    state = at(engine, "137", "district")
    engine.advance(state, Digits("7", timed_out=True))
    assert state.keys == "7"


# ---- what the menus state: repeat and back keys, the outcome ranking -----------------------


def _tiny(defaults: dict[str, object], outcomes: list[str] | None = None) -> Engine:
    data: dict[str, object] = {
        "defaults": defaults,
        "lines": {"137": {"start": "main", "nodes": {
            "main": {"type": "menu", "prompts": ["menu_main_137"], "options": {"1": "sub"}},
            "sub": {"type": "menu", "prompts": ["menu_case_kind"], "options": {"2": "bye"}},
            "bye": {"type": "hangup", "outcome": "guidance", "prompts": ["goodbye"]},
            "fail": {"type": "hangup", "outcome": "operator"},
        }}},
    }
    if outcomes is not None:
        data["outcomes"] = outcomes
    return Engine(parse_flow(data))


def test_engine_repeat_and_back_keys_come_from_the_menus() -> None:
    engine = _tiny({"repeat_key": "0", "back_key": "#", "on_fail": "fail"}, ["dropped", "guidance", "operator"])
    state, first = engine.start("137")
    assert first == ReadKey(prompts=("menu_main_137",), keys="#01", timeout_ms=5000)
    assert engine.advance(state, Key("1")) == ReadKey(prompts=("menu_case_kind",), keys="#02", timeout_ms=5000)
    assert engine.advance(state, Key("0")) == ReadKey(prompts=("menu_case_kind",), keys="#02", timeout_ms=5000)
    assert engine.advance(state, Key("#")) == ReadKey(prompts=("menu_main_137",), keys="#01", timeout_ms=5000)
    # 9 and * mean nothing here: an invalid key.
    assert engine.advance(state, Key("9")) == ReadKey(prompts=("invalid_key", "menu_main_137"), keys="#01",
                                                      timeout_ms=5000)


def test_engine_menus_without_repeat_or_back_keys_offer_only_their_options() -> None:
    engine = _tiny({"on_fail": "fail"}, ["dropped", "guidance", "operator"])
    _, first = engine.start("137")
    assert isinstance(first, ReadKey) and first.keys == "1"


def test_engine_outcome_ranking_comes_from_the_menus() -> None:
    for outcomes, expected in ((["dropped", "guidance", "operator"], "operator"),
                               (["dropped", "operator", "guidance"], "guidance")):
        engine = _tiny({"on_fail": "fail"}, outcomes)
        state, _ = engine.start("137")
        state.outcome = "operator"  # reached earlier in the call
        engine.advance(state, Key("1"))
        engine.advance(state, Key("2"))  # reaches `bye`: guidance
        assert state.outcome == expected


def test_flow_definition_outcome_not_in_the_list_is_refused() -> None:
    with pytest.raises(FlowError, match="outcome 'guidance' is not in the 'outcomes' list"):
        _tiny({"on_fail": "fail"})


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, None),
        (None, "guidance", "guidance"),
        ("operator", None, "operator"),
        ("guidance", "operator", "operator"),
        ("message_registered", "dropped", "message_registered"),
        ("failed", "operator", "failed"),  # outside the ranking: an error or an operator's word wins
        ("operator", "failed", "failed"),
        ("failed", "spam", "spam"),
    ],
)
def test_stronger_outcome_by_the_flows_ranking(a: str | None, b: str | None, expected: str | None) -> None:
    assert stronger_outcome(load_flow().outcome_rank, a, b) == expected
