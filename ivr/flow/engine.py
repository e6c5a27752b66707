"""The call-flow engine: given the state of a call and what just happened, what next.

Pure: no I/O, no clock, no database. A driver feeds it events (`Key`, `Digits`,
`Recorded`, `HungUp`, ...) and carries out the instructions it returns; business work
comes back as an `ActionRequest` that the caller runs and answers with `on_action`.
The state is plain data (`CallState.to_dict`) so a webhook driver can keep it between
requests.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from ivr.flow.definition import HUNG_UP, FlowDefinition, LineFlow, Node, Target
from ivr.flow.steps import (
    ActionRequest,
    Digits,
    Done,
    Event,
    Hangup,
    HungUp,
    Instruction,
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
from ivr.speech import persian


def stronger_outcome(rank: Sequence[str], a: str | None, b: str | None) -> str | None:
    """Of two outcomes of one call, the one that says more.

    `rank` lists the flow's outcomes weakest first (`FlowDefinition.outcome_rank`); an
    outcome outside it (`failed`, or one an operator set) wins over a ranked one, and
    of two such, the later (`b`).
    """
    if a is None or b is None:
        return a or b
    if a in rank and b in rank:
        return max(a, b, key=rank.index)
    return b if b not in rank else a


@dataclass(frozen=True)
class End:
    """The flow is over; the driver closes the call."""


Step = Instruction | ActionRequest | End


@dataclass(frozen=True)
class ActionResult:
    """What an action reports back: an outcome naming the transition, and variables."""

    outcome: str
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallState:
    """Everything the engine knows about one call; plain data, JSON-serialisable."""

    line: str
    node: str
    vars: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)
    intro_done: list[str] = field(default_factory=list)
    keys: str = ""
    outcome: str | None = None
    phase: int = 0
    finished: bool = False
    hung_up: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The state as plain data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallState:
        """Rebuild a state saved with `to_dict`."""
        return cls(**data)


class FlowEngineError(RuntimeError):
    """The engine got an event it cannot place (a driver bug)."""


class Engine:
    """Runs a FlowDefinition. One engine serves every call; it keeps no per-call data."""

    def __init__(
        self, flow: FlowDefinition, currency: str = "rial", code_groups: tuple[int, ...] = ()
    ) -> None:
        self.flow = flow
        self.currency = currency
        # Sizes of the groups a {digits: var} prompt is read in (Settings.code_groups).
        self.code_groups = code_groups

    # ---- public ---------------------------------------------------------------------

    def start(self, line: str, vars: dict[str, Any] | None = None) -> tuple[CallState, Step]:
        """A new call on `line`: its state and the first step."""
        if line not in self.flow.lines:
            raise KeyError(f"no flow for line {line!r}")
        lf = self.flow.lines[line]
        state = CallState(line=line, node=lf.start, vars={"line": line, **(vars or {})})
        return state, self._enter(state, lf.start)

    def advance(self, state: CallState, event: Event) -> Step:
        """Apply a driver event to the state and return the next step."""
        if state.finished:
            return End()
        if isinstance(event, HungUp):
            return self._hung_up(state)
        node = self._node(state, state.node)
        if isinstance(event, Started):
            return self._enter(state, node.name)
        handler = getattr(self, f"_on_{node.type}")
        return handler(state, node, event)

    def on_action(self, state: CallState, result: ActionResult) -> Step:
        """Apply the result of the ActionRequest the engine last returned."""
        node = self._node(state, state.node)
        if node.type != "action":
            raise FlowEngineError(f"action result at non-action node {node.name!r}")
        state.vars.update(result.vars)
        target = node.results.get(result.outcome)
        if target is None:
            raise FlowEngineError(f"node {node.name!r}: no transition for outcome {result.outcome!r}")
        return self._go(state, target)

    # ---- transitions ----------------------------------------------------------------

    def _lf(self, state: CallState) -> LineFlow:
        return self.flow.lines[state.line]

    def _node(self, state: CallState, name: str) -> Node:
        return self._lf(state).nodes[name]

    def _go(self, state: CallState, target: Target) -> Step:
        for k, v in target.set:
            state.vars[k] = v
        if target.retry:
            n = state.attempts.get(target.goto, 0) + 1
            state.attempts[target.goto] = n
            node = self._node(state, target.goto)
            if n >= node.max_attempts and node.on_fail is not None:
                state.attempts.pop(target.goto, None)
                return self._go(state, node.on_fail)
        else:
            state.attempts.pop(target.goto, None)
        return self._enter(state, target.goto)

    def _record_outcome(self, state: CallState, outcome: str | None) -> None:
        if outcome is None:
            return
        state.outcome = stronger_outcome(self.flow.outcome_rank, state.outcome, outcome)

    def _enter(self, state: CallState, name: str) -> Step:
        node = self._node(state, name)
        state.node = name
        state.phase = 0
        if node.type == "menu":
            if name in state.stack:
                del state.stack[state.stack.index(name) + 1 :]
            else:
                state.stack.append(name)
        if node.type != "action":
            self._record_outcome(state, node.outcome)
        return self._instruction(state, node)

    def _instruction(self, state: CallState, node: Node, extra: tuple[str, ...] = ()) -> Step:
        t = node.type
        if t == "menu":
            prompts = extra
            if node.intro and node.name not in state.intro_done:
                state.intro_done.append(node.name)
                prompts += self._resolve(state, node.intro)
            prompts += self._resolve(state, node.prompts)
            keys = "".join(sorted((set(node.options) | {node.repeat_key, node.back_key}) - {""}))
            return ReadKey(prompts=prompts, keys=keys, timeout_ms=node.timeout_ms)
        if t == "digits":
            return ReadDigits(
                prompts=extra + self._resolve(state, node.prompts),
                max_digits=node.max_digits,
                timeout_ms=node.timeout_ms,
            )
        if t == "record":
            return Record(prompts=self._resolve(state, node.prompts), max_seconds=node.max_seconds)
        if t == "action":
            self._record_outcome(state, node.outcome)
            args = {k: self._value(state, v) for k, v in node.args.items()}
            return ActionRequest(name=node.action or "", args=args)
        if t == "play":
            return Play(prompts=self._resolve(state, node.prompts), interrupt=node.interrupt)
        if t == "setvar":
            return SetVariable(name=node.name_var or "", value=self._value(state, node.value or ""))
        if t in ("transfer", "hangup"):
            if state.phase == 0 and node.prompts:
                return Play(prompts=self._resolve(state, node.prompts))
            state.phase = 1
            return Transfer(target=node.target or "operator") if t == "transfer" else Hangup()
        raise FlowEngineError(f"unknown node type {t!r}")  # pragma: no cover - checked on load

    # ---- events per node type -------------------------------------------------------

    def _retry(self, state: CallState, node: Node, prompt: str) -> Step:
        n = state.attempts.get(node.name, 0) + 1
        state.attempts[node.name] = n
        if n >= node.max_attempts and node.on_fail is not None:
            state.attempts.pop(node.name, None)
            return self._go(state, node.on_fail)
        return self._instruction(state, node, extra=(prompt,))

    def _back(self, state: CallState, node: Node) -> Step:
        stack = state.stack
        if node.type == "menu" and len(stack) >= 2 and stack[-1] == node.name:
            stack.pop()
        if stack and stack[-1] != node.name:
            return self._enter(state, stack[-1])
        return self._instruction(state, node)

    def _on_menu(self, state: CallState, node: Node, event: Event) -> Step:
        if isinstance(event, Key):
            state.keys += event.key
            if event.key in node.options:
                return self._go(state, node.options[event.key])
            if event.key == node.repeat_key:
                return self._instruction(state, node)
            if event.key == node.back_key:
                return self._back(state, node)
            return self._retry(state, node, "invalid_key")
        if isinstance(event, Timeout | Done):
            if node.on_timeout is not None:
                return self._go(state, node.on_timeout)
            return self._retry(state, node, "no_input")
        raise FlowEngineError(f"menu {node.name!r} got {event!r}")

    def _on_digits(self, state: CallState, node: Node, event: Event) -> Step:
        if not isinstance(event, Digits):
            raise FlowEngineError(f"digits node {node.name!r} got {event!r}")
        typed = event.digits
        # `#` ended the input unless it timed out or the digits filled the field.
        ended_by_hash = not event.timed_out and len(typed) < node.max_digits
        state.keys += typed + ("#" if ended_by_hash else "")
        if node.back_key and typed.startswith(node.back_key):
            return self._back(state, node)
        typed = typed.replace("*", "")  # a star is never part of a number or a code
        if not typed:
            return self._retry(state, node, "no_input")
        state.vars[node.var or ""] = typed
        assert node.next is not None
        return self._go(state, node.next)

    def _on_record(self, state: CallState, node: Node, event: Event) -> Step:
        if not isinstance(event, Recorded):
            raise FlowEngineError(f"record node {node.name!r} got {event!r}")
        state.vars[node.var or "recording"] = event.path
        state.vars["recording_ms"] = event.duration_ms
        if event.ended_by == "dtmf":
            state.keys += "#"
        if event.ended_by == "hangup":
            # Kept by the driver's finish step: whoever spoke and hung up keeps the message.
            state.vars["pending_recording"] = event.path
            return self._hung_up(state)
        assert node.next is not None
        return self._go(state, node.next)

    def _on_play(self, state: CallState, node: Node, event: Event) -> Step:
        assert node.next is not None
        if isinstance(event, Key):
            # A key skipped the prompts: heard if they played long enough, else `on_skip`.
            state.keys += event.key
            if node.on_skip is not None and event.played_ms < (node.heard_after_ms or 0):
                return self._go(state, node.on_skip)
        return self._go(state, node.next)

    def _on_setvar(self, state: CallState, node: Node, event: Event) -> Step:
        assert node.next is not None
        return self._go(state, node.next)

    def _on_transfer(self, state: CallState, node: Node, event: Event) -> Step:
        if state.phase == 0 and node.prompts:
            state.phase = 1
            return Transfer(target=node.target or "operator")
        state.finished = True
        return End()

    def _on_hangup(self, state: CallState, node: Node, event: Event) -> Step:
        if state.phase == 0 and node.prompts:
            state.phase = 1
            return Hangup()
        state.finished = True
        return End()

    def _on_action(self, state: CallState, node: Node, event: Event) -> Step:
        raise FlowEngineError(f"action node {node.name!r} expects on_action, got {event!r}")

    def _hung_up(self, state: CallState) -> Step:
        state.finished = True
        state.hung_up = True
        if state.outcome is None:
            state.outcome = HUNG_UP
        return End()

    # ---- prompts --------------------------------------------------------------------

    def _value(self, state: CallState, raw: str) -> str:
        if raw.startswith("$"):
            v = state.vars.get(raw[1:])
            return "" if v is None else str(v)
        return raw

    def _resolve(self, state: CallState, prompts: tuple[Any, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for p in prompts:
            if isinstance(p, str):
                out.append(p)
                continue
            kind, var = p
            value = state.vars.get(var)
            if value in (None, ""):
                continue
            if kind == "say":
                out.extend([value] if isinstance(value, str) else value)
            elif kind == "digits":
                out.extend(persian.digits(str(value), self.code_groups))
            elif kind == "number":
                out.extend(persian.number(int(value)))
            elif kind == "amount":
                out.extend(persian.amount(int(value), self.currency))
            elif kind == "date":
                out.extend(persian.jalali_date(date.fromisoformat(str(value))))
        return tuple(out)
