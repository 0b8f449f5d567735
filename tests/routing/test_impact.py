"""What open incidents do to the services (pure): direct and dependent services, P1 as an
outage, the worst state winning, changes on a service and those depending on it; and a new
incident's priority from its services' criticality through the impact x urgency matrix."""

from __future__ import annotations

from typing import Any

import pytest

from maildesk.routing.cis import Service
from maildesk.routing.conditions import RouteContext
from maildesk.routing.impact import Change, Incident, criticality_of, service_states
from maildesk.routing.rules import DEFAULT_MATRIX, compile_rules, route
from tests.routing.test_routing_engine import message

SERVICES = (
    Service(name="network", queue="infra", criticality="high"),
    Service(name="email", queue="infra", criticality="medium", depends_on=("network",)),
    Service(name="calendar", queue="it", criticality="low", depends_on=("email",)),
    Service(name="wiki", queue="it", criticality="low"),
)


def inc(id: int, priority: str, *services: str) -> Incident:
    return Incident(id=id, subject=f"incident {id}", priority=priority, services=services)


@pytest.mark.parametrize(
    ("incidents", "expected"),
    [
        pytest.param(
            [],
            {"network": "operational", "email": "operational", "calendar": "operational"},
            id="nothing open",
        ),
        pytest.param(
            [inc(1, "P3", "calendar")],
            {"network": "operational", "email": "operational", "calendar": "degraded"},
            id="direct only: a service's dependencies are not affected",
        ),
        pytest.param(
            [inc(1, "P2", "email")],
            {"network": "operational", "email": "degraded", "calendar": "degraded"},
            id="direct and dependent",
        ),
        pytest.param(
            [inc(1, "P1", "network")],
            {"network": "outage", "email": "outage", "calendar": "outage"},
            id="P1 is an outage, however far",
        ),
        pytest.param(
            [inc(1, "P3", "network"), inc(2, "P1", "email")],
            {"network": "degraded", "email": "outage", "calendar": "outage"},
            id="worst wins",
        ),
        pytest.param(
            [inc(1, "P1", "email"), inc(2, "P4", "network")],
            {"network": "degraded", "email": "outage", "calendar": "outage"},
            id="worst wins whatever the order",
        ),
        pytest.param(
            [inc(1, "P1", "unknown")],
            {"network": "operational", "email": "operational", "calendar": "operational"},
            id="a service no longer configured",
        ),
    ],
)
def test_service_states(incidents: list[Incident], expected: dict[str, str]) -> None:
    states = {s.service.name: s.state for s in service_states(SERVICES, incidents)}
    assert {k: states[k] for k in expected} == expected
    assert states["wiki"] == "operational"


def test_incidents_are_listed_worst_first_then_oldest_and_changes_reach_dependents() -> None:
    incidents = [inc(3, "P3", "network"), inc(5, "P1", "email"), inc(4, "P2", "email")]
    changes = [Change(id=7, services=("network",)), Change(id=8, services=("calendar",))]
    states = service_states(SERVICES, incidents, changes)
    assert [s.service.name for s in states] == ["network", "email", "calendar", "wiki"]
    found = {s.service.name: (s.incidents, s.changes) for s in states}
    assert found == {
        "network": ((3,), (7,)),
        "email": ((5, 3, 4), (7,)),
        "calendar": ((5, 3, 4), (7, 8)),
        "wiki": ((), ()),
    }


def test_a_resolved_incident_no_longer_counts() -> None:
    """The store passes open incidents only: once resolved, it is not among them."""
    before = service_states(SERVICES, [inc(1, "P1", "email")])
    after = service_states(SERVICES, [])
    assert [s.state for s in before][:3] == ["operational", "outage", "outage"]
    assert {s.state for s in after} == {"operational"}


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], None),
        (["unknown"], None),
        (["wiki"], "low"),
        (["wiki", "email"], "medium"),
        (["calendar", "network", "email"], "high"),
    ],
)
def test_criticality_is_the_most_critical_of_the_services(
    names: list[str], expected: str | None
) -> None:
    assert criticality_of(SERVICES, names) == expected


RULES, PROBLEMS = compile_rules(
    [
        {"name": "urgent", "match": {"subject": "(?i)urgent"}, "set": {"urgency": "high"}},
        {"name": "pinned", "match": {"subject": "(?i)pinned"}, "set": {"priority": "P4"}},
        {"name": "impact", "match": {"subject": "(?i)minor"}, "set": {"impact": "low"}},
        {"name": "a request", "match": {"subject": "(?i)please"}, "set": {"type": "request"}},
        {"name": "wiki", "match": {"subject": "(?i)wiki"}, "set": {"service": "wiki"}},
    ],
    queues={"it", "infra"},
    agents=set(),
)


@pytest.mark.parametrize(
    ("switch", "subject", "ci_services", "expected"),
    [
        pytest.param(False, "Cannot print", ("network",), ("P3", None, None), id="off"),
        pytest.param(True, "Cannot print", ("network",), ("P2", "high", "medium"), id="high"),
        pytest.param(True, "Cannot print", ("email",), ("P3", "medium", "medium"), id="medium"),
        pytest.param(True, "urgent", ("network",), ("P1", "high", "high"), id="rule urgency"),
        pytest.param(True, "urgent", ("wiki", "email"), ("P2", "medium", "high"), id="most"),
        pytest.param(True, "wiki", (), ("P4", "low", "medium"), id="the rule's service"),
        pytest.param(True, "Cannot print", (), ("P3", None, None), id="no service"),
        pytest.param(True, "pinned", ("network",), ("P4", None, None), id="rule priority"),
        pytest.param(True, "minor", ("network",), ("P4", "low", None), id="rule impact"),
        pytest.param(True, "please", ("network",), ("P3", None, None), id="not an incident"),
        pytest.param(False, "urgent", ("network",), ("P2", None, "high"), id="off, urgency"),
    ],
)
def test_priority_from_the_services_criticality(
    switch: bool, subject: str, ci_services: tuple[str, ...], expected: tuple[Any, ...]
) -> None:
    assert not PROBLEMS
    ctx = RouteContext(services=SERVICES, ci_services=ci_services, impact_from_service=switch)
    decision = route(message(subject), RULES, "it", ctx, matrix=DEFAULT_MATRIX)
    assert (decision.priority, decision.impact, decision.urgency) == expected
