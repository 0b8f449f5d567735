"""The pipeline's order, as data: STEPS, run in turn over one claimed message's Context.

Each step looks at the context and either decides (returns the Outcome, having made its
changes) or passes on: None, or a copy of the context with what it found out. The last
step always decides. The order is the policy: a loop marker before anything else, a
duplicate before a bounce, a fragment of a message sent in parts before anything reads it
as a message of its own, machine reports (receipts, bounces) before anyone counts as the
mail's sender, the sender proven before the mail may change a ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.orm import Session

from maildesk import logctx
from maildesk.app import App
from maildesk.mail.address import normalise_address
from maildesk.mail.message import ParsedMessage
from maildesk.pipeline.alerts import alerts
from maildesk.pipeline.append import agent_mail, append_mail, requester_action
from maildesk.pipeline.approvals import approval_reply
from maildesk.pipeline.behalf import on_behalf
from maildesk.pipeline.broadcasts import broadcast_reply
from maildesk.pipeline.catalog import catalog_mail, completing_reply
from maildesk.pipeline.context import Context, OnTicket
from maildesk.pipeline.forwards import forward_of_ticket, own_notice
from maildesk.pipeline.fragments import fragment
from maildesk.pipeline.historic import message_time
from maildesk.pipeline.inflight import parent_in_flight
from maildesk.pipeline.open import new_ticket
from maildesk.pipeline.outcome import NoSender, Outcome
from maildesk.pipeline.reports import bounced, receipt_noted
from maildesk.pipeline.selfservice import status_request
from maildesk.pipeline.sender import classify_sender
from maildesk.routing.bounce import recognise as recognise_bounce
from maildesk.routing.guard import is_own_loop
from maildesk.routing.receipt import recognise as recognise_receipt
from maildesk.routing.thread import thread_message, ties
from maildesk.store import repo
from maildesk.store.models import RawMessage, Ticket
from maildesk.terms import REOPENABLE_STATUSES, RawStatus
from maildesk.tickets import lifecycle

log = logging.getLogger(__name__)

Step = Callable[[Context], Outcome | Context | None]


def own_loop(ctx: Context) -> Outcome | None:
    """Our own notification came back (it carries our loop marker): ignored."""
    if not is_own_loop(ctx.msg, ctx.app.config.desk.address):
        return None
    raw = ctx.raw
    raw.status, raw.reason = RawStatus.IGNORED, "our own notification came back (loop marker)"
    log.info("ignored %s (raw %s): %s", ctx.msg.message_id, raw.id, raw.reason)
    return Outcome(raw.id, "ignored", reason=raw.reason)


def duplicate(ctx: Context) -> Outcome | None:
    """A Message-ID already stored on a ticket: the same mail again, kept as a duplicate."""
    existing = ctx.index.ticket_for_message_ids([ctx.msg.message_id])
    if existing is None:
        return None
    raw, ref = ctx.raw, ctx.app.ref(existing)
    logctx.set_ticket(ref)
    raw.status, raw.ticket_id = RawStatus.DUPLICATE, existing
    raw.reason = f"Message-ID {ctx.msg.message_id} already stored on {ref}"
    log.info("duplicate %s for %s (raw %s)", ctx.msg.message_id, ref, raw.id)
    return Outcome(raw.id, "duplicate", existing, ref, raw.reason)


def receipt(ctx: Context) -> Outcome | None:
    """A read receipt goes on the ticket of the message it reports on (see
    reports.receipt_noted): a record, never a reply."""
    found = recognise_receipt(ctx.msg, ctx.raw_bytes)
    return None if found is None else receipt_noted(ctx, found)


def bounce(ctx: Context) -> Outcome | None:
    """A delivery report goes on the ticket of the message it returns (see reports.bounced)."""
    found = recognise_bounce(ctx.msg, ctx.raw_bytes, ctx.raw.envelope_from)
    return None if found is None else bounced(ctx, found)


def requester(ctx: Context) -> Context:
    """Who to answer: the From address, else the envelope sender; a known contact's mail
    fills in their name and proves their address receives mail. Nobody: NoSender."""
    msg = ctx.msg
    address = msg.from_addr or normalise_address(ctx.raw.envelope_from or "")
    # Earlier messages' contacts were flushed with their savepoints, and none is pending
    # for this one yet: an autoflush would only write its raw row's claim early, a flush
    # of its own.
    with ctx.session.no_autoflush:
        contact = repo.contact(ctx.session, address)
    if contact is not None and msg.from_name and not contact.name:
        contact.name = msg.from_name
    if contact is not None and contact.bounced_at is not None:
        contact.bounced_at = contact.bounce_reason = None  # mail from it proves it receives
    if "@" not in address:
        raise NoSender("message has no usable From address or envelope sender")
    return replace(ctx, requester=address, contact=contact)


def existing_ticket(ctx: Context) -> Outcome | Context:
    """The ticket the mail threads to, and who wrote it; none: a new ticket."""
    config = ctx.app.config
    match = thread_message(
        ctx.msg,
        ctx.index,
        prefix=config.desk.ref_prefix,
        recipients=ctx.raw.envelope_to,
        desk_addresses=config.own_addresses,
    )
    if match.ticket_id is None:
        waiting = parent_in_flight(ctx)  # several daemons: what it answers may be in process
        if waiting is not None:
            return waiting
        found = on_behalf(ctx)  # a proven agent's forward opens it in the customer's name
        return new_ticket(ctx) if found is None else new_ticket(found[0], behalf=found[1])
    named = ctx.session.get_one(Ticket, match.ticket_id)
    ticket = lifecycle.resolve_merged(ctx.session, named)
    logctx.set_ticket(ctx.app.ref(ticket.id))
    sender = classify_sender(ctx, ticket, named)
    return replace(ctx, existing=OnTicket(match, named, ticket, sender))


def agent(ctx: Context) -> Outcome | None:
    """A proven agent's mail: commands, an internal note, or a reply to relay."""
    return agent_mail(ctx) if ctx.on.sender.kind == "agent" else None


