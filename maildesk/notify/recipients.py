"""Who mail to a ticket's requester side goes to (the relay of an agent's reply, status
notices): the requester, Cc the watchers, never the sender of the mail it relays; and
which agents hear of a ticket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maildesk.app import App
from maildesk.config import Agent
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


def new_ticket_agents(app: App, ticket: Ticket) -> list[Agent]:
    """The queue's agents, and the ticket's assignee (a rule's) if not one of them."""
    agents = list(app.config.agents_of(ticket.queue))
    assignee = app.config.agent(ticket.assignee) if ticket.assignee else None
    if assignee and assignee not in agents:
        agents.append(assignee)
    return agents


def assignee_or_queue(app: App, ticket: Ticket) -> list[Agent]:
    """Who hears of a ticket's news: its assignee, or with none its queue's agents."""
    assignee = app.config.agent(ticket.assignee) if ticket.assignee else None
    return [assignee] if assignee else list(app.config.agents_of(ticket.queue))
