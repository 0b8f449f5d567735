"""A ticket's SLA columns, kept in step with its changes. Called inside the change's transaction.

The pure clock (maildesk.sla.clock) works on `SlaState`; this module reads and writes that
state on a stored ticket, recomputes the due columns and `sla_next_check` (what the
scheduler selects on) after every change, and turns an `SlaCheck` into events, notices and
escalations. maildesk.tickets.lifecycle calls it on status, priority and queue changes; the pipeline
on a new ticket; an agent's first public reply records the first response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.notify import notices
from maildesk.sla.clock import (
    PAUSED,
    SlaCheck,
    SlaEvent,
    SlaState,
    check_sla,
    consumed_at,
    deadlines,
    record_first_response,
    set_policy,
    set_status,
    start_clock,
)
from maildesk.sla.lifecycle import next_lifecycle_step
from maildesk.sla.policy import select_policy
from maildesk.store import repo, views
from maildesk.store.cis import ticket_services
from maildesk.store.models import Ticket

log = logging.getLogger(__name__)
SLA_ACTOR = "sla"  # the actor of changes the SLA makes itself (escalations)
US = timedelta(microseconds=1)
# An imported ticket (maildesk import) older than this gets no SLA clock: its targets were
# missed or met long before the desk saw it, and its breach notices would mail the past.
HISTORIC_SLA_HORIZON = timedelta(days=1)


def state_of(ticket: Ticket) -> SlaState:
    return SlaState(
        policy=ticket.sla_policy,
        consumed=timedelta(microseconds=ticket.sla_consumed_us or 0),
        running_since=ticket.sla_running_since,
        first_response_at=ticket.first_response_at,
        response_warned_at=ticket.sla_response_warned_at,
        response_breached_at=ticket.sla_response_breached_at,
        resolution_warned_at=ticket.sla_resolution_warned_at,
        resolution_breached_at=ticket.sla_resolution_breached_at,
    )


def _store(ticket: Ticket, state: SlaState) -> None:
    ticket.sla_policy = state.policy
    ticket.sla_consumed_us = state.consumed // US
    ticket.sla_running_since = state.running_since
    ticket.first_response_at = state.first_response_at
    ticket.sla_response_warned_at = state.response_warned_at
    ticket.sla_response_breached_at = state.response_breached_at
    ticket.sla_resolution_warned_at = state.resolution_warned_at
    ticket.sla_resolution_breached_at = state.resolution_breached_at


def refresh(app: App, ticket: Ticket, now: datetime) -> None:
    """Recompute the due columns and when the scheduler must look at the ticket next."""
    sla = app.config.sla
    due = deadlines(state_of(ticket), sla, status=ticket.status, priority=ticket.priority, now=now)
    ticket.sla_response_due, ticket.sla_resolution_due = due.response_due, due.resolution_due
    step = next_lifecycle_step(
        sla,
        policy=ticket.sla_policy,
        status=ticket.status,
        status_since=ticket.status_changed_at or ticket.updated_at,
        reminded_at=ticket.reminded_at,
    )
    checks = [t for t in (due.next_check, step.at if step else None) if t is not None]
    ticket.sla_next_check = min(checks, default=None)


def started(
    app: App,
    ticket: Ticket,
    matched_rules: Sequence[str],
    now: datetime,
    services: Sequence[str] = (),
) -> None:
    """A new ticket: pick its policy and start its clock; `services`: what it is about."""
    sla = app.config.sla
    policy = select_policy(
        sla,
        queue=ticket.queue,
        matched_rules=matched_rules,
        organisation_policy=_organisation_policy(app, ticket),
        service_policy=_service_policy(app, services),
    )
    name = policy.name if policy else None
    if _historic(app, now):
        name = None  # no policy: no due times, nothing falls due
    ticket.status_changed_at = now
    _store(ticket, start_clock(sla, policy=name, status=ticket.status, created_at=now))
    refresh(app, ticket, now)


def _historic(app: App, created_at: datetime) -> bool:
    """An imported ticket older than HISTORIC_SLA_HORIZON: it starts no clock."""
    replay = app.replay
    if replay is None or not replay.historic or app.now() - created_at <= HISTORIC_SLA_HORIZON:
        return False
    replay.without_sla += 1
    return True


def _organisation_policy(app: App, ticket: Ticket) -> str | None:
    """The SLA policy of the ticket's organisation, if it names one."""
    org = app.config.organisation(ticket.organisation)
    return org.sla_policy if org is not None else None


def _service_policy(app: App, services: Sequence[str]) -> str | None:
    """The SLA policy of the first of the services that names one."""
    found = (app.config.service(name) for name in services)
    return next((s.sla_policy for s in found if s is not None and s.sla_policy), None)


def status_changed(app: App, ticket: Ticket, now: datetime) -> None:
    """After `ticket.status` changed: pause, stop or run the clock."""
    ticket.status_changed_at = now
    _store(ticket, set_status(state_of(ticket), app.config.sla, status=ticket.status, now=now))
    refresh(app, ticket, now)


def queue_changed(app: App, session: Session, ticket: Ticket, now: datetime) -> None:
    """After a move to another queue: the policy is chosen again (a rule's choice stays)."""
    sla = app.config.sla
    policy = select_policy(
        sla,
        queue=ticket.queue,
        matched_rules=repo.routed_by(session, ticket),
        organisation_policy=_organisation_policy(app, ticket),
        service_policy=_service_policy(app, ticket_services(ticket)),
    )
    state = set_policy(state_of(ticket), sla, policy=policy.name if policy else None, now=now)
    _store(ticket, state)
    refresh(app, ticket, now)


