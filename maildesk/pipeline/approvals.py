"""An approver's answer by mail: a first line `approve` or `reject <reason>` on a ticket
awaiting approval. It counts only with proof, exactly as an agent's mail does: the ticket's
token minted for that approver in a recipient address **and** From that approver, or a
trusted Authentication-Results pass for the approver's address. Anything else that looks
like an answer (right From without the token, another approver's token, a token with a
foreign From) changes nothing: it is kept as an internal message and recorded as refused.
"""

from __future__ import annotations

import logging
import re

from maildesk.pipeline.context import Context
from maildesk.pipeline.inbound import store_message
from maildesk.pipeline.outcome import Outcome
from maildesk.routing.catalog import approval_answer
from maildesk.routing.proof import authentication_results
from maildesk.routing.thread import reply_tokens
from maildesk.store import approvals as store
from maildesk.store import repo
from maildesk.terms import Status
from maildesk.tickets import approvals

log = logging.getLogger(__name__)

_APPROVER_TOKEN = re.compile(r"^\d{1,18}-p[0-9a-f]{20}$")


def approval_reply(ctx: Context) -> Outcome | None:
    """An answer to an approval request: decided when proven, else recorded as refused."""
    on, msg, app = ctx.on, ctx.msg, ctx.app
    ticket = on.ticket
    if ticket.status != Status.AWAITING_APPROVAL:
        return None
    text = ctx.new_text or msg.body_text
    answer = approval_answer(text)
    if answer is None:
        return None
    sender = msg.from_addr
    pending = {
        a.approver
        for a in store.ticket_approvals(ctx.session, ticket.id)
        if a.decision == "pending"
    }
    tokens = reply_tokens([*ctx.raw.envelope_to, *msg.to, *msg.cc], app.config.own_addresses)
    claimed = [t for t in tokens if _APPROVER_TOKEN.match(t.lower())]
    if sender not in pending and not claimed:
        return None  # not an approver's answer (the requester's own words, say)
    proof = _proof(ctx, sender, tokens, ticket.id) if sender in pending else ""
    inbound = store_message(ctx, ticket, internal=True, text=text)
    ref = app.ref(ticket.id)
    ctx.raw.ticket_id = ticket.id
    if not proof:
        why = _why_not(sender, pending, bool(claimed))
        repo.add_event(
            ctx.session,
            ticket,
            "approval_refused",
            ctx.now,
            actor=sender,
            decision=answer.decision,
            message_id=inbound.message_id,
            reason=why,
        )
        log.warning("%s: approval answer from %s refused: %s", ref, sender, why)
        return Outcome(ctx.raw.id, "appended", ticket.id, ref, f"approval refused: {why}")
    done = approvals.decide(
        app,
        ctx.session,
        ticket,
        sender,
        answer.decision,
        comment=answer.comment,
        via="mail",
        proof=proof,
        now=ctx.now,
    )
    log.info("%s: %s (%s)", ref, done.text, proof)
    return Outcome(ctx.raw.id, "appended", ticket.id, ref, done.text)


def _proof(ctx: Context, sender: str, tokens: list[str], ticket_id: int) -> str:
    """How the approver is proven, or "" if not."""
    for t in tokens:
        found = ctx.app.tokens.verify(t, sender)
        if found is not None and found.role == "approver" and found.ticket_id == ticket_id:
            return "the approver's reply token"
    trusted = ctx.app.config.security.trusted_authserv_ids
    auth = authentication_results(ctx.msg.raw_headers, trusted, sender)
    return auth.detail if auth.passed else ""


def _why_not(sender: str, pending: set[str], token: bool) -> str:
    if sender not in pending:
        return f"{sender} is not a pending approver of the ticket, yet it carries an approver token"
    if token:
        return f"the approver token it carries is not {sender}'s for this ticket"
    return (
        f"From is approver {sender}, but the mail has neither their reply token nor a trusted "
        "Authentication-Results pass"
    )
