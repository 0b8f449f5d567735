"""Which notification goes to whom: rendered and queued in the caller's transaction.

Every notification maildesk sends is one function here, named for its event; each picks its
template (`templates/<audience>/<event>.txt.j2`, see docs/templates.md), its recipients,
its threading headers and its reply address. Mail to agents carries the ticket's agent
reply token (which proves an agent's reply, see maildesk.routing.proof); mail to requesters and
watchers carries the requester token. Guards that may suppress a notification record an
event with the reason (maildesk.notify.suppression); the variables templates see are built
in maildesk.notify.context.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import SUPPRESSED_REASON, App
from maildesk.config import Agent
from maildesk.mail.message import ParsedMessage, is_minted
from maildesk.mail.render import OutgoingAttachment
from maildesk.notify.context import agent_context, service_status

# The template context is built in maildesk.notify.context; callers also reach it from here.
from maildesk.notify.context import context as context
from maildesk.notify.files import NO_FILES, NoticeFiles, notice_files, with_quoted_html
from maildesk.notify.kb import KbSuggestions, suggestions
from maildesk.notify.outbox import Notification, enqueue
from maildesk.notify.recipients import Recipient as Recipient
from maildesk.notify.recipients import assignee_or_queue as assignee_or_queue
from maildesk.notify.recipients import new_ticket_agents, relay_recipients
from maildesk.notify.scrub import scrub_attachment
from maildesk.notify.suppression import no_acknowledgement, ticket_over_limit
from maildesk.routing.proof import Role
from maildesk.routing.rules import RoutingDecision
from maildesk.store import repo
from maildesk.store.models import Message, Ticket

log = logging.getLogger(__name__)


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
    quoted_html: str | None = None,
) -> Message | None:
    """Render `template` for `to` and queue it (with `cc`), answering `answers`; with
    `quoted_html` the notice gets an HTML part quoting it (maildesk.notify.files).

    A ticket that has sent `[notify] per_ticket_per_hour` mails within the hour sends no
    more (recorded): whatever loop two misbehaving autoresponders build through a ticket,
    it stops there.
    """
    if app.replay is not None and app.replay.historic:
        app.replay.suppressed[kind] += 1
        suppressed(app, session, ticket, kind, f"{SUPPRESSED_REASON}; to {to.email}", now)
        return None
    reason = ticket_over_limit(app, session, ticket, now)
    if reason:
        suppressed(app, session, ticket, kind, f"{reason}; to {to.email}", now)
        return None
    recipient = {"email": to.email, "name": to.name}
    rendered = app.templates.render(template, {**ctx, "recipient": recipient}, ticket.queue)
    rendered = with_quoted_html(rendered, ctx["message"]["body_text"], quoted_html)
    # An id minted for mail that came without one was never seen by anyone: not answered.
    answered = answers.message_id if answers is not None else None
    in_reply_to = answered if answered and not is_minted(answered) else None
    chain = [r for r in references if not is_minted(r)] + ([in_reply_to] if in_reply_to else [])
    note = Notification(
        kind=kind,
        to=[to.email],
        cc=[c for c in cc if c != to.email],
        rendered=rendered,
        in_reply_to=in_reply_to,
        references=list(dict.fromkeys(chain)),
        auto_submitted=auto_submitted,
        internal=internal,
        reply_to=app.reply_address(ticket.id, role, to.email),  # bound to agents, approvers
        from_name=from_name,
        attachments=attachments,
    )
    message = enqueue(session, ticket, note, ref=app.ref(ticket.id), desk=app.config.desk, now=now)
    repo.count_outbound(session, ticket.id)
    if app.replay is not None:
        app.replay.sent[kind] += 1
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
    files: NoticeFiles = NO_FILES,
) -> None:
    """An internal notice to each of these agents (never to `exclude`, the one who acted),
    carrying `files` (the requester's, see maildesk.notify.files).

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
            attachments=files.attachments,
            quoted_html=files.html,
        )


def ticket_created(
    app: App,
    session: Session,
    ticket: Ticket,
    inbound: Message,
    msg: ParsedMessage,
    decision: RoutingDecision,
    now: datetime,
) -> None:
    """A new ticket: the acknowledgement to the requester, the notice to the queue. An
    imported one (App.historic) sends neither: send() records each as not sent, so no
    context, suggestion (kb_suggested) or file is made for them."""
    repo.no_outbound_yet(session, ticket.id)
    replaying = app.historic
    ctx = {} if replaying else context(app, ticket, inbound, decision.matched)
    reason = no_acknowledgement(app, session, ticket, msg, decision, now)
    if reason:
        suppressed(app, session, ticket, "acknowledgement", reason, now)
    else:
        template = (
            f"requester/{decision.acknowledge}"
            if isinstance(decision.acknowledge, str)
            else "requester/ticket_created"
        )
        kb = KbSuggestions() if replaying else suggestions(app, session, ticket, inbound, now)
        if not replaying:
            ctx = {**ctx, "kb": kb.items, "service_status": service_status(app, session, ticket)}
        send(
            app,
            session,
            ticket,
            kind="acknowledgement",
            template=template,
            ctx=ctx,
            to=ticket.requester,
            role="requester",
            answers=inbound,
            references=msg.references,
            auto_submitted="auto-replied",
            internal=False,
            now=now,
            attachments=kb.attachments,
        )
    files = NO_FILES if replaying else notice_files(app, session, ticket, inbound, attach=True)
    to_agents(
        app,
        session,
        ticket,
        new_ticket_agents(app, ticket),
        kind="agent_new_ticket",
        template="agent/ticket_created",
        ctx={}
        if replaying
        else agent_context(app, ticket, inbound, decision.matched, files=files, like=ctx),
        answers=inbound,
        references=msg.references,
        now=now,
        exclude=msg.from_addr,
        files=files,
    )


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
    """The requester (or anyone but a proven agent) wrote: tell the assignee or the queue
    (a flagged message's files named, not attached). Imported: as in ticket_created."""
    replaying = app.historic
    files = NO_FILES if replaying else notice_files(app, session, ticket, inbound, attach=not flags)
    to_agents(
        app,
        session,
        ticket,
        assignee_or_queue(app, ticket),
        kind="agent_ticket_reopened" if reopened else "agent_requester_reply",
        template="agent/ticket_reopened" if reopened else "agent/requester_reply",
        ctx={}
        if replaying
        else agent_context(app, ticket, inbound, files=files, flags=list(flags)),
        answers=inbound,
        references=msg.references,
        now=now,
        exclude=msg.from_addr if not flags else None,
        files=files,
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
        sender=reply.from_addr or agent.email,
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
    sender: str = "",
) -> Message | None:
    """Mail to the requester, Cc the watchers, answering the last mail of their thread (never
    an internal one, so no agent-side Message-ID reaches them). `sender`: whose mail this
    relays; they never get a copy of their own mail."""
    thread = repo.public_thread(session, ticket.id)
    to, cc = relay_recipients(ticket, repo.watchers(session, ticket.id), sender)
    if to is None:
        suppressed(app, session, ticket, kind, f"nobody but its sender {sender} to send it to", now)
        return None
    return send(
        app,
        session,
        ticket,
        kind=kind,
        template=template,
        ctx=ctx,
        to=to,
        cc=cc,
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
