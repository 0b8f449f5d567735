"""What a requester does to their own ticket by mail: resolve it (the same lifecycle step
an agent's `#status resolved` takes, with a receipt to the requester instead of the usual
resolution notice), and answer its satisfaction survey (recorded, never reopening it; a
`bad` answer tells the assignee and the queue lead)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.notify import selfservice as notify
from maildesk.routing.selfservice import SurveyAnswer
from maildesk.store import repo
from maildesk.store.models import Message, Ticket
from maildesk.terms import Status
from maildesk.tickets import lifecycle
from maildesk.tickets.lifecycle import Actor
from maildesk.timefmt import iso

log = logging.getLogger(__name__)

SURVEY_ANSWERED = "survey_answered"


def resolve_by_requester(
    app: App, session: Session, ticket: Ticket, inbound: Message, word: str, now: datetime
) -> str | None:
    """Resolve the ticket at its requester's word; the change, or None if it already was."""
    actor = Actor(ticket.requester.email, "mail")
    change = lifecycle.set_status(
        app,
        session,
        ticket,
        Status.RESOLVED,
        actor,
        now,
        notify_requester=False,
        reason=f"resolved by the requester ({word!r} in their reply)",
    )
    if change is not None:
        notify.closed_by_you(app, session, ticket, inbound, now)
    return change


def survey_pending(ticket: Ticket) -> bool:
    """A survey went to the requester and has no answer yet."""
    kinds = {e.kind for e in ticket.events}
    return "survey_sent" in kinds and SURVEY_ANSWERED not in kinds


def record_answer(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    answer: SurveyAnswer,
    now: datetime,
) -> dict[str, Any]:
    """Record the answer on the ticket (its status untouched); a bad one is escalated."""
    csat = {"score": answer.score, "comment": answer.comment, "at": iso(now)}
    repo.add_event(
        session,
        ticket,
        SURVEY_ANSWERED,
        now,
        actor=ticket.requester.email,
        message_id=inbound.message_id,
        score=answer.score,
        comment=answer.comment,
    )
    if answer.bad:
        notify.survey_bad(app, session, ticket, inbound, csat, now)
    log.info("%s: survey answered %s", app.ref(ticket.id), answer.score)
    return csat
