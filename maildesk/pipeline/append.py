"""Mail on an existing ticket: from its requester side (perhaps reopening it), from a
stranger or a forged agent (recorded, flagged, changing nothing), from a proven agent
(commands, a note or a reply to relay).
"""

from __future__ import annotations

import logging

from maildesk.app import App
from maildesk.mail.message import ParsedMessage
from maildesk.notify import agent_notices, notices
from maildesk.pipeline.context import Context
from maildesk.pipeline.inbound import message_event, store_message
from maildesk.pipeline.outcome import Outcome
from maildesk.pipeline.watchers import add_cc_watchers
from maildesk.routing.guard import Verdict, automatic, may_auto_reply
from maildesk.routing.proof import authentication_results
from maildesk.routing.selfservice import SurveyAnswer, close_request, is_gratitude, survey_answer
from maildesk.store import repo
from maildesk.store.models import Message
from maildesk.terms import REOPENABLE_STATUSES, Status
from maildesk.tickets import lifecycle, selfservice
from maildesk.tickets.lifecycle import Actor
from maildesk.tickets.replies import agent_reply

log = logging.getLogger(__name__)


def append_mail(ctx: Context) -> Outcome:
    """A requester, watcher or anyone else (a stranger, a forged agent) writes on a ticket.

    `ctx.tied_by`: what besides its subject tag ties the mail to the ticket (see thread.ties).
    Only the requester's proven mail adds its CCs as watchers; a stranger's mail and mail
    claiming an agent's From without proof never change the ticket: they are flagged, and
    the agents' notice shows the flag.
    """
    on, msg, raw = ctx.on, ctx.msg, ctx.raw
    ticket, sender = on.ticket, on.sender
    ref = ctx.app.ref(ticket.id)
    text = ctx.new_text or msg.body_text
    inbound = store_message(ctx, ticket, text=text)
    auto_reply = may_auto_reply(msg, ctx.app.config.own_addresses)
    extra = {"automatic": auto_reply.reason} if not auto_reply.allowed else {}
    message_event(ctx, ticket, sender.kind, **extra)
    flags: list[str] = []
    reason = ""
    if sender.doubt:
        flags.append(_unverified_agent(ctx, inbound, ref))
    stranger = sender.kind == "stranger"
    if stranger:
        reason, flag = _stranger(ctx, inbound, ref)
        flags.append(flag)
    if sender.kind == "requester":
        unproven = requester_unproven(ctx.app, msg, ctx.tied_by)
        add_cc_watchers(ctx, ticket, ticket.requester.email, unproven=unproven)
    if not stranger:
        ticket.updated_at = ctx.now  # a stranger's mail does not even touch the ticket
    status = _tell_agents(ctx, inbound, auto_reply, flags)
    raw.ticket_id = ticket.id
    log.info("%s %s to %s via %s (raw %s)", status, msg.message_id, ref, on.match.via, raw.id)
    return Outcome(raw.id, status, ticket.id, ref, reason)


def _unverified_agent(ctx: Context, inbound: Message, ref: str) -> str:
    """Record that the From claims an agent without proof, and tell that agent (at their
    configured address) it was kept, not relayed; the flag for the agents."""
    doubt = ctx.on.sender.doubt
    agent = ctx.app.config.agent(ctx.msg.from_addr)
    if agent is not None:
        why = doubt.replace(f"From claims agent {agent.email}, but ", "", 1)
        agent_notices.reply_not_relayed(
            ctx.app, ctx.session, ctx.on.ticket, agent, inbound, why, ctx.now
        )
    repo.add_event(
        ctx.session,
        ctx.on.ticket,
        "sender_unverified",
        ctx.now,
        actor=ctx.msg.from_addr,
        message_id=ctx.msg.message_id,
        reason=doubt,
    )
    log.warning("%s: %s (raw %s)", ref, doubt, ctx.raw.id)
    return f"{doubt}. Treat it as written by the requester side"


