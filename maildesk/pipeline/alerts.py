"""Monitoring alerts by mail become incidents: one open incident per alert key.

The first problem alert of a key opens an incident (no acknowledgement goes to the
monitor); repeats go on it, counted, with no new notices; a recovery resolves it (event
`recovered`, a notice to the assignee or the queue); an acknowledgement is recorded. A
recovery or acknowledgement with no open incident is recorded on the raw message and
opens nothing. A key whose state changes more than `flap.changes` times within
`flap.within` is flapping: its incident is tagged `flapping`, and notices wait until it
settles. A changed severity re-prioritises the incident (and its SLA due times).

Two daemons receiving the same alert take turns on its key (store.problems), so the
second finds the first one's incident.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from datetime import datetime

from maildesk.notify import notices
from maildesk.notify.context import agent_context
from maildesk.pipeline.context import Context
from maildesk.pipeline.inbound import store_message
from maildesk.pipeline.outcome import Outcome
from maildesk.routing.monitors import (
    WEBHOOK_MONITOR_HEADER,
    WEBHOOK_ORIGIN,
    Alert,
    Monitor,
    MonitorMail,
    named,
    recognise,
)
from maildesk.routing.rules import RoutingDecision, decision_json, route
from maildesk.store import repo
from maildesk.store.models import AlertState, Message, Ticket
from maildesk.terms import DONE_STATUSES, RawStatus, Status
from maildesk.tickets import cis, lifecycle, sla

log = logging.getLogger(__name__)

FLAPPING = "flapping"
WEBHOOK_HEADER = WEBHOOK_MONITOR_HEADER.lower()


def monitor_mail(ctx: Context) -> MonitorMail | None:
    """The monitor a message comes from and its alerts, if it is a monitor's."""
    config = ctx.app.config
    if not config.monitors:
        return None
    if ctx.raw.origin == WEBHOOK_ORIGIN:  # stored by an admin's webhook call, which named it
        name = next((v for k, v in ctx.msg.headers if k.lower() == WEBHOOK_HEADER), None)
        return named(ctx.msg, config.monitors, name)
    return recognise(ctx.msg, config.monitors, config.route_context(ctx.now, ctx.raw.envelope_to))


def alerts(ctx: Context) -> Outcome | None:
    """A monitor's mail with alerts in it: each alert acts on the incident of its key."""
    found = monitor_mail(ctx)
    if found is None or not found.alerts:
        return None  # not a monitor's, or nothing we can read: an ordinary ticket
    done: list[str] = []
    first: Ticket | None = None
    for n, alert in enumerate(found.alerts):
        ticket, what = _one(ctx, found.monitor, alert, n)
        done.append(what)
        first = first or ticket
    raw = ctx.raw
    raw.reason = "; ".join(done)
    if first is None:
        raw.status = RawStatus.ALERT
        log.info("alert %s (raw %s): %s", ctx.msg.message_id, raw.id, raw.reason)
        return Outcome(raw.id, "alert", reason=raw.reason)
    raw.ticket_id = first.id
    ref = ctx.app.ref(first.id)
    log.info("alert %s (raw %s) on %s: %s", ctx.msg.message_id, raw.id, ref, raw.reason)
    return Outcome(raw.id, "alert", first.id, ref, raw.reason)


def _one(ctx: Context, monitor: Monitor, alert: Alert, n: int) -> tuple[Ticket | None, str]:
    """Act on one alert; the ticket it touched (if any) and what happened, in words."""
    session = ctx.session
    repo.lock_alert_key(session, monitor.name, alert.key)
    row = repo.latest_alert(session, monitor.name, alert.key)
    label = f"{monitor.name} {alert.key} {alert.state}"
    if alert.state == "problem":
        if row is not None and (row.is_open or _reopenable(ctx, monitor, row)):
            ticket = _incident(ctx, row)
            _repeat(ctx, monitor, alert, row, ticket, n)
            return ticket, f"{label}: on {ctx.app.ref(ticket.id)} (count {row.count})"
        ticket = _open(ctx, monitor, alert, n)
        return ticket, f"{label}: opened {ctx.app.ref(ticket.id)}"
    if row is None or not row.is_open:
        return None, f"{label}: no open incident, recorded, nothing opened"
    ticket = _incident(ctx, row)
    _store(ctx, ticket, n)
    row.last_at = ctx.now
    if alert.state == "recovery":
        _recovered(ctx, monitor, alert, row, ticket)
        return ticket, f"{label}: resolved {ctx.app.ref(ticket.id)}"
    kind = "alert"
    if alert.state == "acknowledgement":
        kind, row.state = "acknowledged", "acknowledgement"
    repo.add_event(session, ticket, kind, ctx.now, actor=monitor.name, **_data(alert))
    return ticket, f"{label}: recorded on {ctx.app.ref(ticket.id)}"


