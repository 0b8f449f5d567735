"""Contacts: the people who write to the desk, each with one or more addresses.

A contact merged into another keeps its row (its address, its bounce state) with
`merged_into_id` set; `tickets.contact` follows that link, so mail from any of a person's
addresses is theirs, and their tickets are listed together.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from maildesk.store.models import Contact, Ticket


def contact_addresses(session: Session, contact: Contact) -> list[str]:
    """The contact's own address first, then those merged into it (oldest merge first)."""
    merged = session.scalars(
        select(Contact.email)
        .where(Contact.merged_into_id == contact.id)
        .order_by(Contact.merged_at, Contact.id)
    )
    return [contact.email, *merged]


def list_contacts(session: Session, limit: int = 10_000) -> list[tuple[Contact, list[str], int]]:
    """Every contact (not the merged-in addresses) with its addresses and ticket count."""
    grouped = session.execute(
        select(Ticket.requester_id, func.count()).group_by(Ticket.requester_id)
    )
    counts = {requester: int(count) for requester, count in grouped}
    rows = session.scalars(
        select(Contact).where(Contact.merged_into_id.is_(None)).order_by(Contact.id).limit(limit)
    )
    return [(c, contact_addresses(session, c), counts.get(c.id, 0)) for c in rows]


def contact_tickets(session: Session, contact: Contact) -> list[Ticket]:
    """The contact's tickets as requester, newest first."""
    stmt = select(Ticket).where(Ticket.requester_id == contact.id).order_by(Ticket.id.desc())
    return list(session.scalars(stmt.options(selectinload(Ticket.ci_links))))


def merge_contacts(
    session: Session, keep: Contact, other: Contact, by: str, now: datetime
) -> tuple[list[str], list[Ticket]]:
    """Merge `other` (and the addresses merged into it) into `keep`; its tickets' requester
    becomes `keep`. Returns the addresses and the tickets that moved."""
    if keep.id == other.id:
        return [], []
    addresses = contact_addresses(session, other)
    tickets = contact_tickets(session, other)
    session.execute(
        update(Contact)
        .where(Contact.merged_into_id == other.id)
        .values(merged_into_id=keep.id)
        .execution_options(synchronize_session="fetch")
    )
    other.merged_into_id, other.merged_at, other.merged_by = keep.id, now, by
    for ticket in tickets:
        ticket.requester = keep
    session.flush()
    return addresses, tickets
