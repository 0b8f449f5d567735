"""The one pipeline: a stored raw message becomes ticket changes, in one transaction.

Ingest edges (SMTP, `deliver`, `import`, IMAP) call `store_raw` and answer their peer once it
has committed; then `process` parses, guards, threads, routes and writes the ticket, its
events and its notifications (outbox rows) together. A message that fails anywhere in here
is quarantined with the reason; its raw bytes are never lost.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maildesk import views
from maildesk.app import App
from maildesk.bounce import Bounce
from maildesk.bounce import recognise as recognise_bounce
from maildesk.config import Agent
from maildesk.errors import NotMail, StoreUnavailable
from maildesk.guard import is_own_loop, may_auto_reply
from maildesk.ingest.parse import ParsedMessage, parse_message
from maildesk.notify.outbox import Notification, enqueue
from maildesk.routing.rules import STRATEGIES, RoutingDecision, route
from maildesk.store import repo
from maildesk.store.db import transaction
from maildesk.store.models import Attachment, Contact, Message, RawMessage, Ticket
from maildesk.thread import ThreadMatch, strip_ref_tag, thread_message

log = logging.getLogger(__name__)

OPEN_STATUSES = ("new", "open")
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Outcome:
    """What processing one raw message did."""

    raw_id: int
    # created, appended, reopened, followup, duplicate, ignored, dropped, bounce, quarantined,
    # skipped
    status: str
    ticket_id: int | None = None
    ref: str | None = None
    reason: str = ""


def store_raw(
    app: App,
    raw: bytes,
    *,
    origin: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
) -> int:
    """Commit the raw bytes (status pending) and return their id. Raises StoreUnavailable."""
    with transaction(app.sessions) as session:
        row = repo.save_raw(
            session,
            raw,
            origin=origin,
            now=app.now(),
            envelope_from=envelope_from,
            envelope_to=envelope_to,
        )
        return row.id


def process_pending(app: App, limit: int = 100) -> list[Outcome]:
    """Process stored messages still pending, oldest first (crash recovery and batching)."""
    with transaction(app.sessions) as session:
        ids = repo.pending_raw_ids(session, limit)
    return [process(app, raw_id) for raw_id in ids]


def process(app: App, raw_id: int) -> Outcome:
    """Run the pipeline for one stored message; quarantine it if anything goes wrong."""
    app = app.pinned()  # a config reload mid-message does not change this message's rules
    for attempt in (1, 2):
        try:
            with transaction(app.sessions) as session:
                return _process(app, session, raw_id)
        except StoreUnavailable:
            raise  # stays pending; retried when the store is back
        except IntegrityError as exc:
            # Another worker stored the same Message-ID at the same moment: run again,
            # and this time the message is a duplicate.
            if attempt == 2:
                return quarantine(app, raw_id, f"database integrity error: {exc.orig}")
        except NotMail as exc:
            return quarantine(app, raw_id, f"not an email message: {exc}")
        except Exception as exc:
            log.exception("raw message %s failed in the pipeline", raw_id)
            return quarantine(app, raw_id, f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def quarantine(app: App, raw_id: int, reason: str) -> Outcome:
    """Set a stored message aside with the reason; it can be retried later."""
    with transaction(app.sessions) as session:
        session.execute(
            update(RawMessage)
            .where(RawMessage.id == raw_id)
            .values(status="quarantined", reason=reason[:4000], processed_at=app.now())
        )
    log.warning("raw message %s quarantined: %s", raw_id, reason)
    return Outcome(raw_id, "quarantined", reason=reason)


def _process(app: App, session: Session, raw_id: int) -> Outcome:
    now = app.now()
    if not repo.claim_raw(session, raw_id, "processed", now):
        return Outcome(raw_id, "skipped", reason="not pending (already processed)")
    raw = session.get_one(RawMessage, raw_id)
    msg = parse_message(raw.raw)
    desk = app.config.desk

    if is_own_loop(msg, desk.address):
        raw.status, raw.reason = "ignored", "our own notification came back (loop marker)"
        log.info("ignored %s (raw %s): %s", msg.message_id, raw_id, raw.reason)
        return Outcome(raw_id, "ignored", reason=raw.reason)

    index = repo.StoreThreadIndex(session)
    existing = index.ticket_for_message_ids([msg.message_id])
    if existing is not None:
        raw.status, raw.ticket_id = "duplicate", existing
        raw.reason = f"Message-ID {msg.message_id} already stored on {app.ref(existing)}"
        log.info("duplicate %s for %s (raw %s)", msg.message_id, app.ref(existing), raw_id)
        return Outcome(raw_id, "duplicate", existing, app.ref(existing), raw.reason)

    bounce = recognise_bounce(msg, raw.raw, raw.envelope_from)
    if bounce is not None:
        return _bounced(app, session, raw, msg, bounce, now)

    requester = msg.from_addr or (raw.envelope_from or "").lower()
    repo.clear_bouncing(session, requester)
    if "@" not in requester:
        raise ValueError("message has no usable From address or envelope sender")

    match = thread_message(
        msg,
        index,
        prefix=desk.ref_prefix,
        recipients=raw.envelope_to,
        desk_addresses=app.config.own_addresses,
    )
    ticket = session.get(Ticket, match.ticket_id) if match.ticket_id is not None else None
    if ticket is not None and ticket.status == "closed":
        closed_at = ticket.closed_at or ticket.updated_at
        if now - closed_at > desk.reopen_window:
            return _new_ticket(app, session, raw, msg, requester, now, follow_up_of=ticket)
    if ticket is None:
        return _new_ticket(app, session, raw, msg, requester, now)
    return _append(app, session, raw, msg, ticket, match, now)


def _new_ticket(
    app: App,
    session: Session,
    raw: RawMessage,
    msg: ParsedMessage,
    requester: str,
    now: datetime,
    *,
    follow_up_of: Ticket | None = None,
) -> Outcome:
    config = app.config
    flood_limit = config.notify.new_tickets_per_hour
    if flood_limit and repo.tickets_opened_since(session, requester, now - HOUR) >= flood_limit:
        raw.status = "flood"
        raw.reason = (
            f"{requester} opened {flood_limit} tickets within the last hour "
            "([notify] new_tickets_per_hour); held, not ticketed"
        )
        log.warning("flood from %s: %s (raw %s) held", requester, msg.message_id, raw.id)
        return Outcome(raw.id, "flood", reason=raw.reason)
    decision = route(
        msg,
        config.rules,
        config.default_queue.name,
        config.route_context(now, raw.envelope_to),
        matrix=config.priority_matrix,
    )
    if decision.dropped_by is not None:
        raw.status = "spam"
        raw.reason = (
            f"dropped by rule {decision.dropped_by!r} (matched: {', '.join(decision.matched)})"
        )
        log.info("dropped %s (raw %s): %s", msg.message_id, raw.id, raw.reason)
        return Outcome(raw.id, "dropped", reason=raw.reason)
    assignee = decision.assignee
    if assignee in STRATEGIES:
        candidates = [a.email for a in config.agents_of(decision.queue)]
        assignee = repo.pick_agent(session, assignee, candidates)
    contact = repo.contact_for(session, requester, msg.from_name, now)
    ticket = Ticket(
        subject=strip_ref_tag(msg.subject, config.desk.ref_prefix) or "(no subject)",
        status="new",
        priority=decision.priority,
        queue=decision.queue,
        type=decision.type,
        category=decision.category,
        assignee=assignee,
        requester_id=contact.id,
        tags=list(decision.tags),
        reply_token=secrets.token_hex(10),
        created_at=now,
        updated_at=now,
        parent_id=follow_up_of.id if follow_up_of else None,
    )
    session.add(ticket)
    session.flush()
    ref = app.ref(ticket.id)
    inbound = _store_message(session, ticket, raw, msg, now)
    repo.add_event(
        session, ticket, "created", now, actor=requester, message_id=msg.message_id, ref=ref
    )
    repo.add_event(session, ticket, "routed", now, **views.decision_json(decision, assignee))
    if follow_up_of is not None:
        repo.add_event(
            session,
            ticket,
            "linked",
            now,
            relation="follow-up-of",
            ticket=app.ref(follow_up_of.id),
            reason="reply to a ticket closed longer than the reopen window",
        )
        repo.add_event(session, follow_up_of, "linked", now, relation="followed-up-by", ticket=ref)
    _notify_created(app, session, ticket, inbound, msg, decision, now)
    raw.ticket_id = ticket.id
    log.info("created %s from %s (raw %s) in queue %s", ref, msg.message_id, raw.id, ticket.queue)
    return Outcome(raw.id, "followup" if follow_up_of else "created", ticket.id, ref)


def _append(
    app: App,
    session: Session,
    raw: RawMessage,
    msg: ParsedMessage,
    ticket: Ticket,
    match: ThreadMatch,
    now: datetime,
) -> Outcome:
    ref = app.ref(ticket.id)
    inbound = _store_message(session, ticket, raw, msg, now)
    repo.add_event(
        session,
        ticket,
        "message",
        now,
        actor=msg.from_addr,
        message_id=msg.message_id,
        threaded_by=match.via,
        detail=match.detail,
    )
    status = "appended"
    if ticket.status in ("resolved", "closed", "pending"):
        old = ticket.status
        ticket.status, ticket.closed_at = "open", None
        kind = "reopened" if old in ("resolved", "closed") else "status"
        repo.add_event(
            session, ticket, kind, now, actor=msg.from_addr, **{"from": old, "to": "open"}
        )
        status = "reopened" if kind == "reopened" else status
    ticket.updated_at = now
    raw.ticket_id = ticket.id
    _notify_followup(app, session, ticket, inbound, msg, now)
    log.info("%s %s to %s via %s (raw %s)", status, msg.message_id, ref, match.via, raw.id)
    return Outcome(raw.id, status, ticket.id, ref)


def _rate_limited(session: Session, limit: int, email: str, now: datetime) -> str | None:
    if limit and repo.auto_replies_since(session, email, now - HOUR) >= limit:
        return f"rate limit: {limit} acknowledgements to {email} within the last hour"
    return None


def _bounced(
    app: App, session: Session, raw: RawMessage, msg: ParsedMessage, bounce: Bounce, now: datetime
) -> Outcome:
    """A bounce goes on the ticket of the message it returns, never on a ticket of its own."""
    original = repo.bounced_message(session, bounce.quoted_ids)
    what = "hard bounce" if bounce.permanent else "delivery delay/soft bounce"
    if original is None:
        raw.status = "bounce"
        raw.reason = f"{what} for a message that is not on any ticket ({bounce.diagnostic[:200]})"
        log.info("bounce %s (raw %s) matches no ticket: kept, no ticket", msg.message_id, raw.id)
        return Outcome(raw.id, "bounce", reason=raw.reason)
    ticket = session.get_one(Ticket, original.ticket_id)
    recipients = bounce.recipients or tuple(original.to)
    _store_message(session, ticket, raw, msg, now, kind="bounce", internal=True)
    repo.add_event(
        session,
        ticket,
        "bounce",
        now,
        actor=msg.from_addr or "mailer-daemon",
        original=original.message_id,
        recipients=list(recipients),
        permanent=bounce.permanent,
        status=bounce.status,
        diagnostic=bounce.diagnostic,
        standard=bounce.standard,
    )
    if bounce.permanent:
        repo.mark_bouncing(session, recipients, bounce.diagnostic or what, now)
    raw.ticket_id = ticket.id
    ref = app.ref(ticket.id)
    log.info("%s for %s on %s: %s", what, ", ".join(recipients), ref, bounce.diagnostic[:200])
    return Outcome(raw.id, "bounce", ticket.id, ref, f"{what} for {', '.join(recipients)}")


def _store_message(
    session: Session,
    ticket: Ticket,
    raw: RawMessage,
    msg: ParsedMessage,
    now: datetime,
    *,
    kind: str = "mail",
    internal: bool = False,
) -> Message:
    message = Message(
        ticket_id=ticket.id,
        raw_id=raw.id,
        direction="in",
        kind=kind,
        message_id=msg.message_id,
        in_reply_to=msg.in_reply_to[0] if msg.in_reply_to else None,
        from_addr=msg.from_addr or (raw.envelope_from or ""),
        from_name=msg.from_name,
        to=list(msg.to),
        cc=list(msg.cc),
        subject=msg.subject,
        body_text=msg.body_text,
        body_html=msg.body_html,
        internal=internal,
        created_at=now,
    )
    message.attachments = [
        Attachment(
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            content_id=a.content_id,
            content=a.content,
        )
        for a in msg.attachments
    ]
    session.add(message)
    session.flush()
    return message


def ticket_context(app: App, ticket: Ticket, matched: Sequence[str] = ()) -> dict[str, Any]:
    """The `ticket` variable templates see."""
    return {
        "id": ticket.id,
        "ref": app.ref(ticket.id),
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "queue": ticket.queue,
        "type": ticket.type,
        "category": ticket.category,
        "assignee": ticket.assignee,
        "tags": list(ticket.tags),
        "requester": ticket.requester.email,
        "requester_name": ticket.requester.name,
        "matched_rules": list(matched),
        "reply_address": reply_address(app, ticket),
    }


def reply_address(app: App, ticket: Ticket) -> str:
    """support+TOKEN@example.com: replies to it thread even without the subject tag."""
    local, _, domain = app.config.desk.address.partition("@")
    return f"{local}+{ticket.reply_token}@{domain}"


def _context(
    app: App, ticket: Ticket, msg: ParsedMessage, matched: Sequence[str] = ()
) -> dict[str, Any]:
    """The template context (docs/templates.md) for a notification about msg on ticket."""
    config = app.config
    return {
        "desk": {"name": config.desk.name, "address": config.desk.address},
        "ticket": ticket_context(app, ticket, matched),
        "message": {
            "subject": msg.subject,
            "from": msg.from_addr,
            "from_name": msg.from_name,
            "body_text": msg.body_text,
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in msg.attachments
            ],
        },
    }


def _send(app: App, session: Session, ticket: Ticket, note: Notification, now: datetime) -> None:
    enqueue(
        session,
        ticket,
        note,
        ref=app.ref(ticket.id),
        desk=app.config.desk,
        reply_to=reply_address(app, ticket),
        now=now,
    )


def _notify_agents(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    msg: ParsedMessage,
    context: dict[str, Any],
    agents: Sequence[Agent],
    *,
    kind: str,
    template: str,
    now: datetime,
) -> None:
    """One internal notice to these agents (never to the message's own sender)."""
    agents = [a for a in agents if a.email != msg.from_addr]
    if not app.config.notify.notify_agents or not agents:
        return
    _notify(
        app,
        session,
        ticket,
        inbound,
        msg,
        context,
        kind=kind,
        template=template,
        to=agents[0],
        cc=[a.email for a in agents[1:]],
        auto_submitted="auto-generated",
        internal=True,
        now=now,
    )


def _notify(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    msg: ParsedMessage,
    context: dict[str, Any],
    *,
    kind: str,
    template: str,
    to: Agent | Contact,
    cc: Sequence[str] = (),
    auto_submitted: str,
    internal: bool,
    now: datetime,
) -> None:
    """Render `template` for the first recipient and queue it in answer to `inbound`."""
    recipient = {"email": to.email, "name": to.name}
    rendered = app.templates.render(template, {**context, "recipient": recipient}, ticket.queue)
    note = Notification(
        kind=kind,
        to=[to.email, *cc],
        rendered=rendered,
        in_reply_to=inbound,
        parent_references=msg.references,
        auto_submitted=auto_submitted,
        internal=internal,
    )
    _send(app, session, ticket, note, now)


def _notify_followup(
    app: App, session: Session, ticket: Ticket, inbound: Message, msg: ParsedMessage, now: datetime
) -> None:
    """A requester wrote on an existing ticket: tell its assignee, or else its queue."""
    config = app.config
    assignee = config.agent(ticket.assignee) if ticket.assignee else None
    agents = [assignee] if assignee else list(config.agents_of(ticket.queue))
    _notify_agents(
        app,
        session,
        ticket,
        inbound,
        msg,
        _context(app, ticket, msg),
        agents,
        kind="agent_requester_reply",
        template="agent/requester_reply",
        now=now,
    )


def _notify_created(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    msg: ParsedMessage,
    decision: RoutingDecision,
    now: datetime,
) -> None:
    config = app.config
    session.refresh(ticket, ["requester"])
    ref = app.ref(ticket.id)
    context = _context(app, ticket, msg, decision.matched)
    requester = ticket.requester.email
    queue = config.queue(ticket.queue)
    verdict = may_auto_reply(msg, config.own_addresses)
    suppressed = (
        "acknowledgements are off"
        if not config.notify.acknowledge or (queue is not None and not queue.acknowledge)
        else f"no acknowledgement by rule (matched: {', '.join(decision.matched)})"
        if decision.acknowledge is False
        else verdict.reason
        if not verdict.allowed
        else f"requester address bounces: {ticket.requester.bounce_reason}"
        if ticket.requester.bounced_at is not None
        else _rate_limited(session, config.notify.auto_replies_per_hour, requester, now)
    )
    if suppressed:
        repo.add_event(
            session,
            ticket,
            "notification_suppressed",
            now,
            notification="acknowledgement",
            reason=suppressed,
        )
        log.info("no acknowledgement for %s (%s): %s", ref, msg.message_id, suppressed)
    else:
        template = (
            f"requester/{decision.acknowledge}"
            if isinstance(decision.acknowledge, str)
            else "requester/ticket_created"
        )
        _notify(
            app,
            session,
            ticket,
            inbound,
            msg,
            context,
            kind="acknowledgement",
            template=template,
            to=ticket.requester,
            auto_submitted="auto-replied",
            internal=False,
            now=now,
        )

    agents = list(config.agents_of(ticket.queue))
    assignee = config.agent(ticket.assignee) if ticket.assignee else None
    if assignee and assignee not in agents:
        agents.append(assignee)
    _notify_agents(
        app,
        session,
        ticket,
        inbound,
        msg,
        context,
        agents,
        kind="agent_new_ticket",
        template="agent/ticket_created",
        now=now,
    )
