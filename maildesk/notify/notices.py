"""Which notification goes to whom: rendered and queued in the caller's transaction.

Every notification maildesk sends is one function here, named for its event; each picks its
template (`templates/<audience>/<event>.txt.j2`, see docs/templates.md), its recipients,
its threading headers and its reply address. Mail to agents carries the ticket's agent
reply token (which proves an agent's reply, see maildesk.routing.proof); mail to requesters and
watchers carries the requester token. Guards that may suppress a notification record an
event with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, object_session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.mail.message import ParsedMessage
from maildesk.mail.render import OutgoingAttachment
from maildesk.notify.outbox import Notification, enqueue
from maildesk.notify.scrub import scrub_attachment
from maildesk.routing.guard import may_auto_reply
from maildesk.routing.proof import Role
from maildesk.routing.rules import RoutingDecision
from maildesk.store import repo
from maildesk.store.models import Contact, Message, Ticket
from maildesk.views import iso

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""


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
        "watchers": _watchers(ticket),
        "matched_rules": list(matched),
        "reply_address": app.reply_address(ticket.id),
        "sla_policy": ticket.sla_policy,
        "response_due": iso(ticket.sla_response_due),
        "resolution_due": iso(ticket.sla_resolution_due),
    }


def _watchers(ticket: Ticket) -> list[str]:
    """Who gets the requester side's mail besides the requester (as relays Cc them)."""
    session = object_session(ticket)
    if session is None:
        return []
    return [w for w in repo.watchers(session, ticket.id) if w != ticket.requester.email]


def message_context(message: Message | None, max_body: int | None = None) -> dict[str, Any]:
    """The `message` variable: the message that caused the notification, its text cut to
    `max_body` bytes when given (`body_omitted` says how many bytes were left out)."""
    if message is None:
        return {
            "subject": "",
            "from": "",
            "from_name": "",
            "body_text": "",
            "body_omitted": 0,
            "attachments": [],
        }
    text, omitted = (
        clip_text(message.body_text, max_body) if max_body is not None else (message.body_text, 0)
    )
    return {
        "subject": message.subject,
        "from": message.from_addr,
        "from_name": message.from_name,
        "body_text": text,
        "body_omitted": omitted,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in message.attachments
        ],
    }


def clip_text(text: str, limit: int) -> tuple[str, int]:
    """The start of `text` in at most `limit` bytes of UTF-8, and how many bytes are left out.

    The cut falls between characters, and at the end of a line when one ends in the second
    half of what is kept, so a quote does not stop mid-sentence without need.
    """
    if len(text) * 4 <= limit:  # no character is longer than 4 bytes: it fits, skip encoding
        return text, 0
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, 0
    head = data[:limit].decode("utf-8", "ignore")  # "ignore" drops a character cut in two
    line_end = head.rfind("\n")
    if line_end >= len(head) // 2:
        head = head[:line_end]
    return head, len(data) - len(head.encode("utf-8", "replace"))


