"""Problems and alerts: the alert state of monitored incidents (one open per key), a
problem's incidents, and the listing of problems."""

from __future__ import annotations

import zlib
from datetime import datetime

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from maildesk.store.models import AlertState, Ticket, TicketLink
from maildesk.terms import DONE_STATUSES, TicketType

ALERT_LOCK = 0x616C6572  # the high half of an alert key's advisory lock ("aler")


def lock_alert_key(session: Session, monitor: str, key: str) -> None:
    """Hold the alert key until the transaction ends, so that two daemons receiving the
    same alert take turns: the second finds the first one's incident. SQLite serialises
    writers anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return
    lock = ALERT_LOCK << 32 | zlib.crc32(f"{monitor}\0{key}".encode())
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})


def latest_alert(session: Session, monitor: str, key: str) -> AlertState | None:
    """The newest alert row of a key (open, or the last one closed)."""
    stmt = (
        select(AlertState)
        .where(AlertState.monitor == monitor, AlertState.key == key)
        .order_by(AlertState.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def new_alert(
    session: Session, ticket: Ticket, monitor: str, key: str, severity: str, now: datetime
) -> AlertState:
    """The alert row of a newly opened incident."""
    row = AlertState(
        ticket_id=ticket.id,
        monitor=monitor,
        key=key,
        state="problem",
        severity=severity,
        count=1,
        first_at=now,
        last_at=now,
        is_open=True,
        flapping=False,
        changes=[now.isoformat()],
    )
    session.add(row)
    session.flush()  # the unique open key is checked here, not at commit
    return row


# Asked for every notification's context: built once (PREBUILT in maildesk.store.db).
_ALERT_OF = (
    select(AlertState)
    .where(AlertState.ticket_id == bindparam("ticket"))
    .order_by(AlertState.id.desc())
    .limit(1)
)
_RELATED = (
    select(Ticket)
    .join(TicketLink, TicketLink.linked_id == Ticket.id)
    .where(TicketLink.ticket_id == bindparam("ticket"), TicketLink.relation == bindparam("rel"))
    .order_by(Ticket.id)
)


def ticket_alert(session: Session, ticket_id: int) -> AlertState | None:
    """The alert an incident was opened for (the newest, if it was reopened)."""
    return session.scalar(_ALERT_OF, {"ticket": ticket_id})


def related(session: Session, ticket_id: int, relation: str) -> list[Ticket]:
    """The tickets that are this ticket's `relation` (problem, incident), oldest first."""
    return list(session.scalars(_RELATED, {"ticket": ticket_id, "rel": relation}))


def list_problems(session: Session) -> list[tuple[Ticket, int, int]]:
    """Every problem with its number of incidents and of open ones, newest first."""
    counts = dict(
        session.execute(
            select(TicketLink.ticket_id, func.count())
            .where(TicketLink.relation == "incident")
            .group_by(TicketLink.ticket_id)
        ).all()
    )
    open_counts = dict(
        session.execute(
            select(TicketLink.ticket_id, func.count())
            .join(Ticket, Ticket.id == TicketLink.linked_id)
            .where(TicketLink.relation == "incident", Ticket.status.not_in(DONE_STATUSES))
            .group_by(TicketLink.ticket_id)
        ).all()
    )
    problems = session.scalars(
        select(Ticket).where(Ticket.type == TicketType.PROBLEM).order_by(Ticket.id.desc())
    )
    return [(p, int(counts.get(p.id, 0)), int(open_counts.get(p.id, 0))) for p in problems]


def recent_incidents(session: Session, since: datetime) -> list[Ticket]:
    """Incidents opened since then, oldest first (for detection)."""
    stmt = (
        select(Ticket)
        .where(Ticket.type == TicketType.INCIDENT, Ticket.created_at >= since)
        .order_by(Ticket.id)
    )
    return list(session.scalars(stmt))
