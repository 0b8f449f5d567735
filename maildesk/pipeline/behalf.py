"""A proven agent's new mail that opens a ticket in a customer's name (docs/agents.md).

The agent forwards a customer's mail to the desk with `#requester customer@example.org`
as its first line, or forwards one whose original sender is outside the desk's domains
(the desk's own addresses' domains and the agents'). Only an agent proven by a trusted
Authentication-Results pass may (a new mail carries no ticket's reply token); anyone
else's forward, an unproven agent's included, is ordinary mail from its sender. The
ticket's requester is the customer, its first public message the forwarded text, the
agent's note above the forward an internal message; the `created` event names the agent.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

from maildesk.config import Agent, Config
from maildesk.mail.message import MINTED_ID_DOMAIN, ParsedMessage
from maildesk.pipeline.context import Context
from maildesk.routing.forward import (
    Forward,
    forwarded,
    inside,
    requester_address,
    requester_command,
)
from maildesk.routing.proof import authentication_results
from maildesk.routing.thread import strip_reply_prefixes
from maildesk.store import repo
from maildesk.store.models import Message, Ticket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Behalf:
    """A ticket opened by an agent for a customer: who, how proven, the agent's own mail,
    the agent's note above the forward (stored internal), or the bad `#requester` line."""

    agent: Agent
    proof: str
    original: ParsedMessage
    note: str = ""
    error: str = ""


def desk_domains(config: Config) -> frozenset[str]:
    """The desk's own domains: those of its addresses and of its agents."""
    addresses = [*config.own_addresses, *(a.email for a in config.agents)]
    return frozenset(a.rpartition("@")[2].lower() for a in addresses if "@" in a)


def on_behalf(ctx: Context) -> tuple[Context, Behalf] | None:
    """The context for a ticket in the customer's name, or None for ordinary mail."""
    config, msg = ctx.app.config, ctx.msg
    agent = config.agent(msg.from_addr) if msg.from_addr else None
    if agent is None:
        return None
    command, rest = requester_command(msg.body_text)
    forward = forwarded(replace(msg, body_text=rest))
    external = forward is not None and forward.original_from
    if command is None and not (external and not inside(external, desk_domains(config))):
        return None
    auth = authentication_results(
        msg.raw_headers, config.security.trusted_authserv_ids, agent.email
    )
    if not auth.passed:
        return None  # an unproven agent's forward: ordinary mail from that address
    if command is not None:
        customer = requester_address(command)
        if customer is None:
            error = f"#requester {command}: not a mail address (#requester someone@example.org)"
            return ctx, Behalf(agent, auth.detail, msg, error=error)
    else:
        assert forward is not None
        customer = forward.original_from
    if config.agent(customer) is not None or customer in config.own_addresses:
        error = f"#requester {customer}: an agent or the desk itself, not a customer"
        return ctx, Behalf(agent, auth.detail, msg, error=error)
    return _customer_side(ctx, customer, forward, rest), Behalf(
        agent, auth.detail, msg, note=forward.note if forward else ""
    )


def _customer_side(ctx: Context, customer: str, forward: Forward | None, rest: str) -> Context:
    """The mail as the customer wrote it: their address and name, their text, the subject
    without the forward's prefix; no To/Cc (the agent's recipients watch nothing)."""
    msg = ctx.msg
    name = forward.original_name if forward and forward.original_from == customer else ""
    text = forward.original_text if forward else rest.strip()
    customer_msg = replace(
        msg,
        from_addr=customer,
        from_name=name,
        subject=strip_reply_prefixes(msg.subject) or msg.subject,
        body_text=text,
        body_html="",
        to=(),
        cc=(),
    )
    contact = repo.contact(ctx.session, customer)
    return replace(ctx, msg=customer_msg, requester=customer, contact=contact)


def opened_for(ctx: Context, ticket: Ticket, inbound: Message, behalf: Behalf) -> None:
    """The agent's part of a ticket opened for a customer: their note, kept internal, and
    the event; with a bad `#requester` the whole mail is internal and the agent told."""
    session, now = ctx.session, ctx.now
    agent = behalf.agent.email
    if behalf.error:
        inbound.internal, inbound.kind = True, "agent_rejected"
        repo.add_event(
            session,
            ticket,
            "commands_rejected",
            now,
            actor=agent,
            via="mail",
            message_id=inbound.message_id,
            errors=[behalf.error],
        )
        return
    repo.add_event(
        session,
        ticket,
        "opened_on_behalf",
        now,
        actor=agent,
        requester=ctx.requester,
        proof=behalf.proof,
        message_id=behalf.original.message_id,
    )
    if behalf.note:
        session.add(_note(ctx, ticket, behalf))
    log.info("%s opened by %s for %s", ctx.app.ref(ticket.id), agent, ctx.requester)


def _note(ctx: Context, ticket: Ticket, behalf: Behalf) -> Message:
    """The agent's note above the forward, as an internal message of its own."""
    original = behalf.original
    digest = hashlib.sha256(f"note:{original.message_id}".encode()).hexdigest()[:32]
    return Message(
        ticket_id=ticket.id,
        raw_id=ctx.raw.id,
        direction="in",
        kind="note",
        message_id=f"<{digest}.note@{MINTED_ID_DOMAIN}>",
        in_reply_to=original.message_id,
        from_addr=behalf.agent.email,
        from_name=original.from_name,
        to=list(original.to),
        cc=list(original.cc),
        subject=original.subject,
        body_text=behalf.note,
        body_html="",
        internal=True,
        created_at=ctx.now,
    )
