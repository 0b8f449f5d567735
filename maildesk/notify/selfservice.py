"""Self-service mail: the status list a requester asked for (to their address alone, on no
ticket), the receipt of a ticket they closed, the satisfaction survey, and the notice of a
`bad` answer to the assignee and the queue lead. Queued in the caller's transaction."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.notify.context import agent_context, context
from maildesk.notify.notices import send, suppressed, to_agents
from maildesk.notify.outbox import enqueue_unthreaded
from maildesk.notify.recipients import Recipient
from maildesk.store import repo
from maildesk.store.models import Message, Ticket
from maildesk.timefmt import iso

log = logging.getLogger(__name__)

STATUS_KIND = "status_list"
RECENT = timedelta(days=30)  # resolved tickets a status list still shows
HOUR = timedelta(hours=1)


def status_list(app: App, session: Session, address: str, now: datetime) -> str:
    """Mail `address` its own open tickets and those resolved lately; what was done.

    It goes to that address only, whoever the mail claimed to come from: a forged From
    makes the real owner get their own list, never the forger. Rate-limited per address
    as acknowledgements are ([notify] auto_replies_per_hour).
    """
    limit = app.config.notify.auto_replies_per_hour
    if limit and repo.status_mails_since(session, STATUS_KIND, address, now - HOUR) >= limit:
        return f"rate limit: {limit} status lists to {address} within the last hour"
    contact = repo.contact(session, address)
    if contact is not None and contact.bounced_at is not None:
        return f"address bounces: {contact.bounce_reason}"
    open_, resolved = (
        repo.requester_tickets(session, contact, now - RECENT) if contact else ([], [])
    )
    ctx = {
        **_desk(app),
        "recipient": {"email": address, "name": contact.name if contact else ""},
        "tickets": [_line(app, t) for t in open_],
        "resolved": [_line(app, t) for t in resolved[:10]],
    }
    rendered = app.templates.render("requester/status", ctx)
    message_id = enqueue_unthreaded(session, app.config.desk, STATUS_KIND, address, rendered, now)
    log.info("queued status list %s to %s (%d open)", message_id, address, len(open_))
    return ""


def _desk(app: App) -> dict[str, Any]:
    desk = app.config.desk
    return {
        "desk": {
            "name": desk.name,
            "address": desk.address,
            "reopen_days": desk.reopen_window.days,
        }
    }


def _line(app: App, ticket: Ticket) -> dict[str, Any]:
    """One ticket of a status list: what its requester may see of it."""
    agent = app.config.agent(ticket.assignee) if ticket.assignee else None
    due = ticket.sla_response_due if ticket.first_response_at is None else None
    return {
        "ref": app.ref(ticket.id),
        "subject": ticket.subject,
        "status": ticket.status,
        "assignee_name": (agent.name or "an agent") if agent else None,
        "updated_at": iso(ticket.updated_at),
        "resolved_at": iso(ticket.resolved_at),
        "next_due": iso(due or ticket.sla_resolution_due) if ticket.sla_policy else None,
    }


def closed_by_you(
    app: App, session: Session, ticket: Ticket, answers: Message, now: datetime
) -> None:
    """The receipt of a ticket its requester resolved by reply: to the requester alone."""
    _to_requester(
        app, session, ticket, answers, "closed_by_requester", "requester/closed_by_you", now
    )


def survey(app: App, session: Session, ticket: Ticket, now: datetime) -> Message | None:
    """The satisfaction survey of a resolved ticket, to its requester alone."""
    thread = repo.public_thread(session, ticket.id)
    return _to_requester(
        app, session, ticket, thread[-1] if thread else None, "survey", "requester/survey", now
    )


def _to_requester(
    app: App,
    session: Session,
    ticket: Ticket,
    answers: Message | None,
    kind: str,
    template: str,
    now: datetime,
) -> Message | None:
    requester = ticket.requester
    if requester.bounced_at is not None:
        suppressed(app, session, ticket, kind, f"requester address bounces: {requester.email}", now)
        return None
    thread = repo.public_thread(session, ticket.id)
    return send(
        app,
        session,
        ticket,
        kind=kind,
        template=template,
        ctx=context(app, ticket, None),
        to=requester,
        role="requester",
        answers=answers,
        references=[m.message_id for m in thread if answers is None or m.id != answers.id][-10:],
        auto_submitted="auto-generated",
        internal=False,
        now=now,
    )


def survey_bad(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    csat: dict[str, Any],
    now: datetime,
) -> None:
    """A `bad` survey answer: the assignee and the queue lead hear of it (with neither,
    the queue's agents)."""
    people: list[Agent | Recipient] = []
    assignee = app.config.agent(ticket.assignee) if ticket.assignee else None
    if assignee is not None:
        people.append(assignee)
    lead = app.config.sla.lead(ticket.queue)
    if lead:
        people.append(app.config.agent(lead) or Recipient(lead))
    if not people:
        people = list(app.config.agents_of(ticket.queue))
    to_agents(
        app,
        session,
        ticket,
        people,
        kind="agent_survey_bad",
        template="agent/survey_bad",
        ctx=agent_context(app, ticket, inbound, csat=csat),
        answers=inbound,
        now=now,
    )
