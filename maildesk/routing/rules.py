"""Routing rules: compile `[[rules]]` from config, evaluate them against a parsed message.

A rule is conditions (`match` shorthand and/or a `when` tree, all must hold) plus `set`
(what it decides) plus optional `stop` and `drop`. Rules run in order; a later match
refines an earlier one unless an earlier rule stopped evaluation. Evaluation is pure: no
database, no clock (the time of day comes in the RouteContext). Conditions live in
`conditions.py`; docs/routing.md is the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from maildesk.routing.conditions import (
    Condition,
    Facts,
    Problems,
    Routable,
    RouteContext,
    all_of,
    compile_condition,
    compile_match,
)
from maildesk.routing.impact import priority_from_service
from maildesk.routing.organisations import Organisation
from maildesk.terms import PRIORITIES, TYPES, TicketType

__all__ = ["Routable", "RouteContext", "RoutingDecision", "Rule", "compile_rules", "route"]

LEVELS = ("high", "medium", "low")  # impact and urgency
STRATEGIES = ("round-robin", "least-open")  # assignee strategies among the queue's agents
SET_KEYS = (
    "queue",
    "priority",
    "impact",
    "urgency",
    "type",
    "category",
    "assignee",
    "tags",
    "acknowledge",
    "catalog",
    "service",
)
RULE_KEYS = ("name", "match", "when", "set", "stop", "drop")
# ITIL default: impact x urgency -> priority; `[priority_matrix]` in config overrides it.
DEFAULT_MATRIX: Mapping[tuple[str, str], str] = {
    ("high", "high"): "P1",
    ("high", "medium"): "P2",
    ("high", "low"): "P3",
    ("medium", "high"): "P2",
    ("medium", "medium"): "P3",
    ("medium", "low"): "P4",
    ("low", "high"): "P3",
    ("low", "medium"): "P4",
    ("low", "low"): "P4",
}


@dataclass(frozen=True, kw_only=True)
class Actions:
    queue: str | None = None
    priority: str | None = None
    impact: str | None = None
    urgency: str | None = None
    type: str | None = None
    category: str | None = None
    assignee: str | None = None  # an agent's address or a strategy
    tags: tuple[str, ...] = ()
    acknowledge: bool | str | None = None  # false: none; a name: requester/<name> template
    catalog: str | None = None  # the [[catalog]] item the mail requests
    service: str | None = None  # the [[services]] entry the ticket is about


@dataclass(frozen=True, kw_only=True)
class Rule:
    name: str
    condition: Condition | None  # None: always matches
    actions: Actions
    stop: bool = False
    drop: bool = False


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
    impact: str | None = None
    urgency: str | None = None
    type: str = "incident"
    category: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    acknowledge: bool | str = True  # True: the default template; a name: that template
    dropped_by: str | None = None  # the rule that dropped the message (stored as spam)
    organisation: str | None = None  # the sender's organisation (by mail domain)
    catalog: str | None = None  # the [[catalog]] item a rule made this mail request
    service: str | None = None  # the service a rule set (stored on the ticket)
    # What the ticket is about: the rule's service, then the named CIs' services. The first
    # one's owner queue applies when no rule sets the queue, its SLA policy when no rule
    # picks one.
    services: tuple[str, ...] = ()
    cis: tuple[str, ...] = ()  # the CIs the mail names
    matched: tuple[str, ...] = ()
    results: tuple[RuleResult, ...] = field(default=(), compare=False)


def decision_json(decision: RoutingDecision, assignee: str | None = None) -> dict[str, Any]:
    """A routing decision as the `routed` event and `route test --json` show it."""
    strategy = decision.assignee in STRATEGIES
    return {
        "matched": list(decision.matched),
        "queue": decision.queue,
        "priority": decision.priority,
        "impact": decision.impact,
        "urgency": decision.urgency,
        "type": decision.type,
        "category": decision.category,
        "assignee": assignee if strategy or assignee else decision.assignee,
        "assigned_by": decision.assignee if strategy else None,
        "tags": list(decision.tags),
        "acknowledge": decision.acknowledge,
        "dropped_by": decision.dropped_by,
        "organisation": decision.organisation,
        "catalog": decision.catalog,
        "service": decision.service,
        "services": list(decision.services),
        "cis": list(decision.cis),
    }


def route(
    msg: Routable,
    rules: Iterable[Rule],
    default_queue: str,
    ctx: RouteContext | None = None,
    *,
    matrix: Mapping[tuple[str, str], str] = DEFAULT_MATRIX,
    explain: bool = False,
) -> RoutingDecision:
    """Apply rules in order and return the decision; with explain, say why for each rule.

    The sender's organisation (by mail domain) gives the queue when no rule sets one.
    """
    ctx = ctx or RouteContext()
    facts = Facts(msg, ctx)
    matched: list[Rule] = []
    results: list[RuleResult] = []
    stopped_by: str | None = None
    for rule in rules:
        if stopped_by is not None:
            if not explain:
                break
            why = f"not evaluated: stopped by {stopped_by!r}"
            results.append(RuleResult(rule=rule.name, matched=False, skipped=True, reason=why))
            continue
        cond = rule.condition
        if explain:
            ok, why = cond.explain(facts) if cond else (True, "no conditions (always matches)")
            results.append(RuleResult(rule=rule.name, matched=ok, reason=why))
        else:
            ok = cond is None or cond.holds(facts)
        if ok:
            matched.append(rule)
            if rule.stop or rule.drop:
                stopped_by = rule.name
    org = ctx.organisation(msg.from_addr)
    decision = _decide(default_queue, matched, matrix, tuple(results), org)
    return _about(decision, matched, ctx, matrix)


def _about(
    decision: RoutingDecision,
    matched: list[Rule],
    ctx: RouteContext,
    matrix: Mapping[tuple[str, str], str],
) -> RoutingDecision:
    """The services and CIs the ticket is about; the first service's owner queue when no
    rule set the queue (it comes before the sender's organisation's); with
    `impact_from_service`, an incident's priority from its services' criticality when no
    rule set its priority or impact."""
    services = tuple(dict.fromkeys(filter(None, (decision.service, *ctx.ci_services))))
    first = ctx.service(services[0]) if services else None
    queue = decision.queue
    if first is not None and first.queue and not any(r.actions.queue for r in matched):
        queue = first.queue
    decision = replace(decision, queue=queue, services=services, cis=ctx.cis)
    ruled = any(r.actions.priority or r.actions.impact for r in matched)
    if not ctx.impact_from_service or ruled or decision.type != TicketType.INCIDENT:
        return decision
    found = priority_from_service(matrix, ctx.services, services, decision.urgency)
    if found is None:
        return decision
    priority, impact, urgency = found
    return replace(decision, priority=priority, impact=impact, urgency=urgency)


def _decide(
    default_queue: str,
    matched: list[Rule],
    matrix: Mapping[tuple[str, str], str],
    results: tuple[RuleResult, ...],
    org: Organisation | None = None,
) -> RoutingDecision:
    """Fold the matched rules' actions, in order: later ones refine earlier ones."""
    queue = org.queue if org is not None and org.queue else default_queue
    d: dict[str, Any] = {"queue": queue, "priority": "P3", "type": "incident"}
    d["organisation"] = org.name if org is not None else None
    tags: dict[str, None] = {}
    for rule in matched:
        a = rule.actions
        for key in (
            "queue",
            "priority",
            "impact",
            "urgency",
            "type",
            "category",
            "assignee",
            "catalog",
            "service",
        ):
            value = getattr(a, key)
            if value:
                d[key] = value
        if a.impact or a.urgency:
            d["priority"] = matrix_priority(matrix, d.get("impact"), d.get("urgency"))
        tags.update(dict.fromkeys(a.tags))
        if a.acknowledge is not None:
            d["acknowledge"] = a.acknowledge
        if rule.drop:
            d["dropped_by"] = rule.name
    return RoutingDecision(
        **d, tags=tuple(tags), matched=tuple(r.name for r in matched), results=results
    )


