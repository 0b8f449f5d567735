"""The impact view's queries: the open incidents and the changes not yet over, with the
services each is about; the latest `broadcast` of incidents; and the stable JSON of
`maildesk services --json` and `GET /api/services` (maildesk.routing.impact decides)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maildesk.routing.cis import Service
from maildesk.routing.impact import Change, Incident, ServiceState, service_states
from maildesk.store.broadcasts import BROADCAST_MAILS
from maildesk.store.cis import services_about
from maildesk.store.models import Event, Ticket, TicketCi
from maildesk.terms import DONE_STATUSES, TicketType

BROADCAST_EVENT = BROADCAST_MAILS[0]  # an agent's `#broadcast <text>` (data: text)


def open_incidents(session: Session, exclude: Iterable[int] = ()) -> list[Incident]:
    """Every incident not done, oldest first, with the services it is about.

    Read as rows, not tickets: every new ticket about a service asks (its acknowledgement
    names the known issues), and loading each open incident with its links as objects
    cost more than the rest of the ticket's work once a few hundred were open."""
    where = [Ticket.type == TicketType.INCIDENT, Ticket.status.not_in(DONE_STATUSES)]
    skip = list(exclude)
    if skip:
        where.append(Ticket.id.not_in(skip))
    columns = (Ticket.id, Ticket.subject, Ticket.priority, Ticket.created_at)
    return [
        Incident(id=i, subject=subject, priority=priority, services=services, since=since)
        for (i, subject, priority, since), services in _with_services(session, columns, where)
    ]


def open_changes(session: Session, now: datetime) -> list[Change]:
    """Every change not done whose window has not ended, by window start."""
    where = [
        Ticket.type == TicketType.CHANGE,
        Ticket.status.not_in(DONE_STATUSES),
        Ticket.change_end.is_not(None),
        Ticket.change_end > now,
    ]
    found = _with_services(session, (Ticket.id,), where, order=(Ticket.change_start,))
    return [Change(id=i, services=services) for (i,), services in found]


def _with_services(
    session: Session, columns: Sequence[Any], where: list[Any], order: Sequence[Any] = ()
) -> list[tuple[tuple[Any, ...], tuple[str, ...]]]:
    """The `columns` of each ticket matching `where` (in `order`, then by id) with the
    services it is about (store.cis.services_about): one query, its links joined."""
    stmt = (
        select(*columns, Ticket.service, TicketCi.services)
        .outerjoin(TicketCi, TicketCi.ticket_id == Ticket.id)
        .where(*where)
        .order_by(*order, Ticket.id, TicketCi.id)
    )
    rows: dict[int, tuple[tuple[Any, ...], str | None, list[Any]]] = {}
    for *values, service, linked in session.execute(stmt):
        ticket = rows.setdefault(values[0], (tuple(values), service, []))
        ticket[2].append(linked)
    return [
        (values, tuple(services_about(service, linked)))
        for values, service, linked in rows.values()
    ]


def latest_broadcasts(session: Session, ticket_ids: Iterable[int]) -> dict[int, str]:
    """The text of each ticket's latest `broadcast` event (tickets without one left out)."""
    ids = list(dict.fromkeys(ticket_ids))
    if not ids:
        return {}
    latest = (
        select(func.max(Event.id))
        .where(Event.ticket_id.in_(ids), Event.kind == BROADCAST_EVENT)
        .group_by(Event.ticket_id)
    )
    rows = session.scalars(select(Event).where(Event.id.in_(latest)))
    return {e.ticket_id: str(e.data.get("text") or "") for e in rows if e.data.get("text")}


def current_states(
    session: Session, services: Sequence[Service], now: datetime
) -> list[ServiceState]:
    """Every configured service's state now, with the incidents and changes reaching it."""
    if not services:
        return []
    return service_states(services, open_incidents(session), open_changes(session, now))


def services_json(
    session: Session, services: Sequence[Service], prefix: str, now: datetime
) -> list[dict[str, Any]]:
    """The items of `maildesk services --json`, in config order (keys are a contract)."""
    return [
        {
            "name": s.service.name,
            "state": s.state,
            "incidents": [f"{prefix}-{i}" for i in s.incidents],
            "changes": [f"{prefix}-{c}" for c in s.changes],
            "description": s.service.description,
            "criticality": s.service.criticality,
            "queue": s.service.queue,
            "depends_on": list(s.service.depends_on),
            "subscribers": list(s.service.subscribers),
        }
        for s in current_states(session, services, now)
    ]
