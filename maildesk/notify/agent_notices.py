"""Notices to one agent about mail from their address: kept but not relayed (nothing proves
it theirs), or a `#requester` that named no customer. Queued in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.notify.notices import suppressed, to_agent
from maildesk.notify.suppression import notice_rate_limited
from maildesk.store import repo
from maildesk.store.models import Message, Ticket


def requester_not_set(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    agent: Agent,
    error: str,
    now: datetime,
) -> None:
    """An agent's `#requester` named no customer: the ticket is theirs, the mail internal,
    and they hear why (as of any other bad command)."""
    repo.no_outbound_yet(session, ticket.id)
    to_agent(
        app,
        session,
        ticket,
        agent,
        kind="command_error",
        template="agent/command_error",
        answers=inbound,
        now=now,
        errors=[error],
        commands=[error.partition(":")[0]],
    )


def reply_not_relayed(
    app: App,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    inbound: Message,
    why: str,
    now: datetime,
) -> None:
    """Mail from an agent's address that is not proven theirs was kept, not relayed: the
    agent hears why, at their configured address only (never at another From, which would
    make this a way to mail anyone), at most `[notify] auto_replies_per_hour` an hour."""
    reason = notice_rate_limited(app, session, "reply_not_relayed", agent.email, now)
    if reason:
        suppressed(app, session, ticket, "reply_not_relayed", reason, now)
        return
    to_agent(
        app,
        session,
        ticket,
        agent,
        kind="reply_not_relayed",
        template="agent/reply_not_relayed",
        answers=inbound,
        now=now,
        why=why,
    )