def policy_chosen(app: App, ticket: Ticket, policy: str, now: datetime) -> None:
    """A catalog item's own policy replaces the one routing chose."""
    _store(ticket, set_policy(state_of(ticket), app.config.sla, policy=policy, now=now))
    refresh(app, ticket, now)


def first_response(app: App, session: Session, ticket: Ticket, now: datetime) -> None:
    """An agent answered the requester: the first-response target is met (or was late)."""
    if ticket.first_response_at is not None:
        return
    _checked(app, session, ticket, now, record_first_response)


def check(app: App, session: Session, ticket: Ticket, now: datetime) -> SlaCheck:
    """Warnings and breaches due now, recorded with their notices and escalations."""
    return _checked(app, session, ticket, now, check_sla)


def _checked(
    app: App,
    session: Session,
    ticket: Ticket,
    now: datetime,
    how: Callable[..., SlaCheck],
) -> SlaCheck:
    result = how(
        state_of(ticket),
        app.config.sla,
        status=ticket.status,
        priority=ticket.priority,
        queue=ticket.queue,
        assignee=ticket.assignee,
        now=now,
    )
    apply_check(app, session, ticket, result, now)
    return result


def apply_check(
    app: App, session: Session, ticket: Ticket, result: SlaCheck, now: datetime
) -> None:
    """Store the clock, record each warning or breach and do what the escalations say."""
    _store(ticket, result.state)
    breached_in = ticket.queue  # notices go to the lead of the queue it breached in
    for event in result.events:
        _record(app, session, ticket, event, result, breached_in, now)
    via = {"actor": SLA_ACTOR, "via": "scheduler"}
    if result.priority is not None and result.priority != ticket.priority:
        old, ticket.priority = ticket.priority, result.priority
        repo.add_event(
            session,
            ticket,
            "priority",
            now,
            **via,
            **{"from": old, "to": result.priority},
            reason="SLA escalation",
        )
    if result.queue is not None and result.queue != ticket.queue:
        old, ticket.queue = ticket.queue, result.queue
        repo.add_event(
            session,
            ticket,
            "queue",
            now,
            **via,
            **{"from": old, "to": result.queue},
            reason="SLA escalation",
        )
        queue_changed(app, session, ticket, now)  # refreshes the due times itself
        return
    refresh(app, ticket, now)


def _record(
    app: App,
    session: Session,
    ticket: Ticket,
    event: SlaEvent,
    result: SlaCheck,
    queue: str,
    now: datetime,
) -> None:
    kind = f"sla_{event.kind}"
    data = sla_context(event)
    repo.add_event(session, ticket, kind, now, actor=SLA_ACTOR, via="scheduler", **data)
    log.warning(
        "%s SLA %s: %s %s used, %s %s (policy %s, %s)",
        app.ref(ticket.id),
        event.kind,
        event.target,
        data["consumed"],
        "warns at" if event.kind == "warning" else "target",
        data["limit"],
        event.policy,
        event.priority,
    )
    agents: list[Agent | notices.Recipient] = list(notices.assignee_or_queue(app, ticket))
    if event.kind == "breach":
        agents += [notices.Recipient(a) for a in result.notify]
    notices.to_agents(
        app,
        session,
        ticket,
        agents,
        kind=kind,
        template=f"agent/sla_{event.kind}",
        ctx=notices.context(app, ticket, None, sla={**data, "escalated_to": list(result.notify)}),
        answers=None,
        now=now,
    )


def _hours(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def sla_context(event: SlaEvent) -> dict[str, object]:
    """An SLA event as event data and as the `sla` variable of its template."""
    return {
        "kind": event.kind,
        "target": event.target,
        "target_name": "first response" if event.target == "first_response" else "resolution",
        "policy": event.policy,
        "priority": event.priority,
        "limit": _hours(event.limit),
        "consumed": _hours(event.consumed),
        "crossed_at": event.crossed_at.isoformat() if event.crossed_at else None,
    }


def consumed(app: App, ticket: Ticket, now: datetime) -> timedelta:
    return consumed_at(state_of(ticket), app.config.sla, now)


def standing(ticket: Ticket) -> str:
    """breached, at risk (warned), paused or ok: what `maildesk sla` shows."""
    response_open = ticket.first_response_at is None
    if ticket.sla_resolution_breached_at or (response_open and ticket.sla_response_breached_at):
        return "breached"
    if ticket.status in PAUSED:
        return "paused"
    if ticket.sla_resolution_warned_at or (response_open and ticket.sla_response_warned_at):
        return "at risk"
    return "ok"


STANDING_ORDER = {"breached": 0, "at risk": 1, "ok": 2, "paused": 3}


def standings(
    app: App, session: Session, now: datetime, *, everything: bool = False
) -> list[dict[str, Any]]:
    """Tickets at risk and in breach (every one under a policy, with `everything`), worst
    first, as `maildesk sla --json` and `GET /api/sla` list them."""
    prefix, rows = app.config.desk.ref_prefix, []
    for ticket in repo.sla_tickets(session):
        state = standing(ticket)
        if everything or state in ("breached", "at risk"):
            used = consumed(app, ticket, now).total_seconds()
            rows.append(views.sla_json(ticket, prefix, state=state, consumed=used))
    return sorted(
        rows, key=lambda r: (STANDING_ORDER[r["state"]], r["resolution_due"] or "9", r["id"])
    )