def _stranger(ctx: Context, inbound: Message, ref: str) -> tuple[str, str]:
    """Record mail from someone not on the ticket; the reason, and the flag for the agents."""
    who, tied_by = inbound.from_addr, ctx.tied_by
    how = (
        "its reply token"
        if "reply-token" in tied_by
        else "In-Reply-To/References"
        if tied_by
        else "its subject tag alone ([threading] subject_ref_from_strangers = append)"
    )
    reason = f"{who} is not its requester, a watcher or an agent; tied to it by {how}"
    flag = (
        f"{who} is not on {ref} (not its requester, a watcher or an agent): the mail "
        "changed nothing, and your reply does not go to them"
    )
    repo.add_event(
        ctx.session,
        ctx.on.ticket,
        "stranger",
        ctx.now,
        actor=who,
        message_id=ctx.msg.message_id,
        reason=reason,
    )
    log.warning("%s: %s (%s, raw %s)", ref, reason, ctx.msg.message_id, ctx.raw.id)
    return reason, flag


def _tell_agents(ctx: Context, inbound: Message, auto_reply: Verdict, flags: list[str]) -> str:
    """The agents' notice of the mail (reopening the ticket if it may); the outcome status."""
    app, session, ticket, now = ctx.app, ctx.session, ctx.on.ticket, ctx.now
    if not auto_reply.allowed:
        # An out-of-office or other automatic answer is kept, but it does not reopen the
        # ticket or page anyone.
        reason = f"automatic: {auto_reply.reason}"
        notices.suppressed(app, session, ticket, "agent_requester_reply", reason, now)
        return "appended"
    if flags:
        # A forged agent From or a stranger changes nothing; the agents are warned.
        notices.requester_replied(
            app, session, ticket, inbound, ctx.msg, now, reopened=False, flags=flags
        )
        return "appended"
    status, reopened = "appended", False
    if ticket.status not in (Status.NEW, Status.OPEN):
        reopened = ticket.status in REOPENABLE_STATUSES
        actor = Actor(ctx.msg.from_addr, "mail")
        lifecycle.set_status(app, session, ticket, Status.OPEN, actor, now)
        status = "reopened" if reopened else status
    notices.requester_replied(
        app, session, ticket, inbound, ctx.msg, now, reopened=reopened, flags=flags
    )
    return status


def requester_unproven(app: App, msg: ParsedMessage, tied_by: frozenset[str]) -> str:
    """Why mail with the requester's From is not proven theirs ("" if it is).

    Proof is the ticket's reply token in a recipient (mailed only to the requester and the
    watchers), or a trusted Authentication-Results pass for the requester's domain. A
    matching In-Reply-To/References is not: a Message-ID travels with every forward.
    """
    if "reply-token" in tied_by:
        return ""
    address = msg.from_addr
    auth = authentication_results(
        msg.raw_headers, app.config.security.trusted_authserv_ids, address
    )
    if auth.passed:
        return ""
    how = (
        "In-Reply-To/References (a Message-ID travels with every forward)"
        if "headers" in tied_by
        else "its subject tag"
    )
    return (
        f"the mail is tied to the ticket only by {how}, not by the requester's reply token "
        "or a trusted Authentication-Results pass, so its From is not proven; an agent can "
        "add them with #cc +address"
    )


def agent_mail(ctx: Context) -> Outcome:
    """A proven agent's reply: commands, an internal note, or a reply to relay."""
    msg, raw, ticket, sender = ctx.msg, ctx.raw, ctx.on.ticket, ctx.on.sender
    assert sender.agent is not None
    text = ctx.new_text
    machine = automatic(msg)
    if machine is not None:
        # An agent's out-of-office answer is kept for the record, never relayed or obeyed.
        store_message(ctx, ticket, kind="agent_auto", internal=True, text=text)
        message_event(ctx, ticket, "agent", automatic=machine)
        raw.ticket_id = ticket.id
        return Outcome(raw.id, "appended", ticket.id, ctx.app.ref(ticket.id), machine)
    inbound = store_message(ctx, ticket, kind="agent_reply", text=text)
    message_event(ctx, ticket, "agent", proof=sender.proof)
    actor = Actor(sender.agent.email, "mail", sender.agent)
    result = agent_reply(ctx.app, ctx.session, ticket, actor, inbound, text, ctx.now)
    raw.ticket_id = ticket.id
    ref = ctx.app.ref(ticket.id)
    return Outcome(raw.id, result.status, ticket.id, ref, "; ".join(result.errors))


