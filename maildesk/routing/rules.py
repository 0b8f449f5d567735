"""Routing rules: compile `[[rules]]` from config, evaluate them against a parsed message.

A rule is `match` (every condition must hold) plus `set` (what it decides) plus optional
`stop`. Rules run in order; a later match refines an earlier one unless an earlier rule
stopped evaluation. Evaluation is pure: no database, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

PRIORITIES = ("P1", "P2", "P3", "P4")
TYPES = ("incident", "request", "problem", "change")
MATCH_FIELDS = ("subject", "from", "to", "cc", "recipients", "body")
SET_KEYS = ("queue", "priority", "type", "category", "assignee", "tags")
RULE_KEYS = ("name", "match", "set", "stop")


class Routable(Protocol):
    """What the router reads from a message."""

    @property
    def subject(self) -> str: ...
    @property
    def from_addr(self) -> str: ...
    @property
    def to(self) -> tuple[str, ...]: ...
    @property
    def cc(self) -> tuple[str, ...]: ...
    @property
    def body_text(self) -> str: ...


@dataclass(frozen=True)
class Condition:
    field: str
    pattern: re.Pattern[str]

    def values(self, msg: Routable) -> tuple[str, ...]:
        if self.field == "subject":
            return (msg.subject,)
        if self.field == "from":
            return (msg.from_addr,)
        if self.field == "to":
            return msg.to
        if self.field == "cc":
            return msg.cc
        if self.field == "recipients":
            return (*msg.to, *msg.cc)
        return (msg.body_text,)

    def holds(self, msg: Routable) -> bool:
        return any(self.pattern.search(v) for v in self.values(msg))


@dataclass(frozen=True, kw_only=True)
class Actions:
    queue: str | None = None
    priority: str | None = None
    type: str | None = None
    category: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    actions: Actions
    stop: bool = False


@dataclass(frozen=True, kw_only=True)
class RuleResult:
    """One rule's outcome for one message, with why, for `route test`."""

    rule: str
    matched: bool
    reason: str
    skipped: bool = False


@dataclass(frozen=True, kw_only=True)
class RoutingDecision:
    queue: str
    priority: str = "P3"
    type: str = "incident"
    category: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()
    results: tuple[RuleResult, ...] = field(default=(), compare=False)


def route(msg: Routable, rules: Iterable[Rule], default_queue: str) -> RoutingDecision:
    """Apply rules in order and return the decision, recording which rules matched and why."""
    decision = RoutingDecision(queue=default_queue)
    results: list[RuleResult] = []
    stopped_by: str | None = None
    for rule in rules:
        if stopped_by is not None:
            results.append(
                RuleResult(
                    rule=rule.name, matched=False, skipped=True, reason=f"stopped by {stopped_by!r}"
                )
            )
            continue
        failed = next((c for c in rule.conditions if not c.holds(msg)), None)
        if failed is not None:
            reason = f"{failed.field} does not match /{failed.pattern.pattern}/"
            results.append(RuleResult(rule=rule.name, matched=False, reason=reason))
            continue
        decision = _apply(decision, rule)
        results.append(RuleResult(rule=rule.name, matched=True, reason=_why(rule)))
        if rule.stop:
            stopped_by = rule.name
    return replace(decision, results=tuple(results))


def _apply(d: RoutingDecision, rule: Rule) -> RoutingDecision:
    a = rule.actions
    return replace(
        d,
        queue=a.queue or d.queue,
        priority=a.priority or d.priority,
        type=a.type or d.type,
        category=a.category or d.category,
        assignee=a.assignee or d.assignee,
        tags=d.tags + tuple(t for t in a.tags if t not in d.tags),
        matched=(*d.matched, rule.name),
    )


def _why(rule: Rule) -> str:
    if not rule.conditions:
        return "no conditions (always matches)"
    return " and ".join(f"{c.field} matches /{c.pattern.pattern}/" for c in rule.conditions)


def compile_rules(
    tables: list[dict[str, Any]], *, queues: set[str], agents: set[str]
) -> tuple[list[Rule], list[tuple[str, str]]]:
    """Compile rule tables; return the rules and every problem as (place, message)."""
    rules: list[Rule] = []
    problems: list[tuple[str, str]] = []
    names: set[str] = set()
    for i, t in enumerate(tables):
        name = t.get("name")
        if not isinstance(name, str) or not name.strip():
            place = f"[[rules]] #{i + 1}"
            problems.append((f"{place} key 'name'", "is required and must be a non-empty string"))
            name = f"#{i + 1}"
        else:
            place = f"[[rules]] '{name}'"
            if name in names:
                problems.append((place, "duplicate rule name"))
            names.add(name)
        for key in t:
            if key not in RULE_KEYS:
                problems.append((f"{place} key '{key}'", "unknown key"))
        conditions = _conditions(t.get("match", {}), place, problems)
        actions = _actions(t.get("set", {}), place, problems, queues=queues, agents=agents)
        stop = t.get("stop", False)
        if not isinstance(stop, bool):
            problems.append((f"{place} key 'stop'", f"must be true or false, got {stop!r}"))
            stop = False
        rules.append(Rule(name=name, conditions=conditions, actions=actions, stop=stop))
    return rules, problems


def _conditions(
    match: object, place: str, problems: list[tuple[str, str]]
) -> tuple[Condition, ...]:
    if not isinstance(match, Mapping):
        problems.append((f"{place} key 'match'", "must be a table of field = regex"))
        return ()
    out = []
    for key, value in match.items():
        where = f"{place} key 'match.{key}'"
        if key not in MATCH_FIELDS:
            problems.append((where, f"unknown field (known: {', '.join(MATCH_FIELDS)})"))
            continue
        if not isinstance(value, str):
            problems.append((where, f"must be a regular expression string, got {value!r}"))
            continue
        try:
            out.append(Condition(field=key, pattern=re.compile(value)))
        except re.error as exc:
            problems.append((where, f"invalid regular expression {value!r}: {exc}"))
    return tuple(out)


def _actions(
    values: object,
    place: str,
    problems: list[tuple[str, str]],
    *,
    queues: set[str],
    agents: set[str],
) -> Actions:
    if not isinstance(values, Mapping):
        problems.append((f"{place} key 'set'", "must be a table"))
        return Actions()
    allowed: dict[str, Iterable[str] | None] = {
        "queue": sorted(queues),
        "priority": PRIORITIES,
        "type": TYPES,
        "category": None,
        "assignee": sorted(agents),
    }
    found: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{place} key 'set.{key}'"
        if key not in SET_KEYS:
            problems.append((where, f"unknown action (known: {', '.join(SET_KEYS)})"))
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append((where, f"must be a list of strings, got {value!r}"))
            else:
                found["tags"] = tuple(value)
        elif not isinstance(value, str):
            problems.append((where, f"must be a string, got {value!r}"))
        else:
            choices = allowed[key]
            normalised = value.lower() if key == "assignee" else value
            if choices is not None and normalised not in choices:
                problems.append((where, f"unknown {key} {value!r} (known: {', '.join(choices)})"))
            else:
                found[key] = normalised
    return Actions(**found)
