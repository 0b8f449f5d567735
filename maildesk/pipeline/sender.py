"""Who wrote a message on an existing ticket; an agent only with a proof (routing.proof)."""

from __future__ import annotations

from maildesk.config import Agent
from maildesk.pipeline.context import Context
from maildesk.pipeline.outcome import Sender
from maildesk.routing.proof import authentication_results
from maildesk.routing.thread import reply_tokens
from maildesk.store import repo
from maildesk.store.models import Ticket


def classify_sender(ctx: Context, ticket: Ticket, named: Ticket) -> Sender:
    """Classify the sender; an agent only with a proof (see maildesk.routing.proof)."""
    address = ctx.msg.from_addr
    agent = ctx.app.config.agent(address) if address else None
    if agent is not None:
        return _claimed_agent(ctx, agent, ticket, named)
    if _is_requester(ctx, ticket):
        return Sender("requester")
    if address in repo.watchers(ctx.session, ticket.id):
        return Sender("watcher")
    return Sender("stranger")


def _claimed_agent(ctx: Context, agent: Agent, ticket: Ticket, named: Ticket) -> Sender:
    """Mail whose From is an agent's: proven by the ticket's agent reply token or a trusted
    Authentication-Results pass; else the requester (their own ticket) or unverified."""
    app, msg, raw = ctx.app, ctx.msg, ctx.raw
    config = app.config
    address = msg.from_addr
    tokens = [
        app.tokens.verify(t, agent.email)
        for t in reply_tokens([*raw.envelope_to, *msg.to, *msg.cc], config.own_addresses)
    ]
    mine = {ticket.id, named.id}
    for token in tokens:
        if token is not None and token.role == "agent" and token.ticket_id in mine:
            return Sender("agent", agent, proof="the ticket's agent reply token")
    auth = authentication_results(msg.raw_headers, config.security.trusted_authserv_ids, address)
    if auth.passed:
        return Sender("agent", agent, proof=auth.detail)
    others = sorted(
        {
            app.ref(t.ticket_id)
            for t in tokens
            if t is not None and t.role == "agent" and t.ticket_id not in mine
        }
    )
    why = (
        f"it carries the agent reply token of {', '.join(others)}, not of this ticket"
        if others
        else "it has neither this ticket's agent reply token nor a trusted "
        f"Authentication-Results pass{' (' + auth.detail + ')' if auth.detail else ''}"
    )
    if _is_requester(ctx, ticket):
        return Sender("requester")  # an agent writing on their own ticket, as requester
    doubt = f"From claims agent {agent.email}, but {why}"
    return Sender("unverified-agent", doubt=doubt)


def _is_requester(ctx: Context, ticket: Ticket) -> bool:
    """From is the requester's address, or another address of the same contact (merged)."""
    address = ctx.msg.from_addr
    mine = ctx.contact is not None and ctx.contact.id == ticket.requester_id
    return bool(address) and (address == ticket.requester.email or mine)
