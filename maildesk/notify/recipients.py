"""Who mail to a ticket's requester side goes to (the relay of an agent's reply, status
notices): the requester, Cc the watchers, never the sender of the mail it relays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maildesk.store.models import Contact, Ticket


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""


def relay_recipients(
    ticket: Ticket, watchers: Sequence[str], sender: str = ""
) -> tuple[Contact | Recipient | None, list[str]]:
    """Who mail to the requester side goes to: the requester, Cc the watchers, never the
    sender of the mail it relays (no copies of one's own mail). (None, []) for nobody."""
    requester = ticket.requester
    people = [a for a in dict.fromkeys([requester.email, *watchers]) if a != sender]
    if not people:
        return None, []
    to = requester if people[0] == requester.email else Recipient(people[0])
    return to, people[1:]