def _incident(ctx: Context, row: AlertState) -> Ticket:
    """The alert's incident, or the ticket it was merged into."""
    return lifecycle.resolve_merged(ctx.session, ctx.session.get_one(Ticket, row.ticket_id))


def _data(alert: Alert) -> dict[str, str]:
    return {"key": alert.key, "state": alert.state, "severity": alert.severity}


def _reopenable(ctx: Context, monitor: Monitor, row: AlertState) -> bool:
    """A problem soon after its recovery (within the flap window) reopens the incident."""
    return ctx.now - row.last_at <= monitor.flap.within


def _open(ctx: Context, monitor: Monitor, alert: Alert, n: int) -> Ticket:
    """A new incident for the alert: routed by the rules, then the monitor's queue,
    priority and type; the queue is told, the monitor gets no acknowledgement."""
    config, session, now = ctx.app.config, ctx.session, ctx.now
    host = config.inventory.find(alert.host) if alert.host else None
    about = (host.name,) if host is not None else ()
    decision = route(
        ctx.msg,
        config.rules,
        config.default_queue.name,
        config.route_context(now, ctx.raw.envelope_to, about),
        matrix=config.priority_matrix,
    )
    given = monitor.priority_of(alert.severity)  # it wins over the rules' impact x urgency
    decision = replace(
        decision,
        queue=monitor.queue or decision.queue,
        priority=given or decision.priority,
        impact=None if given else decision.impact,
        urgency=None if given else decision.urgency,
        type="incident",
        acknowledge=False,
        assignee=decision.assignee
        if decision.assignee not in ("round-robin", "least-open")
        else None,
    )
    ticket = _create(ctx, decision, alert)
    inbound = _store(ctx, ticket, n)
    ref = ctx.app.ref(ticket.id)
    repo.add_event(
        session, ticket, "created", now, actor=ctx.requester, message_id=inbound.message_id, ref=ref
    )
    repo.add_event(session, ticket, "routed", now, **decision_json(decision), monitor=monitor.name)
    repo.new_alert(session, ticket, monitor.name, alert.key, alert.severity, now)
    cis.link(ctx.app, session, ticket, about, "alert", now, actor=monitor.name)
    repo.add_event(session, ticket, "alert", now, actor=monitor.name, **_data(alert), count=1)
    notices.ticket_created(ctx.app, session, ticket, inbound, ctx.msg, decision, now)
    return ticket


def _create(ctx: Context, decision: RoutingDecision, alert: Alert) -> Ticket:
    # A group mail's second incident finds the contact its first one created.
    contact = ctx.contact or repo.contact(ctx.session, ctx.requester)
    contact = contact or repo.new_contact(ctx.session, ctx.requester, ctx.msg.from_name, ctx.now)
    ticket = Ticket(
        requester=contact,
        subject=alert.summary[:1000],
        status=Status.NEW,
        priority=decision.priority,
        queue=decision.queue,
        type=decision.type,
        category=decision.category,
        assignee=decision.assignee,
        tags=list(decision.tags),
        impact=decision.impact,
        urgency=decision.urgency,
        organisation=decision.organisation,
        reply_token=secrets.token_hex(10),
        created_at=ctx.now,
        updated_at=ctx.now,
        service=decision.service,
    )
    sla.started(ctx.app, ticket, decision.matched, ctx.now, decision.services)
    ctx.session.add(ticket)
    ctx.session.flush()
    return ticket


def _store(ctx: Context, ticket: Ticket, n: int) -> Message:
    """The monitor's mail on the incident; where a group mail's earlier alert stored it
    already, under an id of its own (one Message-ID is one message row)."""
    taken = n and repo.message_exists(ctx.session, ctx.msg.message_id)
    message = store_message(ctx, ticket, kind="alert")
    if taken:
        message.message_id = f"<alert{n}.{ctx.msg.message_id.strip('<>')}>"
    return message