def compile_rules(
    tables: list[dict[str, Any]],
    *,
    queues: set[str],
    agents: set[str],
) -> tuple[list[Rule], Problems]:
    """Compile rule tables; return the rules and every problem as (place, message)."""
    rules: list[Rule] = []
    problems: Problems = []
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
                problems.append(
                    (f"{place} key '{key}'", f"unknown key (known: {', '.join(RULE_KEYS)})")
                )
        conditions = compile_match(t.get("match", {}), place, problems)
        if "when" in t:
            when = compile_condition(t["when"], place, problems)
            conditions += [when] if when is not None else []
        actions = _actions(t.get("set", {}), place, problems, queues=queues, agents=agents)
        flags = {}
        for key in ("stop", "drop"):
            flags[key] = t.get(key, False)
            if not isinstance(flags[key], bool):
                problems.append(
                    (f"{place} key '{key}'", f"must be true or false, got {flags[key]!r}")
                )
                flags[key] = False
        rules.append(
            Rule(
                name=name,
                condition=all_of(conditions) if conditions else None,
                actions=actions,
                stop=flags["stop"],
                drop=flags["drop"],
            )
        )
    return rules, problems


def _actions(
    values: object,
    place: str,
    problems: Problems,
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
        "impact": LEVELS,
        "urgency": LEVELS,
        "type": TYPES,
        "category": None,
        "catalog": None,  # checked against [[catalog]] by the config reader
        "service": None,  # checked against [[services]] by the config reader
        "assignee": [*STRATEGIES, *sorted(agents)],
    }
    found: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{place} key 'set.{key}'"
        if key not in SET_KEYS:
            problems.append((where, f"unknown action (known: {', '.join(SET_KEYS)})"))
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                problems.append((where, f"must be a list of strings, got {value!r}"))
            else:
                found["tags"] = tuple(value)
        elif key == "acknowledge":
            if not isinstance(value, bool | str) or value == "":
                problems.append((where, f"must be true, false or a template name, got {value!r}"))
            else:
                found["acknowledge"] = value
        elif not isinstance(value, str):
            problems.append((where, f"must be a string, got {value!r}"))
        else:
            choices = allowed[key]
            normalised = value.lower() if key in ("assignee", "impact", "urgency") else value
            if choices is not None and normalised not in choices:
                problems.append((where, f"unknown {key} {value!r} (known: {', '.join(choices)})"))
            else:
                found[key] = normalised
    if "priority" in found and ("impact" in found or "urgency" in found):
        problems.append((f"{place} key 'set'", "set either priority or impact/urgency, not both"))
    return Actions(**found)