def requester_action(ctx: Context) -> Outcome | None:
    """A requester's reply that acts on its ticket: a survey answer, a first line `close`
    (`resolved`, `#close`), or a short thank-you to a resolved ticket, which is recorded and
    does not reopen it (`[desk] gratitude_reopens`). Anything else: None (appended as usual).

    Resolving needs the requester's proof (requester_unproven); an unproven `close` is
    recorded and changes nothing.
    """
    on, msg = ctx.on, ctx.msg
    ticket = on.ticket
    if on.sender.kind not in ("requester", "watcher"):
        return None
    if not may_auto_reply(msg, ctx.app.config.own_addresses).allowed:
        return None  # automatic mail: kept by append_mail, never obeyed
    text = ctx.new_text or msg.body_text
    unproven = requester_unproven(ctx.app, msg, ctx.tied_by)
    mine = on.sender.kind == "requester"
    answer = survey_answer(text) if mine else None  # the text first: it rarely is one
    if answer is not None and selfservice.survey_pending(ticket):
        return _survey_answered(ctx, text, answer, unproven)
    word = close_request(text) if mine else None
    done = ticket.status in REOPENABLE_STATUSES
    if word is not None and not unproven and not done:
        return _closed(ctx, text, word)
    if word is not None:
        why = f"already {ticket.status}" if done else unproven
        repo.add_event(
            ctx.session,
            ticket,
            "close_refused",
            ctx.now,
            actor=msg.from_addr,
            word=word,
            reason=why,
        )
        return _kept(ctx, text, f"{word!r}: {why}") if done else None
    if done and not ctx.app.config.desk.gratitude_reopens and is_gratitude(text):
        repo.add_event(ctx.session, ticket, "gratitude", ctx.now, actor=msg.from_addr)
        return _kept(ctx, text, f"a thank-you to a {ticket.status} ticket: not reopened")
    return None


def _kept(ctx: Context, text: str, reason: str) -> Outcome:
    """Store the reply on the ticket, changing nothing else."""
    ticket = ctx.on.ticket
    store_message(ctx, ticket, text=text)
    message_event(ctx, ticket, ctx.on.sender.kind)
    ctx.raw.ticket_id = ticket.id
    ref = ctx.app.ref(ticket.id)
    log.info("kept %s on %s: %s (raw %s)", ctx.msg.message_id, ref, reason, ctx.raw.id)
    return Outcome(ctx.raw.id, "appended", ticket.id, ref, reason)


def _closed(ctx: Context, text: str, word: str) -> Outcome:
    """The requester's proven `close`: resolved, a receipt to them, the agents told."""
    app, session, ticket, now = ctx.app, ctx.session, ctx.on.ticket, ctx.now
    inbound = store_message(ctx, ticket, text=text)
    message_event(ctx, ticket, "requester")
    selfservice.resolve_by_requester(app, session, ticket, inbound, word, now)
    notices.requester_replied(app, session, ticket, inbound, ctx.msg, now, reopened=False)
    ctx.raw.ticket_id = ticket.id
    return Outcome(ctx.raw.id, "resolved", ticket.id, app.ref(ticket.id), f"{word!r} by requester")


def _survey_answered(ctx: Context, text: str, answer: SurveyAnswer, unproven: str) -> Outcome:
    """A survey answer: recorded (a bad one escalated) when proven; never reopens."""
    if unproven:
        repo.add_event(
            ctx.session,
            ctx.on.ticket,
            "survey_refused",
            ctx.now,
            actor=ctx.msg.from_addr,
            reason=unproven,
        )
        return _kept(ctx, text, f"survey answer not recorded: {unproven}")
    ticket = ctx.on.ticket
    inbound = store_message(ctx, ticket, text=text)
    message_event(ctx, ticket, "requester")
    selfservice.record_answer(ctx.app, ctx.session, ticket, inbound, answer, ctx.now)
    ctx.raw.ticket_id = ticket.id
    return Outcome(ctx.raw.id, "survey", ticket.id, ctx.app.ref(ticket.id), str(answer.score))
