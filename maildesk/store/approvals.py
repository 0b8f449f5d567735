"""The approvals of catalog requests: one row per approver of a ticket (see tickets.approvals)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.store.models import Approval, Ticket
from maildesk.terms import Status
from maildesk.timefmt import iso

PENDING = "pending"


def add_approvals(
    session: Session, ticket_id: int, approvers: Sequence[str], now: datetime
) -> list[Approval]:
    """A pending approval for each approver not yet asked on this ticket."""
    have = {a.approver for a in ticket_approvals(session, ticket_id)}
    rows = [
        Approval(ticket_id=ticket_id, approver=a, decision=PENDING, requested_at=now)
        for a in approvers
        if a not in have
    ]
    session.add_all(rows)
    session.flush()
    return rows


def ticket_approvals(session: Session, ticket_id: int) -> list[Approval]:
    """The ticket's approvals, in the order they were asked."""
    stmt = select(Approval).where(Approval.ticket_id == ticket_id).order_by(Approval.id)
    return list(session.scalars(stmt))


def approval_of(session: Session, ticket_id: int, approver: str) -> Approval | None:
    """That approver's approval on that ticket (locked for the decision), or None."""
    stmt = (
        select(Approval)
        .where(Approval.ticket_id == ticket_id, Approval.approver == approver)
        .with_for_update()
    )
    return session.scalar(stmt)


def waiting_approvals(session: Session) -> list[tuple[Ticket, Approval]]:
    """Pending approvals of tickets awaiting approval, oldest first."""
    stmt = (
        select(Ticket, Approval)
        .join(Approval, Approval.ticket_id == Ticket.id)
        .where(Ticket.status == Status.AWAITING_APPROVAL, Approval.decision == PENDING)
        .order_by(Approval.requested_at, Approval.id)
    )
    return [(t, a) for t, a in session.execute(stmt)]


def approvals_json(approvals: Sequence[Approval]) -> list[dict[str, Any]]:
    """The `approvals` key of a ticket's JSON."""
    return [
        {
            "approver": a.approver,
            "decision": a.decision,
            "at": iso(a.at),
            "comment": a.comment or "",
            "via": a.via,
        }
        for a in approvals
    ]
