"""The flow contract: broken menus → the one line `ivr flow check` prints for each problem."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from ivr.cli import main
from ivr.flow.check import check_flow
from ivr.flow.definition import DEFAULT_FLOW, FlowError, parse_flow
from ivr.models import LINES, MESSAGE_KINDS, Topic
from ivr.prompts import load_catalogue
from ivr.runner import CallActions

IMPLEMENTED = {name[3:] for name in dir(CallActions) if name.startswith("do_")}
PROMPTS = set(load_catalogue(Path(__file__).resolve().parents[1] / "recordings" / "catalogue.yaml"))
TOPICS_137 = ("cleaning", "roads", "lighting", "green", "traffic", "other_137")
TOPICS = {code: "137" for code in TOPICS_137}
Menus = dict[str, Any]


def packaged() -> Menus:
    return yaml.safe_load(DEFAULT_FLOW.read_text(encoding="utf-8"))


def problems_of(data: Menus, topics: dict[str, str] | None = None) -> list[str]:
    """What the whole check says about `data`, loading included."""
    try:
        flow = parse_flow(data)
    except FlowError as exc:
        return str(exc).splitlines()
    return check_flow(flow, prompts=PROMPTS, implemented=IMPLEMENTED, kinds=MESSAGE_KINDS,
                      topics=TOPICS if topics is None else topics, lines=LINES)


def node(data: Menus, name: str, line: str | None = None) -> dict[str, Any]:
    return data["lines"][line]["nodes"][name] if line else data["nodes"][name]


def _set(path: str, value: Any) -> Callable[[Menus], None]:
    """A mutation that sets data[a][b]...[z] = value (dots separate keys)."""
    def mutate(data: Menus) -> None:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    return mutate


def _del(path: str) -> Callable[[Menus], None]:
    def mutate(data: Menus) -> None:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[key]
        del target[last]
    return mutate


BROKEN: list[tuple[str, Callable[[Menus], None], list[str]]] = [
    ("unknown line", lambda d: d["lines"].update({"1999": d["lines"]["1888"]}),
     ["line 1999: not a line the code serves (known: 137, 1888)"]),
    ("line without menus", _del("lines.1888"), ["line 1888: has no menus"]),
    ("target", _set("lines.1888.nodes.leave_message.options.1", "nowhere"),
     ["line 1888, node 'leave_message': target 'nowhere' does not exist"]),
    ("on_skip target", _set("nodes.play_reply.on_skip", "nowhere"),
     ["line 1888, node 'play_reply': target 'nowhere' does not exist",
      "line 137, node 'play_reply': target 'nowhere' does not exist"]),
    ("key", _set("lines.137.nodes.main.options", {"12": "goodbye"}),
     ["node 'main': option key '12' is not a phone key"]),
    ("repeat key", _set("defaults.repeat_key", "99"),
     ["node 'record_message' repeat_key: '99' is not a phone key"]),
    ("skip keys", _set("nodes.play_reply.interrupt", "1a"),
     ["node 'play_reply' interrupt: '1a' are not all phone keys"]),
    ("skip without a threshold", _del("nodes.play_reply.heard_after_ms"),
     ["node 'play_reply': 'on_skip' and 'heard_after_ms' go together"]),
    ("prompt", _set("lines.1888.nodes.main.prompts", ["menu_main_1888", "menu_main_9999"]),
     ["line 1888, node 'main': prompt 'menu_main_9999' is not in the catalogue"]),
    ("shared prompt", _set("nodes.goodbye.prompts", ["goodbye_forever"]),
     ["node 'goodbye': prompt 'goodbye_forever' is not in the catalogue"]),
    ("outcome", _set("nodes.goodbye.outcome", "won"),
     ["line 1888, node 'goodbye': outcome 'won' is not in the 'outcomes' list",
      "line 137, node 'goodbye': outcome 'won' is not in the 'outcomes' list"]),
    ("outcomes list", _set("outcomes", ["dropped", "dropped"]),
     ["'outcomes' is a list of distinct outcome names, weakest first"]),
    ("outcomes without dropped", _set("outcomes", ["guidance", "operator", "case_lookup", "follow_up",
                                                   "message_registered"]),
     ["'outcomes' must rank 'dropped', the outcome of a call hung up early"]),
    ("action not declared", _del("actions.lookup_case"),
     ["node 'lookup_case': action 'lookup_case' is not declared under 'actions'"]),
    ("action not implemented", lambda d: (
        d["actions"].update(send_fax={"results": ["ok", "failed"]}),
        d["nodes"].update(fax={"type": "action", "action": "send_fax",
                               "results": {"ok": "goodbye", "failed": "goodbye"}}),
    ), ["action 'send_fax': declared but not implemented in the code"]),
    ("action declared, never used", _set("actions.send_fax", {"results": ["ok", "failed"]}),
     ["action 'send_fax': declared but not implemented in the code",
      "action 'send_fax': declared but no node uses it"]),
    ("action without results", _set("actions.lookup_case", {"results": []}),
     ["action 'lookup_case': declare its results as a list, e.g. {results: [ok, failed]}"]),
    ("no failed result", _set("actions.lookup_case.results", ["found", "unknown"]),
     ["action 'lookup_case': its results must include 'failed' (an error ends as 'failed')",
      "node 'lookup_case': result 'failed' is not declared for action 'lookup_case'"]),
    ("result not declared", _set("nodes.store_feedback.results.maybe", "goodbye"),
     ["node 'store_feedback': result 'maybe' is not declared for action 'store_feedback'"]),
    ("result leads nowhere", _del("nodes.lookup_message.results.failed"),
     ["node 'lookup_message': result 'failed' of action 'lookup_message' leads nowhere"]),
    ("line's own action node", _del("lines.137.nodes.check_district.results.failed"),
     ["line 137, node 'check_district': result 'failed' of action 'check_district' leads nowhere"]),
    ("kind", _set("lines.1888.nodes.leave_message.options.4", {"goto": "record_message", "set": {"kind": "praise"}}),
     ["line 1888, node 'leave_message': kind 'praise' is not a message kind "
      "(known: appreciation, complaint, criticism, request, suggestion)"]),
    ("topic", _set("lines.137.nodes.leave_message.options.3.set.topic", "parks"),
     ["line 137, node 'leave_message': topic 'parks' is not in the database"]),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in BROKEN], ids=[i for i, _, _ in BROKEN])
def test_flow_check_broken_menus_give_one_line_per_problem(mutate: Callable[[Menus], None], expected: list[str]) -> None:
    data = packaged()
    mutate(data)
    assert problems_of(data) == expected


def test_flow_check_packaged_menus_hold_the_whole_contract() -> None:
    assert problems_of(packaged()) == []


def test_flow_check_topic_of_the_other_line_is_refused() -> None:
    assert problems_of(packaged(), topics={**TOPICS, "lighting": "1888"}) == [
        "line 137, node 'leave_message': topic 'lighting' belongs to line 1888"
    ]


def test_flow_check_unchecked_collaborators_are_skipped() -> None:
    data = packaged()
    data["lines"]["137"]["nodes"]["leave_message"]["options"]["3"]["set"]["topic"] = "parks"
    assert check_flow(parse_flow(data)) == []  # no catalogue, code, kinds or topics given


def test_flow_definition_states_keys_and_ranking_the_engine_uses() -> None:
    flow = parse_flow(packaged())
    assert flow.outcome_rank[0] == "dropped" and flow.outcome_rank[-1] == "message_registered"
    main = flow.lines["137"].nodes["main"]
    assert (main.repeat_key, main.back_key) == ("9", "*")
    assert set(flow.actions_declared) == flow.actions() <= IMPLEMENTED
    assert all("failed" in spec.results for spec in flow.actions_declared.values())


# ---- the command ---------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the embedded default database (not created yet)."""
    monkeypatch.chdir(tmp_path)
    for key in ("IVR_DATABASE_URL", "IVR_DATA_DIR", "IVR_AGI_PORT", "IVR_VAR_DIR"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def ivr(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def write_menus(path: Path, data: Menus) -> Path:
    path.write_text(yaml.safe_dump(copy.deepcopy(data), allow_unicode=True), encoding="utf-8")
    return path


def add_topics(workdir: Path, codes: tuple[str, ...]) -> None:
    engine = create_engine(f"sqlite:///{workdir / 'var' / 'ivr.sqlite3'}")
    with Session(engine) as s, s.begin():
        for code in codes:
            s.add(Topic(code=code, line_code="137", name=code, due_working_days=7))
    engine.dispose()


def test_cli_flow_check_without_database_says_topics_were_not_checked(workdir: Path) -> None:
    code, out, err = ivr("flow", "check")
    assert code == 0 and out.startswith("flow ok: lines 137, 1888") and "(topics not checked)" in out
    assert err == "ivr: topics not checked: database not readable (FileNotFoundError)\n"
    assert not (workdir / "var" / "ivr.sqlite3").exists()  # checking creates no database


def test_cli_flow_check_database_without_topics_says_so(workdir: Path) -> None:
    assert ivr("db", "upgrade")[0] == 0
    code, _, err = ivr("flow", "check")
    assert code == 0 and err == "ivr: topics not checked: the database has no topics\n"


def test_cli_flow_check_fails_on_a_topic_missing_from_the_database(workdir: Path) -> None:
    assert ivr("db", "upgrade")[0] == 0
    add_topics(workdir, tuple(t for t in TOPICS_137 if t != "lighting"))
    code, out, err = ivr("flow", "check")
    assert (code, out) == (1, "")
    assert err == "ivr: error: line 137, node 'leave_message': topic 'lighting' is not in the database\n"
    add_topics(workdir, ("lighting",))
    code, out, err = ivr("flow", "check")
    assert code == 0 and err == "" and "topics not checked" not in out


def test_cli_flow_check_edited_menus_print_one_line_per_problem(workdir: Path) -> None:
    data = packaged()
    data["nodes"]["goodbye"]["prompts"] = ["goodbye_forever"]
    del data["nodes"]["lookup_message"]["results"]["failed"]
    code, _, err = ivr("flow", "check", "--menus", str(write_menus(workdir / "menus.yaml", data)))
    assert code == 1
    assert err.splitlines()[1:] == [
        "ivr: error: node 'lookup_message': result 'failed' of action 'lookup_message' leads nowhere",
        "ivr: error: node 'goodbye': prompt 'goodbye_forever' is not in the catalogue",
    ]
    data["nodes"]["goodbye"]["next"] = "nowhere"
    data["nodes"]["goodbye"]["outcome"] = "won"
    code, _, err = ivr("flow", "check", "--menus", str(write_menus(workdir / "menus.yaml", data)))
    assert code == 1 and err.splitlines() == [  # safe_dump wrote the lines in sorted order
        "ivr: error: line 137, node 'goodbye': target 'nowhere' does not exist",
        "ivr: error: line 137, node 'goodbye': outcome 'won' is not in the 'outcomes' list",
        "ivr: error: line 1888, node 'goodbye': target 'nowhere' does not exist",
        "ivr: error: line 1888, node 'goodbye': outcome 'won' is not in the 'outcomes' list",
    ]
