"""Impact and urgency on a ticket: a change recomputes the priority through the matrix.

`#impact high` / `#urgency low` (and `ticket set impact=... urgency=...`) store the level
and set the priority that `[priority_matrix]` gives for the pair (a level not known yet
counts as medium), then the SLA due times follow, as after `#priority`. An explicit
`#priority` later wins until the next impact or urgency change. Every change is an event.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.routing.rules import matrix_priority
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.tickets import sla

if TYPE_CHECKING:
    from maildesk.tickets.lifecycle import Actor

log = logging.getLogger(__name__)


def set_level(
    app: App,
    session: Session,
    ticket: Ticket,
    name: str,
    value: str,
    actor: Actor,
    now: datetime,
) -> str | None:
    """Set impact or urgency; the priority follows. A description, or None if unchanged."""
    old = getattr(ticket, name)
    if old == value:
        return None
    setattr(ticket, name, value)
    who = {"actor": actor.email, "via": actor.via}
    repo.add_event(session, ticket, name, now, **who, **{"from": old, "to": value})
    change = f"{name}: {old or '-'} -> {value}"
    priority = matrix_priority(app.config.priority_matrix, ticket.impact, ticket.urgency)
    if priority != ticket.priority:
        before, ticket.priority = ticket.priority, priority
        repo.add_event(
            session,
            ticket,
            "priority",
            now,
            **who,
            **{"from": before, "to": priority},
            reason=f"impact {ticket.impact or 'medium'} x urgency {ticket.urgency or 'medium'}",
        )
        change += f", priority: {before} -> {priority}"
    sla.refresh(app, ticket, now)
    log.info("%s %s by %s (%s)", app.ref(ticket.id), change, actor.email, actor.via)
    return change