def context(
    app: App,
    ticket: Ticket,
    message: Message | None,
    matched: Sequence[str] = (),
    *,
    max_body: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The template context (docs/templates.md) for a notification about a ticket;
    `max_body` caps the quoted message text (see message_context)."""
    config = app.config
    return {
        "desk": {
            "name": config.desk.name,
            "address": config.desk.address,
            "reopen_days": config.desk.reopen_window.days,
        },
        "ticket": ticket_context(app, ticket, matched),
        "message": message_context(message, max_body),
        **extra,
    }


def agent_context(
    app: App,
    ticket: Ticket,
    message: Message | None,
    matched: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """The context of a notice to agents: the message's text only up to `[notify]
    agent_notice_max_body`, so a big message is stored once (on the ticket), not again in
    every agent's notice; the template points to `maildesk ticket show` for the rest."""
    cap = app.config.notify.agent_notice_max_body
    return context(app, ticket, message, matched, max_body=cap, **extra)


def send(
    app: App,
    session: Session,
    ticket: Ticket,
    *,
    kind: str,
    template: str,
    ctx: dict[str, Any],
    to: Agent | Recipient | Any,
    cc: Sequence[str] = (),
    role: Role,
    answers: Message | None = None,
    references: Sequence[str] = (),
    auto_submitted: str | None,
    internal: bool,
    now: datetime,
    from_name: str | None = None,
    attachments: Sequence[OutgoingAttachment] = (),
) -> Message | None:
    """Render `template` for `to` and queue it (with `cc`), answering `answers`.

    A ticket that has sent `[notify] per_ticket_per_hour` mails within the hour sends no
    more (recorded): whatever loop two misbehaving autoresponders build through a ticket,
    it stops there.
    """
    limit = app.config.notify.per_ticket_per_hour
    if limit and repo.outbound_since(session, ticket.id, now - HOUR) >= limit:
        reason = f"ticket sent {limit} mails within the hour ([notify] per_ticket_per_hour)"
        suppressed(app, session, ticket, kind, f"{reason}; to {to.email}", now)
        return None
    recipient = {"email": to.email, "name": to.name}
    rendered = app.templates.render(template, {**ctx, "recipient": recipient}, ticket.queue)
    in_reply_to = answers.message_id if answers is not None else None
    chain = [*references, in_reply_to] if in_reply_to else list(references)
    note = Notification(
        kind=kind,
        to=[to.email],
        cc=[c for c in cc if c != to.email],
        rendered=rendered,
        in_reply_to=in_reply_to,
        references=list(dict.fromkeys(chain)),
        auto_submitted=auto_submitted,
        internal=internal,
        reply_to=app.reply_address(ticket.id, role, to.email if role == "agent" else ""),
        from_name=from_name,
        attachments=attachments,
    )
    message = enqueue(session, ticket, note, ref=app.ref(ticket.id), desk=app.config.desk, now=now)
    repo.count_outbound(session, ticket.id)
    return message


def suppressed(
    app: App, session: Session, ticket: Ticket, notification: str, reason: str, now: datetime
) -> None:
    """Record that a notification was not sent, and why."""
    repo.add_event(
        session, ticket, "notification_suppressed", now, notification=notification, reason=reason
    )
    log.info("no %s for %s: %s", notification, app.ref(ticket.id), reason)


def to_agents(
    app: App,
    session: Session,
    ticket: Ticket,
    agents: Sequence[Agent | Recipient],
    *,
    kind: str,
    template: str,
    ctx: dict[str, Any],
    answers: Message | None,
    references: Sequence[str] = (),
    now: datetime,
    exclude: str | None = None,
) -> None:
    """An internal notice to each of these agents (never to `exclude`, the one who acted).

    One message per agent: each carries that agent's own reply token, so a reply proves
    who wrote it (maildesk.routing.proof).
    """
    unique: dict[str, Agent | Recipient] = {}
    for agent in agents:
        if agent.email != exclude:
            unique.setdefault(agent.email, agent)
    if not app.config.notify.notify_agents:
        suppressed(app, session, ticket, kind, "[notify] notify_agents = false", now)
        return
    if not unique:
        reason = f"no agent to tell (queue {ticket.queue} has none" + (
            ", or only the one who acted)" if exclude else ")"
        )
        suppressed(app, session, ticket, kind, reason, now)
        return
    for agent in unique.values():
        send(
            app,
            session,
            ticket,
            kind=kind,
            template=template,
            ctx=ctx,
            to=agent,
            role="agent",
            answers=answers,
            references=references,
            auto_submitted="auto-generated",
            internal=True,
            now=now,
        )


def _rate_limited(session: Session, limit: int, contact: Contact, now: datetime) -> str | None:
    if limit and repo.auto_replies_since(session, contact, now - HOUR) >= limit:
        return f"rate limit: {limit} acknowledgements to {contact.email} within the last hour"
    return None


def ticket_created(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    msg: ParsedMessage,
    decision: RoutingDecision,
    now: datetime,
) -> None:
    """A new ticket: the acknowledgement to the requester, the notice to the queue."""
    config = app.config
    repo.no_outbound_yet(session, ticket.id)
    ctx = context(app, ticket, inbound, decision.matched)
    requester = ticket.requester
    queue = config.queue(ticket.queue)
    verdict = may_auto_reply(msg, config.own_addresses)
    reason = (
        "acknowledgements are off"
        if not config.notify.acknowledge or (queue is not None and not queue.acknowledge)
        else f"no acknowledgement by rule (matched: {', '.join(decision.matched)})"
        if decision.acknowledge is False
        else verdict.reason
        if not verdict.allowed
        else f"requester address bounces: {requester.bounce_reason}"
        if requester.bounced_at is not None
        else _rate_limited(session, config.notify.auto_replies_per_hour, requester, now)
    )
    if reason:
        suppressed(app, session, ticket, "acknowledgement", reason, now)
    else:
        template = (
            f"requester/{decision.acknowledge}"
            if isinstance(decision.acknowledge, str)
            else "requester/ticket_created"
        )
        send(
            app,
            session,
            ticket,
            kind="acknowledgement",
            template=template,
            ctx=ctx,
            to=requester,
            role="requester",
            answers=inbound,
            references=msg.references,
            auto_submitted="auto-replied",
            internal=False,
            now=now,
        )
    agents = list(config.agents_of(ticket.queue))
    assignee = config.agent(ticket.assignee) if ticket.assignee else None
    if assignee and assignee not in agents:
        agents.append(assignee)
    to_agents(
        app,
        session,
        ticket,
        agents,
        kind="agent_new_ticket",
        template="agent/ticket_created",
        ctx=agent_context(app, ticket, inbound, decision.matched),
        answers=inbound,
        references=msg.references,
        now=now,
        exclude=msg.from_addr,
    )


def assignee_or_queue(app: App, ticket: Ticket) -> list[Agent]:
    """Who hears of a ticket's news: its assignee, or with none its queue's agents."""
    assignee = app.config.agent(ticket.assignee) if ticket.assignee else None
    return [assignee] if assignee else list(app.config.agents_of(ticket.queue))


def requester_replied(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    msg: ParsedMessage,
    now: datetime,
    *,
    reopened: bool,
    flags: Sequence[str] = (),
) -> None:
    """The requester (or anyone but a proven agent) wrote: tell the assignee or the queue."""
    to_agents(
        app,
        session,
        ticket,
        assignee_or_queue(app, ticket),
        kind="agent_ticket_reopened" if reopened else "agent_requester_reply",
        template="agent/ticket_reopened" if reopened else "agent/requester_reply",
        ctx=agent_context(app, ticket, inbound, flags=list(flags)),
        answers=inbound,
        references=msg.references,
        now=now,
        exclude=msg.from_addr if not flags else None,
    )


def relay(
    app: App,
    session: Session,
    ticket: Ticket,
    reply: Message,
    agent: Agent,
    now: datetime,
) -> Message | None:
    """An agent's public reply, to the requester and the watchers, from the desk's address.

    Attachments go with every agent reply address in them made plain (an attached notice
    carries the agent's token); one that cannot be cleaned was refused before (replies.leaks).
    """
    attachments = []
    for a in reply.attachments:
        content = scrub_attachment(a.filename, a.content_type, a.content)
        if content is not None:
            attachments.append(OutgoingAttachment(a.filename, a.content_type, content))
    return _to_requester_side(
        app,
        session,
        ticket,
        kind="relay",
        template="requester/agent_reply",
        ctx=context(app, ticket, reply, agent={"name": agent.name}),
        auto_submitted=None,  # a person's answer, not an automatic one
        now=now,
        # The agent's name, never their address: requesters only ever see the desk's.
        from_name=f"{agent.name} via {app.config.desk.name}" if agent.name else None,
        attachments=attachments,
    )


def to_requester(
    app: App,
    session: Session,
    ticket: Ticket,
    *,
    kind: str,
    template: str,
    now: datetime,
    **extra: Any,
) -> None:
    """A status notice to the requester (and watchers), threaded into their conversation."""
    requester = ticket.requester
    if requester.bounced_at is not None:
        suppressed(app, session, ticket, kind, f"requester address bounces: {requester.email}", now)
        return
    _to_requester_side(
        app,
        session,
        ticket,
        kind=kind,
        template=template,
        ctx=context(app, ticket, None, **extra),
        auto_submitted="auto-generated",
        now=now,
    )


def _to_requester_side(
    app: App,
    session: Session,
    ticket: Ticket,
    *,
    kind: str,
    template: str,
    ctx: dict[str, Any],
    auto_submitted: str | None,
    now: datetime,
    from_name: str | None = None,
    attachments: Sequence[OutgoingAttachment] = (),
) -> Message | None:
    """Mail to the requester, Cc the watchers, answering the last mail of their thread (never
    an internal one, so no agent-side Message-ID reaches them)."""
    thread = repo.public_thread(session, ticket.id)
    watchers = [w for w in repo.watchers(session, ticket.id) if w != ticket.requester.email]
    return send(
        app,
        session,
        ticket,
        kind=kind,
        template=template,
        ctx=ctx,
        to=ticket.requester,
        cc=watchers,
        role="requester",
        answers=thread[-1] if thread else None,
        references=[m.message_id for m in thread[:-1]],
        auto_submitted=auto_submitted,
        internal=False,
        now=now,
        from_name=from_name,
        attachments=attachments,
    )


def to_agent(
    app: App,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    *,
    kind: str,
    template: str,
    answers: Message | None,
    now: datetime,
    **extra: Any,
) -> None:
    """A notice to one agent: assignment, command error or receipt."""
    send(
        app,
        session,
        ticket,
        kind=kind,
        template=template,
        ctx=agent_context(app, ticket, answers, **extra),
        to=agent,
        role="agent",
        answers=answers,
        auto_submitted="auto-generated",
        internal=True,
        now=now,
    )
