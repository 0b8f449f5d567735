"""Forwards of a ticket's mail that are not replies to it (docs/agents.md).

A forward keeps the ticket's Message-IDs (In-Reply-To/References) and often its subject
tag, so it threads to the ticket; from someone who is not its requester, a watcher or a
proven agent it is a new conversation: a new ticket, linked to the old one, which gets
the link event only (nothing appended, nobody told, no reopen). Mail that carries an agent
notice (its marker line) and is not a proven agent's reply, an agent forwarding their own
notice to the plain support address say, is kept on the ticket as internal and does
nothing else: it is never a public message, never relayed, never a new ticket.
"""

from __future__ import annotations

import logging

from maildesk.notify import agent_notices
from maildesk.parse.reply import NOTICE_MARKER
from maildesk.pipeline.context import Context
from maildesk.pipeline.inbound import message_event, store_message
from maildesk.pipeline.open import new_ticket
from maildesk.pipeline.outcome import Outcome
from maildesk.routing.forward import is_forward
from maildesk.store import repo

log = logging.getLogger(__name__)

NOT_ON_TICKET = ("stranger", "unverified-agent")


def own_notice(ctx: Context) -> Outcome | None:
    """Mail carrying an agent notice's marker line, not a proven agent's: kept internal."""
    on, msg = ctx.on, ctx.msg
    if on.sender.kind == "agent" or not NOTICE_MARKER.search(msg.body_text):
        return None
    ticket, ref = on.ticket, ctx.app.ref(on.ticket.id)
    inbound = store_message(ctx, ticket, internal=True)
    message_event(ctx, ticket, on.sender.kind, internal="it carries an agent notice")
    reason = (
        "it carries a notice maildesk sent to an agent (its marker line), so it is kept "
        "internal: never shown or relayed to the requester side"
    )
    repo.add_event(
        ctx.session,
        ticket,
        "notice_kept_internal",
        ctx.now,
        actor=msg.from_addr,
        message_id=msg.message_id,
        reason=reason,
    )
    agent = ctx.app.config.agent(msg.from_addr) if msg.from_addr else None
    if agent is not None:  # the configured address, whatever the mail proves
        why = on.sender.doubt or "it carries a notice maildesk sent to you"
        agent_notices.reply_not_relayed(ctx.app, ctx.session, ticket, agent, inbound, why, ctx.now)
    ctx.raw.ticket_id = ticket.id
    log.info("%s: %s from %s kept internal: %s", ref, msg.message_id, msg.from_addr, reason)
    return Outcome(ctx.raw.id, "note", ticket.id, ref, reason)


def forward_of_ticket(ctx: Context) -> Outcome | None:
    """A forward of the ticket's mail by someone not on it: a new ticket, linked."""
    on = ctx.on
    if on.sender.kind not in NOT_ON_TICKET or not is_forward(ctx.msg):
        return None
    who = (
        on.sender.doubt
        if on.sender.doubt
        else f"{ctx.requester} is not its requester, a watcher or an agent"
    )
    reason = (
        f"a forward of mail of {ctx.app.ref(on.named.id)} (by {on.match.via}), but {who}: "
        "a forward is a new conversation, not a reply"
    )
    return new_ticket(ctx, related=(on.ticket, reason))
