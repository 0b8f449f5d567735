"""Why a notification is held back: the reasons its `notification_suppressed` event records.

Each check answers a reason or None; the caller records the event (notices.suppressed).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.mail.message import ParsedMessage
from maildesk.routing.guard import may_auto_reply
from maildesk.routing.rules import RoutingDecision
from maildesk.store import repo
from maildesk.store.models import Contact, Ticket

HOUR = timedelta(hours=1)


def ticket_over_limit(app: App, session: Session, ticket: Ticket, now: datetime) -> str | None:
    """A ticket that has sent `[notify] per_ticket_per_hour` mails within the hour sends no
    more: whatever loop two misbehaving autoresponders build through a ticket stops there."""
    limit = app.config.notify.per_ticket_per_hour
    if limit and repo.outbound_since(session, ticket.id, now - HOUR) >= limit:
        return f"ticket sent {limit} mails within the hour ([notify] per_ticket_per_hour)"
    return None


def no_acknowledgement(
    app: App,
    session: Session,
    ticket: Ticket,
    msg: ParsedMessage,
    decision: RoutingDecision,
    now: datetime,
) -> str | None:
    """Why a new ticket gets no acknowledgement (config, rule, guard, bounces, rate), or None."""
    config = app.config
    requester = ticket.requester
    queue = config.queue(ticket.queue)
    verdict = may_auto_reply(msg, config.own_addresses)
    on_behalf = msg.from_addr != requester.email and config.agent(msg.from_addr) is not None
    return (
        "acknowledgements are off"
        if not config.notify.acknowledge or (queue is not None and not queue.acknowledge)
        else f"opened by {msg.from_addr} on the requester's behalf "
        "([notify] acknowledge_forwarded = false)"
        if on_behalf and not config.notify.acknowledge_forwarded
        else f"no acknowledgement by rule (matched: {', '.join(decision.matched)})"
        if decision.acknowledge is False
        else verdict.reason
        if not verdict.allowed
        else f"requester address bounces: {requester.bounce_reason}"
        if requester.bounced_at is not None
        else _rate_limited(session, config.notify.auto_replies_per_hour, requester, now)
    )


def _rate_limited(session: Session, limit: int, contact: Contact, now: datetime) -> str | None:
    """The rate limit when `contact` had `limit` acknowledgements within the hour, or None."""
    if limit and repo.auto_replies_since(session, contact, now - HOUR) >= limit:
        return f"rate limit: {limit} acknowledgements to {contact.email} within the last hour"
    return None


def notice_rate_limited(
    app: App, session: Session, kind: str, address: str, now: datetime
) -> str | None:
    """The rate limit when `address` got `[notify] auto_replies_per_hour` notices of this
    kind within the hour (over all tickets), or None."""
    limit = app.config.notify.auto_replies_per_hour
    if limit and repo.notices_to_since(session, kind, address, now - HOUR) >= limit:
        return f"rate limit: {limit} {kind} notices to {address} within the last hour"
    return None
