"""The approvals of catalog requests: asking the approvers, counting their decisions (N of M),
rejection and expiry (closed, requester told), reminders; every decision an event.

A request whose fields are complete and whose item has approvers waits in status
`awaiting-approval` (its SLA clock paused); `approvals_required` approvals move it to its
queue as `open`; one rejection closes it. A decision counts only with proof (the pipeline
and the CLI check it before calling `decide`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.notify import approval_notices as notify
from maildesk.notify import notices
from maildesk.notify.context import agent_context
from maildesk.routing.catalog import CatalogItem
from maildesk.store import approvals as store
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.terms import Status
from maildesk.tickets import lifecycle
from maildesk.tickets.lifecycle import Actor

log = logging.getLogger(__name__)

APPROVED, REJECTED, EXPIRED = "approved", "rejected", "expired"


@dataclass(frozen=True)
class Decided:
    """What a decision did, in words (for the CLI and the raw message's reason)."""

    text: str
    changed: bool


def request_approval(
    app: App, session: Session, ticket: Ticket, item: CatalogItem, now: datetime
) -> None:
    """Put the ticket in awaiting-approval and mail each of the item's approvers."""
    approvers = app.config.approvers_of(item)
    lifecycle.set_status(
        app,
        session,
        ticket,
        Status.AWAITING_APPROVAL,
        Actor("system", "mail"),
        now,
        reason=f"catalog item {item.name!r} needs {item.approvals_required} approval(s)",
    )
    for row in store.add_approvals(session, ticket.id, approvers, now):
        notify.approval_request(app, session, ticket, item, row.approver, now)
    repo.add_event(
        session,
        ticket,
        "approval_requested",
        now,
        approvers=list(approvers),
        required=item.approvals_required,
    )


def decide(
    app: App,
    session: Session,
    ticket: Ticket,
    approver: str,
    decision: str,
    *,
    comment: str,
    via: str,
    proof: str,
    now: datetime,
) -> Decided:
    """Record a proven approver's decision and what it brings about."""
    ref = app.ref(ticket.id)
    row = store.approval_of(session, ticket.id, approver)
    if row is None:
        return Decided(f"{approver} is not an approver of {ref}", False)
    if ticket.status != Status.AWAITING_APPROVAL or row.decision != store.PENDING:
        return Decided(f"{ref} is not awaiting {approver}'s approval ({row.decision})", False)
    row.decision, row.at, row.comment, row.via = decision, now, comment, proof
    repo.add_event(
        session,
        ticket,
        f"approval_{decision}",
        now,
        actor=approver,
        via=via,
        proof=proof,
        comment=comment,
    )
    item = app.config.catalog_item(ticket.catalog_item)
    if item is None:
        return Decided(f"{decision} recorded; catalog item {ticket.catalog_item!r} is gone", True)
    if decision == REJECTED:
        _close(app, session, ticket, item, REJECTED, now, comment, approver)
        return Decided(f"{ref} rejected by {approver}: closed", True)
    approved = sum(r.decision == APPROVED for r in store.ticket_approvals(session, ticket.id))
    if approved < item.approvals_required:
        return Decided(f"approved by {approver} ({approved} of {item.approvals_required})", True)
    lifecycle.set_status(
        app, session, ticket, Status.OPEN, Actor(approver, via), now, reason="approved"
    )
    notify.to_requester_decided(app, session, ticket, item, APPROVED, now)
    notices.to_agents(
        app,
        session,
        ticket,
        notices.assignee_or_queue(app, ticket),
        kind="request_approved",
        template="agent/ticket_created",
        ctx=agent_context(app, ticket, None),
        answers=None,
        now=now,
    )
    return Decided(f"{ref} approved ({approved} of {item.approvals_required}): open", True)


def _close(
    app: App,
    session: Session,
    ticket: Ticket,
    item: CatalogItem,
    outcome: str,
    now: datetime,
    reason: str,
    actor: str,
) -> None:
    """Rejected or expired: the other pending approvals end, the ticket closes, the
    requester is told."""
    for row in store.ticket_approvals(session, ticket.id):
        if row.decision == store.PENDING:
            row.decision, row.at = EXPIRED if outcome == EXPIRED else "cancelled", now
    lifecycle.set_status(
        app,
        session,
        ticket,
        Status.CLOSED,
        Actor(actor, "mail" if outcome == REJECTED else "scheduler"),
        now,
        notify_requester=False,
        reason=f"{outcome}: {reason}" if reason else outcome,
    )
    notify.to_requester_decided(app, session, ticket, item, outcome, now, reason)


def check_waiting(app: App, session: Session, now: datetime) -> int:
    """Remind the approvers of requests waiting past the item's approval_timeout; expire
    those waiting twice that. Returns how many mails and expiries it caused."""
    done = 0
    expired: set[int] = set()
    for ticket, row in store.waiting_approvals(session):
        item = app.config.catalog_item(ticket.catalog_item)
        if item is None or ticket.id in expired:
            continue
        age = now - row.requested_at
        if age >= 2 * item.approval_timeout:
            repo.add_event(session, ticket, "approval_expired", now, actor="scheduler")
            _close(app, session, ticket, item, EXPIRED, now, "", "scheduler")
            expired.add(ticket.id)
            done += 1
        elif age >= item.approval_timeout and row.reminded_at is None:
            row.reminded_at = now
            notify.approval_request(app, session, ticket, item, row.approver, now, reminder=True)
            repo.add_event(
                session, ticket, "approval_reminded", now, actor="scheduler", approver=row.approver
            )
            done += 1
    return done