def _repeat(
    ctx: Context, monitor: Monitor, alert: Alert, row: AlertState, ticket: Ticket, n: int
) -> None:
    """The alert again: counted on its incident; a recovered one reopens; a new severity
    re-prioritises."""
    session, now = ctx.session, ctx.now
    _store(ctx, ticket, n)
    row.count, row.last_at = row.count + 1, now
    changed = row.state != "problem" and row.state != "acknowledgement"
    if not row.is_open or ticket.status in DONE_STATUSES:
        row.is_open = True
        session.flush()
        actor = lifecycle.Actor(monitor.name, "mail")
        lifecycle.set_status(
            ctx.app,
            session,
            ticket,
            Status.OPEN,
            actor,
            now,
            notify_requester=False,
            reason=f"{alert.key} is {alert.severity or 'a problem'} again",
        )
    row.state = "problem"
    repo.add_event(
        session, ticket, "alert", now, actor=monitor.name, **_data(alert), count=row.count
    )
    if alert.severity and alert.severity != row.severity:
        _severity(ctx, monitor, alert, row, ticket)
    if changed:
        _changed(ctx, monitor, row, ticket)


def _severity(
    ctx: Context, monitor: Monitor, alert: Alert, row: AlertState, ticket: Ticket
) -> None:
    """A new severity: the priority it maps to, and the SLA recomputed (as #priority)."""
    old, row.severity = row.severity, alert.severity
    priority = monitor.priority_of(alert.severity)
    repo.add_event(
        ctx.session,
        ticket,
        "severity",
        ctx.now,
        actor=monitor.name,
        **{"from": old, "to": alert.severity},
    )
    if priority and priority != ticket.priority:
        repo.add_event(
            ctx.session,
            ticket,
            "priority",
            ctx.now,
            actor=monitor.name,
            **{"from": ticket.priority, "to": priority},
        )
        ticket.priority = priority
        sla.refresh(ctx.app, ticket, ctx.now)


def _recovered(
    ctx: Context, monitor: Monitor, alert: Alert, row: AlertState, ticket: Ticket
) -> None:
    """The recovery resolves the incident; the assignee or the queue hears of it."""
    session, now = ctx.session, ctx.now
    row.state, row.is_open = "recovery", False
    repo.add_event(
        session, ticket, "recovered", now, actor=monitor.name, **_data(alert), count=row.count
    )
    actor = lifecycle.Actor(monitor.name, "mail")
    lifecycle.set_status(
        ctx.app,
        session,
        ticket,
        Status.RESOLVED,
        actor,
        now,
        notify_requester=False,
        reason="recovered",
    )
    if not _changed(ctx, monitor, row, ticket):
        _notice(ctx, ticket, "agent_alert_recovered")


def _changed(ctx: Context, monitor: Monitor, row: AlertState, ticket: Ticket) -> bool:
    """Count a state change; True while the key flaps (notices held)."""
    now = ctx.now
    since = now - monitor.flap.within
    changes = [c for c in row.changes if datetime.fromisoformat(c) >= since] + [now.isoformat()]
    row.changes = changes
    flapping = len(changes) > monitor.flap.changes
    if flapping and not row.flapping:
        ticket.tags = [*ticket.tags, FLAPPING] if FLAPPING not in ticket.tags else ticket.tags
        repo.add_event(
            ctx.session, ticket, "flapping", now, actor=monitor.name, changes=len(changes)
        )
    elif row.flapping and not flapping:
        ticket.tags = [t for t in ticket.tags if t != FLAPPING]
        repo.add_event(
            ctx.session, ticket, "settled", now, actor=monitor.name, changes=len(changes)
        )
    row.flapping = flapping
    return flapping


def _notice(ctx: Context, ticket: Ticket, kind: str) -> None:
    notices.to_agents(
        ctx.app,
        ctx.session,
        ticket,
        notices.assignee_or_queue(ctx.app, ticket),
        kind=kind,
        template="agent/alert_recovered",
        ctx=agent_context(ctx.app, ticket, None),
        answers=None,
        now=ctx.now,
    )
