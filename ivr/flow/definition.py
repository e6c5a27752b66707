"""Loading and checking the call-flow definition (`menus.yaml`).

The definition is data: nodes, their prompts and their transitions, per line. Loading
it checks that every transition leads to a node that exists, so a typo in an edited
menu is caught by `ivr flow check` before it reaches a caller.
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


class FlowError(ValueError):
    """The flow definition is malformed; the message says where."""


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


@dataclass(frozen=True)
class LineFlow:
    """The nodes one line runs, shared ones included, and where a call starts."""

    line: str
    start: str
    nodes: dict[str, Node]


@dataclass(frozen=True)
class FlowDefinition:
    """The whole call flow: one LineFlow per line."""

    lines: dict[str, LineFlow]

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
    )
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
        lines[str(line)] = LineFlow(line=str(line), start=start, nodes=nodes)
    definition = FlowDefinition(lines=lines)
    _check_targets(definition)
    return definition


def _check_targets(definition: FlowDefinition) -> None:
    for line, flow in definition.lines.items():
        for node in flow.nodes.values():
            targets = [*node.options.values(), *node.results.values()]
            targets += [t for t in (node.next, node.on_fail, node.on_timeout) if t]
            for t in targets:
                if t.goto not in flow.nodes:
                    raise FlowError(f"line {line}, node {node.name!r}: target {t.goto!r} does not exist")
            for p in (*node.intro, *node.prompts):
                if isinstance(p, tuple) and not re.match(r"^[a-z_][a-z0-9_]*$", p[1]):
                    raise FlowError(f"line {line}, node {node.name!r}: bad variable {p[1]!r}")
            for v in node.args.values():
                if v.startswith("$") and not _VAR_RE.match(v):
                    raise FlowError(f"line {line}, node {node.name!r}: bad variable {v!r}")


def load_flow(path: Path | None = None) -> FlowDefinition:
    """Read and check the flow file (default: the packaged `menus.yaml`)."""
    path = path or DEFAULT_FLOW
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FlowError(f"{path}: {exc}") from None
    return parse_flow(data)
