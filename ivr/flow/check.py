"""Checking the call-flow contract: what `ivr flow check` proves before a menu reaches a caller.

Loading the flow already refuses what the engine cannot run (a target or an outcome
that does not exist). This module checks the rest against what the flow depends on,
each given by the caller so the flow package imports nothing above it: the prompt
catalogue, the actions the code implements, the message kinds the code knows, and the
topics in the database. Each problem is one line that says where and what.
"""
from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping

from ivr.flow.definition import FlowDefinition, Node

FAILED = "failed"  # the result every action can end with: the runner turns an error into it


def check_flow(
    flow: FlowDefinition,
    *,
    prompts: Collection[str] | None = None,
    implemented: Collection[str] | None = None,
    kinds: Collection[str] | None = None,
    topics: Mapping[str, str] | None = None,
    lines: Collection[str] | None = None,
) -> list[str]:
    """Every problem in `flow`, one line each; empty when it holds.

    `prompts`: the catalogue's names; `implemented`: the action names the code runs;
    `kinds`: the message kinds; `topics`: topic code → its line; `lines`: the lines the
    code serves. A collaborator left as None is not checked.
    """
    problems: list[str] = []
    if lines is not None:
        known = ", ".join(sorted(lines))
        problems += [f"line {line}: not a line the code serves (known: {known})"
                     for line in flow.lines if line not in lines]
        problems += [f"line {line}: has no menus" for line in sorted(lines) if line not in flow.lines]
    problems += action_problems(flow, implemented)
    if prompts is not None:
        problems += prompt_problems(flow, prompts)
    if kinds is not None:
        problems += [
            f"line {line}, node {node!r}: kind {kind!r} is not a message kind (known: {', '.join(sorted(kinds))})"
            for line, node, kind in flow.assignments("kind")
            if kind not in kinds
        ]
    if topics is not None:
        problems += topic_problems(flow, topics)
    return problems


def action_problems(flow: FlowDefinition, implemented: Collection[str] | None = None) -> list[str]:
    """Actions declared, implemented and complete; every result declared and mapped by every node."""
    problems: list[str] = []
    declared = flow.actions_declared
    for name, declaration in sorted(declared.items()):
        if FAILED not in declaration.results:
            problems.append(f"action {name!r}: its results must include {FAILED!r} (an error ends as {FAILED!r})")
        if implemented is not None and name not in implemented:
            problems.append(f"action {name!r}: declared but not implemented in the code")
        if name not in flow.actions():
            problems.append(f"action {name!r}: declared but no node uses it")
    for where, node in unique_nodes(flow):
        if node.action is None:
            continue
        spec = declared.get(node.action)
        if spec is None:
            problems.append(f"{where}: action {node.action!r} is not declared under 'actions'")
            continue
        problems += [
            f"{where}: result {result!r} is not declared for action {node.action!r}"
            for result in node.results
            if result not in spec.results
        ]
        problems += [
            f"{where}: result {result!r} of action {node.action!r} leads nowhere"
            for result in spec.results
            if result not in node.results
        ]
    return problems


def unique_nodes(flow: FlowDefinition) -> Iterator[tuple[str, Node]]:
    """Each node once, with where it is: `node 'x'` if every line has it alike, else `line L, node 'x'`."""
    for line, lf in flow.lines.items():
        for node in lf.nodes.values():
            alike = [other.nodes.get(node.name) == node for other in flow.lines.values()]
            if all(alike):
                if line == next(iter(flow.lines)):
                    yield f"node {node.name!r}", node
            else:
                yield f"line {line}, node {node.name!r}", node


def prompt_problems(flow: FlowDefinition, prompts: Collection[str]) -> list[str]:
    """Every prompt a node plays is in the catalogue."""
    return [
        f"{where}: prompt {p!r} is not in the catalogue"
        for where, node in unique_nodes(flow)
        for p in (*node.intro, *node.prompts)
        if isinstance(p, str) and p not in prompts
    ]


def topic_problems(flow: FlowDefinition, topics: Mapping[str, str]) -> list[str]:
    """Every topic a menu sets exists, on that line."""
    problems: list[str] = []
    for line, node, topic in flow.assignments("topic"):
        if topic not in topics:
            problems.append(f"line {line}, node {node!r}: topic {topic!r} is not in the database")
        elif topics[topic] != line:
            problems.append(f"line {line}, node {node!r}: topic {topic!r} belongs to line {topics[topic]}")
    return problems
