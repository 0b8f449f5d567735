"""Change management: a change's window (`#schedule`, `ticket set ID window=`), refused
inside a `[[change_freeze]]` or before approval, and its outcome (`#implemented`,
`#failed REASON`), each an event. The window notices are maildesk.jobs.change_notices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.routing.cis import affected_services
from maildesk.store import repo
from maildesk.store.changes import open_p1_incidents
from maildesk.store.changes import scheduled_changes as changes_in
from maildesk.store.cis import ticket_services
from maildesk.store.models import Ticket
from maildesk.terms import Status, TicketType
from maildesk.tickets import cis
from maildesk.tickets.change_commands import window_of
from maildesk.tickets.commands import Command, CommandError
from maildesk.timefmt import iso, local_text

log = logging.getLogger(__name__)

COMMANDS = ("schedule", "implemented", "failed")
AWAITING_APPROVAL = "awaiting-approval"


def check(app: App, ticket: Ticket, commands: Sequence[Command]) -> list[CommandError]:
    """The change commands' checks that need the ticket and the config: only a change is
    scheduled, only once approved, never inside a freeze of its queue or of a service it
    touches (with the `#queue` and `#ci` lines of the same reply taken in)."""
    kind = next((c.value for c in commands if c.name == "type"), None) or ticket.type
    queue = next((c.value for c in commands if c.name == "queue"), None) or ticket.queue
    errors = []
    for c in commands:
        if c.name not in COMMANDS:
            continue
        if kind != TicketType.CHANGE:
            errors.append(CommandError(c.line, c.text, f"only a change has this; this is a {kind}"))
        elif c.name == "schedule" and ticket.status == AWAITING_APPROVAL:
            reason = "this change is awaiting approval; schedule it once it is approved"
            errors.append(CommandError(c.line, c.text, reason))
        elif c.name == "schedule":
            own = own_services(app, ticket, commands)
            errors += [CommandError(c.line, c.text, r) for r in _frozen(app, queue, own, c.value)]
    return errors


def own_services(app: App, ticket: Ticket, commands: Sequence[Command] = ()) -> list[str]:
    """The change's services once `commands` apply (as ticket JSON's `services`: the
    rule's service, then its CIs' services)."""
    found = dict.fromkeys([ticket.service] if ticket.service else [])
    for services in cis.planned(app, ticket, commands).values():
        found.update(dict.fromkeys(services))
    return list(found)


def _frozen(app: App, queue: str, own: Sequence[str], value: str | None) -> list[str]:
    window = window_of(value)
    if window is None:
        return []
    zone, services = app.config.desk.timezone, app.config.services
    touched = affected_services(services, own)
    reasons = []
    for f in app.config.change_freezes:
        if not f.blocks(queue, *window, touched):
            continue
        why = f'the window falls in the change freeze "{f.name}" '
        why += f"({local_text(f.start, zone)} to {local_text(f.end, zone)})"
        service = f.frozen_service(touched)
        if service is not None:
            why += f' of the service "{service}"'
            if service not in own:
                via = next((o for o in own if service in affected_services(services, [o])), "")
                why += f' (this change touches "{via}", which "{service}" depends on)'
        reasons.append(why + "; choose another window")
    return reasons


def apply_one(
    app: App,
    session: Session,
    ticket: Ticket,
    c: Command,
    who: dict[str, str],
    now: datetime,
    set_status: Callable[[str, str], str | None],
) -> str | None:
    """Apply one checked change command; a description of what changed, or None. An
    outcome closes the loop: implemented resolves the change, failed closes it."""
    if c.name == "schedule":
        return schedule(app, session, ticket, c.value, who, now)
    outcome = "implemented" if c.name == "implemented" else "failed"
    repo.add_event(session, ticket, f"change_{outcome}", now, **who, comment=c.value or "")
    log.info("%s change %s (%s)", app.ref(ticket.id), outcome, who["actor"])
    status = Status.RESOLVED if outcome == "implemented" else Status.CLOSED
    moved = set_status(status, f"change {outcome}" + (f": {c.value}" if c.value else ""))
    return "; ".join(
        [f"change {outcome}" + (f": {c.value}" if c.value else ""), *filter(None, [moved])]
    )


def schedule(
    app: App,
    session: Session,
    ticket: Ticket,
    value: str | None,
    who: dict[str, str],
    now: datetime,
) -> str | None:
    """Set (or with None clear) the change's window; an event with the old and new one and
    the open P1 incidents on the change's CIs (a warning, never a refusal)."""
    window = window_of(value)
    start, end = window if window else (None, None)
    if (ticket.change_start, ticket.change_end) == (start, end):
        return None
    old: dict[str, Any] = {"start": iso(ticket.change_start), "end": iso(ticket.change_end)}
    ticket.change_start, ticket.change_end = start, end
    new: dict[str, Any] = {"start": iso(start), "end": iso(end)}
    moved: dict[str, Any] = {"from": old, "to": new}
    if start is None or end is None:
        repo.add_event(session, ticket, "change_scheduled", now, **who, **moved)
        return "window: none"
    on_ci = open_p1_incidents(session, [x.ci for x in ticket.ci_links])
    p1 = sorted({i for ids in on_ci.values() for i in ids})
    moved["p1_incidents"] = [app.ref(i) for i in p1]
    repo.add_event(session, ticket, "change_scheduled", now, **who, **moved)
    zone = app.config.desk.timezone
    done = f"window: {local_text(start, zone)} to {local_text(end, zone)} ({zone})"
    if not p1:
        return done
    log.warning("%s scheduled on CIs with open P1 incidents: %s", app.ref(ticket.id), on_ci)
    return f"{done}; WARNING: {p1_text(app, on_ci)}"