def matrix_priority(
    matrix: Mapping[tuple[str, str], str], impact: str | None, urgency: str | None
) -> str:
    """The priority of an impact and urgency (medium where one is not known)."""
    return matrix[(impact or "medium", urgency or "medium")]


def compile_matrix(
    table: object, place: str = "[priority_matrix]"
) -> tuple[dict[tuple[str, str], str], Problems]:
    """`[priority_matrix]` high = { high = "P1", ... }: every impact x urgency, checked."""
    matrix = dict(DEFAULT_MATRIX)
    problems: Problems = []
    if table is None:
        return matrix, problems
    if not isinstance(table, Mapping):
        return matrix, [(place, "must be a table of impact = { urgency = priority }")]
    for impact, row in table.items():
        if impact not in LEVELS:
            problems.append(
                (f"{place} key '{impact}'", f"unknown impact (known: {', '.join(LEVELS)})")
            )
            continue
        if not isinstance(row, Mapping):
            problems.append((f"{place} key '{impact}'", "must be a table of urgency = priority"))
            continue
        for urgency, priority in row.items():
            where = f"{place} key '{impact}.{urgency}'"
            if urgency not in LEVELS:
                problems.append((where, f"unknown urgency (known: {', '.join(LEVELS)})"))
            elif priority not in PRIORITIES:
                problems.append(
                    (where, f"unknown priority {priority!r} (known: {', '.join(PRIORITIES)})")
                )
            else:
                matrix[(impact, urgency)] = priority
    return matrix, problems
