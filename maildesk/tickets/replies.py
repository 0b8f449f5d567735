"""An agent's reply, by mail or by `maildesk ticket reply/note`: commands, note or relay.

The reply's new text (history and signature already stripped) starts with an optional
command block. If any command is invalid, or a reply to relay would hand the requester
something of the agent's side (an agent reply token, a quoted notice: maildesk.notify.scrub),
nothing changes: the reply is kept as an internal message and the agent gets one error mail
naming each bad line. Otherwise the commands are applied, a `#note` keeps the whole reply
internal, any other text is relayed to the requester and watchers, and the agent gets a
receipt of what was applied.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Agent
from maildesk.mail.render import mint_message_id
from maildesk.notify import notices
from maildesk.notify.scrub import quoted_notice_problems, scrub_attachment
from maildesk.parse.attachments import sanitise_filename
from maildesk.store import repo
from maildesk.store.blobs import new_attachment
from maildesk.store.models import Message, Ticket
from maildesk.terms import WORKING_STATUSES
from maildesk.tickets import kb_reply, lifecycle, sla
from maildesk.tickets.commands import AgentRef, CommandContext, ParsedReply, parse_reply
from maildesk.tickets.lifecycle import Actor
from maildesk.tickets.notes import NOTE_ERROR

log = logging.getLogger(__name__)

# Statuses an agent's public reply moves to pending (waiting on the requester).
AWAITS_REQUESTER = WORKING_STATUSES


@dataclass
class ReplyResult:
    status: str  # relayed, note, commands, rejected
    changes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def command_context(app: App, actor: str | None) -> CommandContext:
    config = app.config
    return CommandContext(
        actor=actor,
        queues=[q.name for q in config.queues],
        agents=[AgentRef(email=a.email, name=a.name) for a in config.agents],
        ref_prefix=config.desk.ref_prefix,
        own_addresses=config.own_addresses,
        timezone=config.desk.timezone,
    )


@dataclass(frozen=True)
class _Reply:
    """An agent's stored reply being acted on, and by whom."""

    app: App
    session: Session
    ticket: Ticket
    actor: Actor
    agent: Agent  # the actor's agent
    message: Message
    now: datetime


def agent_reply(
    app: App,
    session: Session,
    ticket: Ticket,
    actor: Actor,
    message: Message,
    text: str,
    now: datetime,
    *,
    internal: bool = False,
) -> ReplyResult:
    """Act on an agent's stored reply `message` whose new text is `text`."""
    assert actor.agent is not None
    reply = _Reply(app, session, ticket, actor, actor.agent, message, now)
    parsed = parse_reply(text, command_context(app, actor.email))
    # A look-alike note is refused lest it be relayed; in a reply kept internal anyway (a
    # real #note, `ticket note`) it is harmless text.
    noted = internal or any(c.name == "note" for c in parsed.commands)
    errors = [e for e in parsed.errors if not (noted and e.reason.startswith(NOTE_ERROR))]
    errors = errors or lifecycle.check(session, ticket, parsed.commands, app)
    own_text = parsed.text
    parsed, kb_errors = kb_reply.expand(app, parsed)
    errors = errors or kb_errors
    internal = internal or parsed.internal
    public = not internal and (bool(parsed.text.strip()) or bool(message.attachments))
    problems = [str(e) for e in errors] + (leaks(ticket, message, text) if public else [])
    if problems:
        return _rejected(reply, parsed, text, problems)

    message.body_text = parsed.text
    message.internal = not public
    message.kind = "note" if internal else "agent_reply" if public else "commands"
    kind = message.kind
    lifecycle.store_reply_event(session, ticket, message, actor, now, kind)
    changes = _apply_commands(reply, parsed, public=public)
    changes += kb_reply.save_drafts(app, session, ticket, parsed, own_text, now)
    if internal:
        changes.append("kept as an internal note (not sent to the requester)")
        changes.extend(_note_to_assignee(reply))
    result = ReplyResult(kind, changes)
    if public:
        notices.relay(app, session, ticket, message, actor.agent, now)
        sla.first_response(app, session, ticket, now)
        result.changes.append(f"reply sent to {ticket.requester.email}")
    merged_into = _merge(reply, parsed, result)
    ticket.updated_at = now
    if parsed.commands and actor.via == "mail" and app.config.notify.command_receipts:
        _receipt(reply, parsed, merged_into, result)
    ref = app.ref(ticket.id)
    log.info("%s: %s by %s (%s): %s", ref, kind, actor.email, actor.via, "; ".join(result.changes))
    return result


def _rejected(reply: _Reply, parsed: ParsedReply, text: str, problems: list[str]) -> ReplyResult:
    """Nothing changes: the reply is kept internal, and the agent hears of every problem."""
    message, actor = reply.message, reply.actor
    message.kind, message.internal, message.body_text = "agent_rejected", True, text
    repo.add_event(
        reply.session,
        reply.ticket,
        "commands_rejected",
        reply.now,
        actor=actor.email,
        via=actor.via,
        message_id=message.message_id,
        errors=problems,
    )
    if actor.via == "mail":
        notices.to_agent(
            reply.app,
            reply.session,
            reply.ticket,
            reply.agent,
            kind="command_error",
            template="agent/command_error",
            answers=message,
            now=reply.now,
            errors=problems,
            commands=list(parsed.lines),
        )
    ref = reply.app.ref(reply.ticket.id)
    log.info("%s: commands from %s rejected: %s", ref, actor.email, "; ".join(problems))
    return ReplyResult("rejected", errors=problems)


