"""`#broadcast <text>` on a major incident, and the all-clear its resolution sends.

Who is told: the subscribers of the services the incident affects (what it is about,
maildesk.store.cis.ticket_services, and every service depending on one of them,
maildesk.routing.cis.affected_services), each address once, in config order, never one
of the desk's own. One mail each (maildesk.notify.broadcast).

The requester is never told twice. A requester who is also a subscriber is left out of
the fan-out, with the ticket's watchers, and gets the text once as an update on their own
ticket thread (requester/broadcast_update, Cc the watchers); the resolution reaches them
as it always does (the resolved notice, or the agent's reply), not as an all-clear.

Rounds: a broadcast opens a round (or adds to the open one). When the incident is
resolved or closed, by any path (every status change goes through
lifecycle.set_status), the union of the round's subscribers gets one all-clear each, and
the round is over: resolved again after a reopen, it sends nothing more, unless a new
broadcast opened a new round. Events: `broadcast` (`text`, `services`, `recipients`: how
many were told, `to`: the subscribers mailed, `requester`: told on their own thread,
`root`: the thread's root Message-ID) and `broadcast_all_clear` (`services`,
`recipients`, `to`, `root`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.mail.render import mint_message_id
from maildesk.notify import notices
from maildesk.notify.broadcast import to_subscribers
from maildesk.routing.cis import affected_services
from maildesk.store import broadcasts as store
from maildesk.store import repo
from maildesk.store.cis import ticket_services
from maildesk.store.models import Event, Ticket
from maildesk.terms import DONE_STATUSES, TicketType
from maildesk.tickets.commands import Command, CommandError

log = logging.getLogger(__name__)


def subscribers(app: App, services: Sequence[str]) -> list[str]:
    """The subscribers of these services and of every service depending on them, each
    once, in config order; never one of the desk's own addresses."""
    config = app.config
    reached = set(affected_services(config.services, services))
    own = {a.lower() for a in config.own_addresses}
    found: dict[str, None] = {}
    for service in config.services:
        if service.name in reached:
            found.update(dict.fromkeys(a for a in service.subscribers if a.lower() not in own))
    return list(found)


def check(app: App, ticket: Ticket, commands: Sequence[Command]) -> list[CommandError]:
    """A #broadcast needs an open incident whose services have subscribers."""
    first = next((c for c in commands if c.name == "broadcast"), None)
    if first is None:
        return []
    ref = app.ref(ticket.id)
    kind = next((c.value for c in commands if c.name == "type" and c.value), ticket.type)
    status = next((c.value for c in commands if c.name == "status" and c.value), ticket.status)
    services = _services_after(app, ticket, commands)
    reason = (
        f"only an incident is broadcast, and {ref} is a {kind} (#type incident makes it one)"
        if kind != TicketType.INCIDENT
        else f"{ref} is {status}: reopen it (#status open) to broadcast"
        if status in DONE_STATUSES
        else f"{ref} is about no service: link the CI that is down (#ci NAME) first"
        if not services
        else f"no subscriber to tell: {ref} is about {', '.join(services)}, and neither "
        "they nor the services depending on them have subscribers ([[services]] subscribers)"
        if not subscribers(app, services)
        else None
    )
    return [CommandError(first.line, first.text, reason)] if reason else []


def _services_after(app: App, ticket: Ticket, commands: Sequence[Command]) -> list[str]:
    """What the ticket is about once this reply's #ci lines are applied (broadcasts go
    after them, maildesk.tickets.lifecycle.apply)."""
    inventory = app.config.inventory
    ci_lines = [c for c in commands if c.name == "ci"]
    added = [ci.name for c in ci_lines for ci in map(inventory.find, c.add) if ci]
    gone = {
        (ci.name if (ci := inventory.find(w)) else w).lower() for c in ci_lines for w in c.remove
    }
    kept = [link for link in ticket.ci_links if link.ci.lower() not in gone]
    found = [
        *([ticket.service] if ticket.service else []),
        *(s for x in kept for s in x.services or []),
    ]
    return list(dict.fromkeys([*found, *inventory.services_of(added)]))


