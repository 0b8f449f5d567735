"""The notices of a change's window: "change starting" at its start to the assignee and the
watchers; "window passed" to the assignee and the queue lead when the change is still open an
hour after its window ended. Queued in the caller's transaction (see maildesk.jobs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.notify.context import agent_context
from maildesk.notify.notices import assignee_or_queue, to_agents
from maildesk.notify.recipients import Recipient
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.timefmt import iso, local_text


def _change(app: App, ticket: Ticket) -> dict[str, Any]:
    zone = app.config.desk.timezone
    return {
        "start": iso(ticket.change_start),
        "end": iso(ticket.change_end),
        "start_local": local_text(ticket.change_start, zone),
        "end_local": local_text(ticket.change_end, zone),
        "timezone": zone,
        "assignee": ticket.assignee,
    }


def change_starting(app: App, session: Session, ticket: Ticket, now: datetime) -> None:
    """The window starts: the assignee (or with none the queue) and each watcher hear it."""
    people: list[Agent | Recipient] = list(assignee_or_queue(app, ticket))
    people += [Recipient(w) for w in repo.watchers(session, ticket.id)]
    to_agents(
        app,
        session,
        ticket,
        people,
        kind="change_starting",
        template="agent/change_starting",
        ctx=agent_context(app, ticket, None, change=_change(app, ticket)),
        answers=None,
        now=now,
    )


def change_window_passed(app: App, session: Session, ticket: Ticket, now: datetime) -> None:
    """An hour after the window the change is still open: the assignee (or the queue) and
    the queue's lead (`[sla] leads`) hear it."""
    people: list[Agent | Recipient] = list(assignee_or_queue(app, ticket))
    lead = app.config.sla.lead(ticket.queue)
    if lead:
        people.append(app.config.agent(lead) or Recipient(lead))
    to_agents(
        app,
        session,
        ticket,
        people,
        kind="change_window_passed",
        template="agent/change_window_passed",
        ctx=agent_context(app, ticket, None, change=_change(app, ticket)),
        answers=None,
        now=now,
    )