def p1_text(app: App, on_ci: dict[str, list[int]]) -> str:
    """`open P1 incident on its CIs: MD-3 (mail01)`: the change is flagged, not refused."""
    cis_of: dict[int, list[str]] = {}
    for ci, ids in on_ci.items():
        for i in ids:
            cis_of.setdefault(i, []).append(ci)
    parts = [f"{app.ref(i)} ({', '.join(sorted(c))})" for i, c in sorted(cis_of.items())]
    return f"open P1 incident{'s' if len(parts) > 1 else ''} on its CIs: {', '.join(parts)}"


def calendar(
    app: App, session: Session, start: datetime | None, end: datetime | None
) -> list[dict[str, Any]]:
    """The change calendar: scheduled changes whose window touches [start, end), by start,
    each with its state, assignee, risk (a catalog field, if the item has one), the changes
    of the same queue whose windows overlap it, its CIs and services, and the open P1
    incidents on its CIs."""
    found = changes_in(session, start, end)
    on_ci = open_p1_incidents(session, {x.ci for t in found for x in t.ci_links})
    rows = []
    for t in found:
        overlaps = [
            app.ref(o.id)
            for o in found
            if o.id != t.id
            and o.queue == t.queue
            and o.change_start < t.change_end  # type: ignore[operator]
            and t.change_start < o.change_end  # type: ignore[operator]
        ]
        fields = getattr(t, "fields", None)
        p1 = sorted({i for x in t.ci_links for i in on_ci.get(x.ci, ())})
        rows.append(
            {
                "ref": app.ref(t.id),
                "subject": t.subject,
                "queue": t.queue,
                "status": t.status,
                "assignee": t.assignee,
                "risk": fields.get("risk") if isinstance(fields, dict) else None,
                "change_window": {"start": iso(t.change_start), "end": iso(t.change_end)},
                "overlaps": overlaps,
                "cis": sorted(x.ci for x in t.ci_links),
                "services": sorted(ticket_services(t)),
                "p1_incidents": [app.ref(i) for i in p1],
            }
        )
    return rows
