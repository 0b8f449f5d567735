"""The configuration items a ticket is about (`ticket_cis`): linked, unlinked, listed.

A link keeps the CI's services as they were when it was made; the ticket's events
(`ci_linked`, `ci_unlinked`) are written by maildesk.tickets.cis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.store.models import Ticket, TicketCi


def ticket_cis(session: Session, ticket_id: int) -> list[TicketCi]:
    """The ticket's CI links, in the order they were made."""
    stmt = select(TicketCi).where(TicketCi.ticket_id == ticket_id).order_by(TicketCi.id)
    return list(session.scalars(stmt))


def link_ci(
    session: Session,
    ticket: Ticket,
    ci: str,
    services: Sequence[str],
    source: str,
    actor: str,
    now: datetime,
) -> TicketCi | None:
    """Link a CI to the ticket; None if it is linked already."""
    if any(link.ci == ci for link in ticket.ci_links):
        return None
    link = TicketCi(
        ticket_id=ticket.id,
        ci=ci,
        services=list(services),
        source=source,
        added_at=now,
        added_by=actor,
    )
    ticket.ci_links.append(link)  # written with the ticket's other rows
    return link


def unlink_ci(session: Session, ticket: Ticket, ci: str) -> bool:
    """Remove the ticket's link to a CI; False if there was none."""
    link = next((x for x in ticket.ci_links if x.ci == ci), None)
    if link is None:
        return False
    ticket.ci_links.remove(link)
    session.flush()
    return True


def ticket_services(ticket: Ticket) -> list[str]:
    """What the ticket is about: the service a rule set, then its CIs' services, each once."""
    return services_about(ticket.service, (link.services for link in ticket.ci_links))


def services_about(service: str | None, linked: Iterable[Sequence[str] | None]) -> list[str]:
    """ticket_services from the ticket's `service` and its links' services, in link order."""
    found = dict.fromkeys([service] if service else [])
    for services in linked:
        found.update(dict.fromkeys(services or []))
    return list(found)


def tickets_on_cis(session: Session, cis: Iterable[str]) -> list[Ticket]:
    """The tickets linked to any of the CIs, newest first."""
    wanted = list(cis)
    if not wanted:
        return []
    ids = select(TicketCi.ticket_id).where(TicketCi.ci.in_(wanted))
    stmt = select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id.desc())
    return list(session.scalars(stmt))