def tied(ctx: Context) -> Context:
    """What besides its subject tag ties the mail to the ticket: "headers" (its
    In-Reply-To/References), "reply-token" (the ticket's token in a recipient)."""
    on = ctx.on
    tied_by = ties(
        ctx.msg,
        ctx.index,
        {on.named.id, on.ticket.id},
        recipients=ctx.raw.envelope_to,
        desk_addresses=ctx.app.config.own_addresses,
    )
    if on.match.via in ("in-reply-to", "references"):
        tied_by |= {"headers"}
    elif on.match.via == "reply-token":
        tied_by |= {"reply-token"}
    return replace(ctx, tied_by=tied_by)


def subject_tag_only(ctx: Context) -> Outcome | None:
    """Only the subject tag ties a stranger's (or an unproven agent's) mail to the ticket:
    with [threading] subject_ref_from_strangers = "new-ticket", a new ticket, linked."""
    on, app = ctx.on, ctx.app
    if (
        ctx.tied_by
        or on.sender.kind not in ("stranger", "unverified-agent")
        or app.config.threading.subject_ref_from_strangers != "new-ticket"
    ):
        return None
    if on.sender.doubt:
        reason = (
            f"the subject names {app.ref(on.named.id)}, but {on.sender.doubt}, and neither "
            "In-Reply-To/References nor a reply token ties the mail to it"
        )
    else:
        reason = (
            f"the subject names {app.ref(on.named.id)}, but {ctx.requester} is not its "
            "requester, a watcher or an agent, and neither In-Reply-To/References nor a "
            "reply token ties the mail to it"
        )
    return new_ticket(ctx, related=(on.ticket, reason))


def stranger(ctx: Context) -> Outcome | None:
    """Someone not on the ticket holding one of its Message-IDs or its reply token (a
    forward, a mailing list), or naming it with "append": recorded, changes nothing,
    whatever the ticket's status or the reopen window."""
    return append_mail(ctx) if ctx.on.sender.kind == "stranger" else None


def past_reopen_window(ctx: Context) -> Outcome | None:
    """A reply to a ticket resolved or closed longer than the reopen window: a follow-up."""
    ticket = ctx.on.ticket
    if ticket.status not in REOPENABLE_STATUSES:
        return None
    since = ticket.closed_at or ticket.resolved_at or ticket.updated_at
    if ctx.now - since <= ctx.app.config.desk.reopen_window:
        return None
    reason = f"reply to a ticket {ticket.status} longer than the reopen window"
    return new_ticket(ctx, related=(ticket, reason), follow_up=True)


STEPS: tuple[Step, ...] = (
    own_loop,
    duplicate,
    fragment,  # waits for its set, or is reassembled, or goes on as mail with an attachment
    receipt,
    bounce,
    requester,
    alerts,  # a monitor's alert: the one open incident of its key (pipeline/alerts.py)
    status_request,  # subject "status" alone: the sender's tickets mailed back, no ticket
    catalog_mail,  # subject "catalog" or "help" alone: the catalog mailed back, no ticket
    existing_ticket,
    approval_reply,  # an approver's approve / reject: decided only with proof
    agent,
    tied,
    own_notice,  # an agent notice forwarded back by anyone but a proven agent: internal
    forward_of_ticket,  # a forward by someone not on the ticket: a new ticket, linked
    broadcast_reply,  # a subscriber's reply to a service notice: a new ticket, linked
    subject_tag_only,
    stranger,
    completing_reply,  # a requester's Field: value lines complete their catalog request
    requester_action,  # close by reply, a survey answer, a thank-you that does not reopen
    past_reopen_window,
    append_mail,  # anything else goes on the ticket (a requester's reply may reopen it)
)
# An import has just found the Message-ID not stored, in the same transaction.
_STEPS_KNOWN_NEW = tuple(step for step in STEPS if step is not duplicate)


def process_message(
    app: App,
    session: Session,
    raw_id: int,
    msg: ParsedMessage,
    raw_bytes: bytes,
    new_text: str | None = None,
    stored: RawMessage | None = None,
) -> Outcome:
    """Claim a stored message and run it through STEPS (inside the caller's savepoint);
    `new_text`: the reply's new text, if it was worked out with the parse. `stored`: its row,
    which the caller's transaction has just stored after finding its Message-ID new (import):
    taken as it is, and the duplicate step does not ask again."""
    if stored is None:
        raw = repo.claim_raw(session, raw_id, app.now())
    else:
        raw = repo.take_stored(stored, app.now())
    now = message_time(app, msg)  # imported mail: its own Date (pipeline.historic)
    if raw is None:
        return Outcome(raw_id, "skipped", reason="not pending (processed, or in process elsewhere)")
    ctx = Context(
        app=app,
        session=session,
        raw=raw,
        msg=msg,
        raw_bytes=raw_bytes,
        now=now,
        index=repo.StoreThreadIndex(session, app.tokens, sender=msg.from_addr),
        _memo={} if new_text is None else {"new_text": new_text},
    )
    return run_steps(ctx, STEPS if stored is None else _STEPS_KNOWN_NEW)


def run_steps(ctx: Context, steps: tuple[Step, ...] = STEPS) -> Outcome:
    """Run the steps in order until one decides."""
    for step in steps:
        result = step(ctx)
        if isinstance(result, Outcome):
            return result
        if result is not None:
            ctx = result
    raise AssertionError("the last step always decides")
