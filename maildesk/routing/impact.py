"""What the open incidents do to the services (docs/services.md, "Impact"). Pure.

An open incident marks the services it is about (the rule's service, then its CIs'
services) and every service that depends on one of them, however far, as `degraded`; a P1
incident marks them as `outage`. The worst state wins; a service no open incident reaches is
`operational`. A change that is not done and whose window has not ended is listed on the
services it touches and on the services depending on them.

The priority of a new incident can follow its service's criticality: with `[priority_matrix]
impact_from_service = true`, the most critical of its services gives the impact, the rules'
urgency (or medium) the urgency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from maildesk.routing.cis import CRITICALITIES, Service, affected_services

__all__ = [
    "STATES",
    "Change",
    "Incident",
    "ServiceState",
    "criticality_of",
    "service_states",
]

OPERATIONAL, DEGRADED, OUTAGE = STATES = ("operational", "degraded", "outage")
OUTAGE_PRIORITY = "P1"


@dataclass(frozen=True, kw_only=True)
class Incident:
    """An open incident: which ticket, how bad, what it is about."""

    id: int
    subject: str = ""
    priority: str = "P3"
    services: tuple[str, ...] = ()  # the services it is about (not those depending on them)
    since: datetime | None = None  # when it was opened


@dataclass(frozen=True, kw_only=True)
class Change:
    """A change not done whose window has not ended, and the services it touches."""

    id: int
    services: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ServiceState:
    """One service's state, with the incidents (worst first, then oldest) and changes that
    reach it, by ticket id."""

    service: Service
    state: str
    incidents: tuple[int, ...] = ()
    changes: tuple[int, ...] = ()


def incident_state(incident: Incident) -> str:
    """What an incident does to the services it reaches: a P1 is an outage."""
    return OUTAGE if incident.priority == OUTAGE_PRIORITY else DEGRADED


def service_states(
    services: Sequence[Service], incidents: Iterable[Incident], changes: Iterable[Change] = ()
) -> list[ServiceState]:
    """Every configured service, in config order, with its state and what reaches it."""
    hits: dict[str, list[Incident]] = {s.name: [] for s in services}
    for incident in incidents:
        for name in affected_services(services, incident.services):
            hits[name].append(incident)
    touched: dict[str, list[int]] = {s.name: [] for s in services}
    for change in changes:
        for name in affected_services(services, change.services):
            touched[name].append(change.id)
    found = []
    for s in services:
        reached = sorted(hits[s.name], key=lambda i: (-STATES.index(incident_state(i)), i.id))
        state = incident_state(reached[0]) if reached else OPERATIONAL
        found.append(
            ServiceState(
                service=s,
                state=state,
                incidents=tuple(i.id for i in reached),
                changes=tuple(touched[s.name]),
            )
        )
    return found


def criticality_of(services: Sequence[Service], names: Iterable[str]) -> str | None:
    """The most critical criticality among the named services (None: none configured)."""
    by_name = {s.name: s for s in services}
    levels = [by_name[n].criticality for n in names if n in by_name]
    return max(levels, key=CRITICALITIES.index) if levels else None


def priority_from_service(
    matrix: Mapping[tuple[str, str], str],
    services: Sequence[Service],
    names: Iterable[str],
    urgency: str | None,
) -> tuple[str, str, str] | None:
    """(priority, impact, urgency) of an incident about the named services, or None when
    none of them is configured."""
    impact = criticality_of(services, names)
    if impact is None:
        return None
    urgency = urgency or "medium"
    return matrix[(impact, urgency)], impact, urgency