def _note_to_assignee(reply: _Reply) -> list[str]:
    """A note on a ticket assigned to another agent: that agent hears of it."""
    app, ticket = reply.app, reply.ticket
    assignee = app.config.agent(ticket.assignee) if ticket.assignee else None
    if assignee is None or assignee.email == reply.agent.email:
        return []
    by = reply.agent
    notices.to_agent(
        app,
        reply.session,
        ticket,
        assignee,
        kind="agent_note",
        template="agent/note_added",
        answers=reply.message,
        now=reply.now,
        noted_by=f"{by.name} <{by.email}>" if by.name else by.email,
    )
    return [f"note sent to the assignee, {assignee.email}"]


def _apply_commands(reply: _Reply, parsed: ParsedReply, *, public: bool) -> list[str]:
    """Apply the commands (a merge comes last, see `_merge`), then what the reply implies:
    a status (pending after a public reply) and, on a first reply, an assignee."""
    app, session, ticket = reply.app, reply.session, reply.ticket
    actor, now = reply.actor, reply.now
    commands = [c for c in parsed.commands if c.name != "merge"]
    applied = lifecycle.apply(app, session, ticket, commands, actor, now, relayed=public)
    if not applied.status_set:
        implied = (
            "pending"
            if public and ticket.status in AWAITS_REQUESTER
            else lifecycle.first_agent_action(ticket)
        )
        if implied:
            change = lifecycle.set_status(app, session, ticket, implied, actor, now)
            if change:
                applied.changes.append(change)
    if (
        public
        and ticket.assignee is None
        and app.config.desk.assign_on_reply
        and not any(c.name == "assign" for c in parsed.commands)
    ):
        change = lifecycle.assign(
            app, session, ticket, reply.agent.email, actor, now, reason="first reply"
        )
        applied.changes.extend([change] if change else [])
    return applied.changes


def _merge(reply: _Reply, parsed: ParsedReply, result: ReplyResult) -> Ticket | None:
    """A #merge, applied after everything else; the ticket merged into."""
    merge = [c for c in parsed.commands if c.name == "merge"]
    if not merge or merge[0].target is None:
        return None
    merged_into = reply.session.get_one(Ticket, merge[0].target)
    result.changes.append(
        lifecycle.merge_into(
            reply.app, reply.session, reply.ticket, merged_into, reply.actor, reply.now
        )
    )
    return merged_into


def _receipt(
    reply: _Reply, parsed: ParsedReply, merged_into: Ticket | None, result: ReplyResult
) -> None:
    """The agent's receipt of what their commands did, one per ticket: the ticket the
    reply was on, with its changes; after a #merge, the ticket merged into, with the merge."""
    notices.to_agent(
        reply.app,
        reply.session,
        reply.ticket,
        reply.agent,
        kind="command_receipt",
        template="agent/command_receipt",
        answers=reply.message,
        now=reply.now,
        changes=result.changes,
        commands=list(parsed.lines),
    )
    if merged_into is None:
        return
    merge = [line for line in parsed.lines if line.lstrip().lower().startswith("#merge")]
    notices.to_agent(
        reply.app,
        reply.session,
        merged_into,
        reply.agent,
        kind="command_receipt",
        template="agent/command_receipt",
        answers=None,
        now=reply.now,
        changes=[f"{reply.app.ref(reply.ticket.id)} merged into this ticket"],
        commands=merge or ["#merge"],
    )


def leaks(ticket: Ticket, reply: Message, text: str) -> list[str]:
    """Why relaying `reply` (new text `text`) would hand the requester the agent's side."""
    notices = [m.body_text for m in ticket.messages if m.direction == "out" and m.internal]
    problems = quoted_notice_problems(text, notices)
    for a in reply.attachments:
        if scrub_attachment(a.filename, a.content_type, a.content) is None:
            problems.append(
                f'attachment "{a.filename}": carries an agent reply address that cannot be '
                "removed; not relayed to the requester: resend without it"
            )
    return problems


def cli_message(
    app: App,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    text: str,
    attachments: Sequence[tuple[str, bytes]],
    now: datetime,
) -> Message:
    """The stored message of a reply typed at `maildesk ticket reply/note`."""
    message = Message(
        ticket_id=ticket.id,
        direction="in",
        kind="agent_reply",
        message_id=mint_message_id(app.config.desk.domain, app.ref(ticket.id)),
        from_addr=agent.email,
        from_name=agent.name,
        to=[app.config.desk.address],
        cc=[],
        subject=f"Re: [{app.ref(ticket.id)}] {ticket.subject}",
        body_text=text,
        body_html="",
        internal=False,
        created_at=now,
    )
    message.attachments = [
        new_attachment(
            session,
            content,
            filename=sanitise_filename(name, _guess_type(name), i),
            content_type=_guess_type(name),
            size=len(content),
        )
        for i, (name, content) in enumerate(attachments, start=1)
    ]
    session.add(message)
    session.flush()
    return message


def _guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def set_fields(
    app: App, session: Session, ticket: Ticket, actor: Actor, commands: str, now: datetime
) -> ReplyResult:
    """Apply command lines without a message (`maildesk ticket set`); all or nothing."""
    agent = actor.agent.email if actor.agent else None
    parsed = parse_reply(commands, command_context(app, agent))
    errors = [str(e) for e in parsed.errors]
    if parsed.text:
        errors.append(f"not a field change: {parsed.text.splitlines()[0]!r}")
    errors = errors or [str(e) for e in lifecycle.check(session, ticket, parsed.commands, app)]
    if errors:
        return ReplyResult("rejected", errors=errors)
    applied = lifecycle.apply(app, session, ticket, parsed.commands, actor, now)
    if actor.agent is not None and not applied.status_set:
        implied = lifecycle.first_agent_action(ticket)
        if implied and applied.changes:
            change = lifecycle.set_status(app, session, ticket, implied, actor, now)
            applied.changes.extend([change] if change else [])
    return ReplyResult("commands", applied.changes)
