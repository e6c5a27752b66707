"""Loading the call-flow definition (`menus.yaml`).

The definition is data: nodes, their prompts and their transitions, per line; the
actions with the results each can report; the menu keys every menu shares (repeat,
back); and the outcomes a call can reach, weakest first. Loading refuses what the
engine could not run (a transition to a node that does not exist, an outcome not in
the list); `ivr.flow.check` checks the rest of the contract (prompts, actions and
their results, topics, kinds) against the catalogue, the code and the database.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivr.flow.steps import DIGITS

DEFAULT_FLOW = Path(__file__).resolve().parent / "menus.yaml"
NODE_TYPES = ("menu", "digits", "record", "action", "play", "setvar", "transfer", "hangup")
DYNAMIC_KINDS = ("digits", "number", "date", "amount", "say")
_VAR_RE = re.compile(r"^\$[a-z_][a-z0-9_]*$")
HUNG_UP = "dropped"  # the outcome of a call that ended before reaching any other: always ranked


class FlowError(ValueError):
    """The flow definition is malformed; the message says where (one line per problem)."""


@dataclass(frozen=True)
class Target:
    """Where a transition leads, with variables to set on the way."""

    goto: str
    set: tuple[tuple[str, str], ...] = ()
    retry: bool = False


@dataclass(frozen=True)
class Node:
    """One step of the call flow."""

    name: str
    type: str
    prompts: tuple[Any, ...] = ()
    intro: tuple[Any, ...] = ()
    options: dict[str, Target] = field(default_factory=dict)
    next: Target | None = None
    var: str | None = None
    max_digits: int = 0
    max_seconds: int = 120
    action: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    results: dict[str, Target] = field(default_factory=dict)
    name_var: str | None = None
    value: str | None = None
    target: str | None = None
    outcome: str | None = None
    timeout_ms: int = 5000
    max_attempts: int = 3
    on_fail: Target | None = None
    on_timeout: Target | None = None
    interrupt: str = ""
    heard_after_ms: int | None = None
    on_skip: Target | None = None
    repeat_key: str = ""
    back_key: str = ""


@dataclass(frozen=True)
class LineFlow:
    """The nodes one line runs, shared ones included, and where a call starts."""

    line: str
    start: str
    nodes: dict[str, Node]
    # Named nodes the dialplan re-enters at (`after_queue`: back from an unanswered operators' queue).
    entries: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionSpec:
    """An action the flow may request, and every result it can report."""

    name: str
    results: tuple[str, ...]


@dataclass(frozen=True)
class FlowDefinition:
    """The whole call flow: one LineFlow per line, the declared actions, the outcome ranking."""

    lines: dict[str, LineFlow]
    actions_declared: dict[str, ActionSpec] = field(default_factory=dict)
    outcome_rank: tuple[str, ...] = ()

    def static_prompts(self) -> set[str]:
        """Every catalogue prompt any node can play (dynamic speech excluded)."""
        names: set[str] = set()
        for flow in self.lines.values():
            for node in flow.nodes.values():
                for p in (*node.intro, *node.prompts):
                    if isinstance(p, str):
                        names.add(p)
        return names

    def actions(self) -> set[str]:
        """Every action name the flow can request."""
        return {
            n.action for f in self.lines.values() for n in f.nodes.values() if n.action is not None
        }

    def set_values(self, var: str) -> set[str]:
        """Every literal value a transition gives the variable `var` (e.g. each `kind` or `topic`)."""
        return {value for _, _, value in self.assignments(var)}

    def assignments(self, var: str) -> list[tuple[str, str, str]]:
        """(line, node, value) for every transition that sets `var` to a literal."""
        out: list[tuple[str, str, str]] = []
        for line, flow in self.lines.items():
            for node in flow.nodes.values():
                for target in _targets(node):
                    out += [(line, node.name, v) for k, v in target.set if k == var and not v.startswith("$")]
        return out


def _target(raw: Any, where: str) -> Target:
    if isinstance(raw, str):
        return Target(goto=raw)
    if isinstance(raw, dict) and "goto" in raw:
        unknown = set(raw) - {"goto", "set", "retry"}
        if unknown:
            raise FlowError(f"{where}: unknown target fields {sorted(unknown)}")
        sets = raw.get("set") or {}
        if not isinstance(sets, dict):
            raise FlowError(f"{where}: 'set' must be a mapping")
        return Target(
            goto=str(raw["goto"]),
            set=tuple((str(k), str(v)) for k, v in sets.items()),
            retry=bool(raw.get("retry", False)),
        )
    raise FlowError(f"{where}: a target is a node name or {{goto: node, ...}}, got {raw!r}")


def _prompts(raw: Any, where: str) -> tuple[Any, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise FlowError(f"{where}: prompts must be a list")
    out: list[Any] = []
    for p in raw:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, dict) and len(p) == 1:
            ((kind, var),) = p.items()
            if kind not in DYNAMIC_KINDS:
                raise FlowError(f"{where}: unknown dynamic prompt {kind!r}")
            out.append((kind, str(var)))
        else:
            raise FlowError(f"{where}: bad prompt {p!r}")
    return tuple(out)


def _key(raw: Any, where: str) -> str:
    """A phone key, or '' for none (a menu without repeat or back)."""
    key = "" if raw is None else str(raw)
    if key and (len(key) != 1 or key not in DIGITS):
        raise FlowError(f"{where}: {key!r} is not a phone key")
    return key


def _node(name: str, raw: dict[str, Any], defaults: dict[str, Any]) -> Node:
    where = f"node {name!r}"
    kind = raw.get("type")
    if kind not in NODE_TYPES:
        raise FlowError(f"{where}: unknown type {kind!r}")
    options = {}
    for key, tgt in (raw.get("options") or {}).items():
        key = str(key)
        if len(key) != 1 or key not in DIGITS:
            raise FlowError(f"{where}: option key {key!r} is not a phone key")
        options[key] = _target(tgt, f"{where} option {key}")
    results = {str(k): _target(v, f"{where} result {k}") for k, v in (raw.get("results") or {}).items()}
    args = {str(k): str(v) for k, v in (raw.get("args") or {}).items()}
    timeout = raw.get("timeout_ms") or (
        defaults.get("digits_timeout_ms", 7000) if kind == "digits" else defaults.get("timeout_ms", 5000)
    )
    node = Node(
        name=name,
        type=kind,
        prompts=_prompts(raw.get("prompts"), where),
        intro=_prompts(raw.get("intro"), where),
        options=options,
        next=_target(raw["next"], f"{where} next") if "next" in raw else None,
        var=raw.get("var"),
        max_digits=int(raw.get("max_digits", 0)),
        max_seconds=int(raw.get("max_seconds", 120)),
        action=raw.get("action"),
        args=args,
        results=results,
        name_var=raw.get("name"),
        value=raw.get("value"),
        target=raw.get("target"),
        outcome=raw.get("outcome"),
        timeout_ms=int(timeout),
        max_attempts=int(raw.get("max_attempts", defaults.get("retries", 3))),
        on_fail=_target(raw.get("on_fail") or defaults.get("on_fail", "goodbye"), f"{where} on_fail"),
        on_timeout=_target(raw["on_timeout"], f"{where} on_timeout") if "on_timeout" in raw else None,
        interrupt=_keys(raw.get("interrupt"), f"{where} interrupt"),
        heard_after_ms=int(raw["heard_after_ms"]) if "heard_after_ms" in raw else None,
        on_skip=_target(raw["on_skip"], f"{where} on_skip") if "on_skip" in raw else None,
        repeat_key=_key(raw.get("repeat_key", defaults.get("repeat_key")), f"{where} repeat_key"),
        back_key=_key(raw.get("back_key", defaults.get("back_key")), f"{where} back_key"),
    )
    if (node.on_skip is None) != (node.heard_after_ms is None):
        raise FlowError(f"{where}: 'on_skip' and 'heard_after_ms' go together")
    if node.on_skip is not None and not node.interrupt:
        raise FlowError(f"{where}: 'on_skip' needs 'interrupt' keys that can skip the prompts")
    required = {
        "menu": ("options",),
        "digits": ("var", "next", "max_digits"),
        "record": ("var", "next"),
        "action": ("action", "results"),
        "play": ("next",),
        "setvar": ("name_var", "value", "next"),
        "transfer": ("target",),
        "hangup": (),
    }[kind]
    for attr in required:
        if not getattr(node, attr):
            raise FlowError(f"{where}: a {kind} node needs {attr.replace('name_var', 'name')!r}")
    return node


def _keys(raw: Any, where: str) -> str:
    keys = "" if raw is None else str(raw)
    if any(k not in DIGITS for k in keys):
        raise FlowError(f"{where}: {keys!r} are not all phone keys")
    return keys


def _actions(raw: Any) -> dict[str, ActionSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FlowError("'actions' maps each action name to {results: [...]}")
    out: dict[str, ActionSpec] = {}
    for name, spec in raw.items():
        results = spec.get("results") if isinstance(spec, dict) else None
        if not isinstance(results, list) or not results:
            raise FlowError(f"action {name!r}: declare its results as a list, e.g. {{results: [ok, failed]}}")
        out[str(name)] = ActionSpec(name=str(name), results=tuple(str(r) for r in results))
    return out


def _outcomes(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(set(map(str, raw))) != len(raw):
        raise FlowError("'outcomes' is a list of distinct outcome names, weakest first")
    if HUNG_UP not in map(str, raw):
        raise FlowError(f"'outcomes' must rank {HUNG_UP!r}, the outcome of a call hung up early")
    return tuple(str(o) for o in raw)


def parse_flow(data: dict[str, Any]) -> FlowDefinition:
    """Build and check a FlowDefinition from parsed YAML."""
    if not isinstance(data, dict) or "lines" not in data:
        raise FlowError("the flow needs a 'lines' section")
    defaults = data.get("defaults") or {}
    shared = data.get("nodes") or {}
    lines: dict[str, LineFlow] = {}
    for line, spec in data["lines"].items():
        merged = {**shared, **(spec.get("nodes") or {})}
        nodes = {name: _node(name, raw, defaults) for name, raw in merged.items()}
        start = spec.get("start")
        if start not in nodes:
            raise FlowError(f"line {line}: start node {start!r} does not exist")
        entries = {str(k): str(v) for k, v in (spec.get("entries") or {}).items()}
        lines[str(line)] = LineFlow(line=str(line), start=start, nodes=nodes, entries=entries)
    definition = FlowDefinition(
        lines=lines, actions_declared=_actions(data.get("actions")), outcome_rank=_outcomes(data.get("outcomes"))
    )
    problems = graph_problems(definition)
    if problems:
        raise FlowError("\n".join(problems))
    return definition


def _targets(node: Node) -> list[Target]:
    targets = [*node.options.values(), *node.results.values()]
    return targets + [t for t in (node.next, node.on_fail, node.on_timeout, node.on_skip) if t]


def graph_problems(definition: FlowDefinition) -> list[str]:
    """What the engine could not run: missing targets, bad variables, outcomes not ranked."""
    problems: list[str] = []
    for line, flow in definition.lines.items():
        for entry, target in flow.entries.items():
            if target not in flow.nodes:
                problems.append(f"line {line}: entry {entry!r} names a node that does not exist: {target!r}")
        for node in flow.nodes.values():
            where = f"line {line}, node {node.name!r}"
            for t in _targets(node):
                if t.goto not in flow.nodes:
                    problems.append(f"{where}: target {t.goto!r} does not exist")
            for p in (*node.intro, *node.prompts):
                if isinstance(p, tuple) and not re.match(r"^[a-z_][a-z0-9_]*$", p[1]):
                    problems.append(f"{where}: bad variable {p[1]!r}")
            for v in node.args.values():
                if v.startswith("$") and not _VAR_RE.match(v):
                    problems.append(f"{where}: bad variable {v!r}")
            if node.outcome is not None and node.outcome not in definition.outcome_rank:
                problems.append(f"{where}: outcome {node.outcome!r} is not in the 'outcomes' list")
    return problems


def load_flow(path: Path | None = None) -> FlowDefinition:
    """Read and check the flow file (default: the packaged `menus.yaml`)."""
    path = path or DEFAULT_FLOW
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FlowError(f"{path}: {exc}") from None
    return parse_flow(data)