def apply(
    app: App,
    session: Session,
    ticket: Ticket,
    commands: Sequence[Command],
    who: dict[str, str],
    now: datetime,
) -> list[str]:
    """Send the reply's checked #broadcast lines as one broadcast; what it did, in words."""
    lines = [c.value for c in commands if c.name == "broadcast" and c.value]
    if not lines:
        return []
    return [broadcast(app, session, ticket, "\n\n".join(lines), who, now)]


def broadcast(
    app: App, session: Session, ticket: Ticket, text: str, who: dict[str, str], now: datetime
) -> str:
    """Tell the affected services' subscribers `text` (checked before: there are some)."""
    store.lock_ticket(session, ticket.id)
    own = ticket_services(ticket)
    reached = affected_services(app.config.services, own)
    # Named as the incident's own services, then those that depend on them (config order).
    services = [*(s for s in own if s in reached), *(s for s in reached if s not in own)]
    addresses = subscribers(app, own)
    requester_side = {ticket.requester.email.lower(), *repo.watchers(session, ticket.id)}
    requester = ticket.requester.email.lower() in {a.lower() for a in addresses}
    if requester:
        addresses = [a for a in addresses if a.lower() not in requester_side]
    root = _root(app, ticket, store.broadcast_events(session, ticket.id))
    data: dict[str, Any] = {"text": text, "services": list(services)}
    to_subscribers(
        app,
        session,
        ticket,
        addresses,
        kind="broadcast",
        template="subscriber/broadcast",
        root=root,
        broadcast=data,
        now=now,
    )
    if requester:
        notices.to_requester(
            app,
            session,
            ticket,
            kind="broadcast_update",
            template="requester/broadcast_update",
            now=now,
            broadcast=data,
        )
    count = len(addresses) + requester
    repo.add_event(
        session,
        ticket,
        "broadcast",
        now,
        **who,
        **data,
        recipients=count,
        to=addresses,
        requester=requester,
        root=root,
    )
    log.info("%s: broadcast to %d (%s)", app.ref(ticket.id), count, ", ".join(services))
    told = f"{len(addresses)} subscribers" + (" and the requester" if requester else "")
    return f"broadcast to {told} ({', '.join(services)})"


def _root(app: App, ticket: Ticket, events: Sequence[Event]) -> str:
    """The Message-ID the incident's mails to subscribers answer: its first broadcast's."""
    for event in events:
        if event.data.get("root"):
            return str(event.data["root"])
    return mint_message_id(app.config.desk.domain, f"{app.ref(ticket.id)}.broadcast")


def all_clear(
    app: App, session: Session, ticket: Ticket, who: dict[str, str], now: datetime
) -> None:
    """The incident is resolved or closed: the open round's subscribers hear it, once."""
    session.flush()  # the status change first: its row lock serialises two resolvers
    store.lock_ticket(session, ticket.id)
    events = store.broadcast_events(session, ticket.id)
    last = max((i for i, e in enumerate(events) if e.kind == "broadcast_all_clear"), default=-1)
    round_ = [e for e in events[last + 1 :] if e.kind == "broadcast"]
    if not round_:
        return
    addresses = list(dict.fromkeys(a for e in round_ for a in e.data.get("to", [])))
    services = list(dict.fromkeys(s for e in round_ for s in e.data.get("services", [])))
    root = _root(app, ticket, events)
    data: dict[str, Any] = {"text": "", "services": services}
    to_subscribers(
        app,
        session,
        ticket,
        addresses,
        kind="broadcast_all_clear",
        template="subscriber/all_clear",
        root=root,
        broadcast=data,
        now=now,
    )
    repo.add_event(
        session,
        ticket,
        "broadcast_all_clear",
        now,
        **who,
        services=services,
        recipients=len(addresses),
        to=addresses,
        root=root,
    )
    log.info("%s: all-clear to %d subscribers", app.ref(ticket.id), len(addresses))
