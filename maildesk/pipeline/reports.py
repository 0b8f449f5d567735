"""Machine reports about mail the desk sent: bounces (delivery status notifications) and read
receipts (disposition notifications).

Each goes on the ticket of the message it reports on as an internal record (a message of
kind "bounce" or "receipt", and an event), never a ticket of its own. Neither is a reply:
it notifies nobody, reopens nothing, leaves the ticket's status and its SLA clock alone,
and is never answered. A report of mail that is on no ticket is kept, set aside with the
reason. The same report delivered twice (to two desk addresses, or sent again by the
remote server, with another Message-ID or none) is recorded once: the second copy is a
duplicate when its identity (routing.bounce.identity, routing.receipt.identity) matches
a report recorded on the ticket within REPEAT_WINDOW.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from maildesk.pipeline.context import Context
from maildesk.pipeline.inbound import store_message
from maildesk.pipeline.outcome import Outcome
from maildesk.routing import bounce as bounces
from maildesk.routing import receipt as receipts
from maildesk.routing.bounce import Bounce
from maildesk.routing.receipt import Receipt
from maildesk.routing.thread import subject_refs
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.terms import RawStatus
from maildesk.tickets import lifecycle

log = logging.getLogger(__name__)

# A copy of a report that comes later than this is recorded again: servers resend within
# their queue lifetime (five days is usual), and a report weeks later is news.
REPEAT_WINDOW = timedelta(days=7)


def bounced(ctx: Context, bounce: Bounce) -> Outcome:
    """A bounce goes on the ticket of the message it returns, never on a ticket of its own."""
    session, raw, msg, now = ctx.session, ctx.raw, ctx.msg, ctx.now
    original = repo.bounced_message(session, bounce.quoted_ids)
    what = "hard bounce" if bounce.permanent else "delivery delay/soft bounce"
    if original is None:
        why = f"{what} for a message that is not on any ticket ({bounce.diagnostic[:200]})"
        return _on_no_ticket(ctx, RawStatus.BOUNCE, why)
    ticket = session.get_one(Ticket, original.ticket_id)
    recipients = bounce.recipients or tuple(original.to)
    identity = bounces.identity(bounce, original.message_id)
    repeat = _repeat(ctx, ticket, "bounce", identity, f"{what} for {', '.join(recipients)}")
    if repeat is not None:
        return repeat
    store_message(ctx, ticket, kind="bounce", internal=True)
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
        message_id=msg.message_id,
        identity=identity,
    )
    if bounce.permanent:
        repo.mark_bouncing(session, recipients, bounce.diagnostic or what, now)
    raw.ticket_id = ticket.id
    ref = ctx.app.ref(ticket.id)
    log.info("%s for %s on %s: %s", what, ", ".join(recipients), ref, bounce.diagnostic[:200])
    return Outcome(raw.id, "bounce", ticket.id, ref, f"{what} for {', '.join(recipients)}")


def receipt_noted(ctx: Context, receipt: Receipt) -> Outcome:
    """A read receipt goes on the ticket of the message it reports on, as a record only."""
    session, raw, msg = ctx.session, ctx.raw, ctx.msg
    what = f"read receipt ({receipt.disposition}) from {receipt.reporter or 'someone'}"
    found = _reported_on(ctx, receipt)
    if found is None:
        return _on_no_ticket(
            ctx, RawStatus.RECEIPT, f"{what} for a message that is not on any ticket"
        )
    ticket, original, via = found
    identity = receipts.identity(receipt, original or f"ticket {ticket.id}")
    repeat = _repeat(ctx, ticket, "receipt", identity, what)
    if repeat is not None:
        return repeat
    store_message(ctx, ticket, kind="receipt", internal=True)
    repo.add_event(
        session,
        ticket,
        "receipt",
        ctx.now,
        actor=receipt.reporter or msg.from_addr or "unknown",
        original=original or None,
        found_by=via,
        disposition=receipt.disposition,
        modifiers=list(receipt.modifiers),
        automatic=receipt.automatic,
        action_mode=receipt.action_mode,
        sending_mode=receipt.sending_mode,
        standard=receipt.standard,
        recognised_by=receipt.recognised_by,
        message_id=msg.message_id,
        identity=identity,
    )
    raw.ticket_id = ticket.id
    ref = ctx.app.ref(ticket.id)
    log.info("%s on %s (%s, raw %s)", what, ref, msg.message_id, raw.id)
    return Outcome(raw.id, "receipt", ticket.id, ref, what)


def _reported_on(ctx: Context, receipt: Receipt) -> tuple[Ticket, str, str] | None:
    """The ticket the receipt is about, the Message-ID of ours it names ("" if it names
    none), and how it was found: by that Message-ID, else by the [MD-n] tag in its subject
    ("Read: [MD-7] Printer on fire")."""
    original = repo.bounced_message(ctx.session, receipt.original_ids)
    if original is not None:
        ticket = ctx.session.get_one(Ticket, original.ticket_id)
        return ticket, original.message_id, "message-id"
    for number in subject_refs(ctx.msg.subject, ctx.app.config.desk.ref_prefix):
        if ctx.index.ticket_exists(number):
            named = ctx.session.get_one(Ticket, number)
            return lifecycle.resolve_merged(ctx.session, named), "", "subject"
    return None


def _repeat(ctx: Context, ticket: Ticket, kind: str, identity: str, what: str) -> Outcome | None:
    """A copy of a report already recorded on the ticket: kept as a duplicate, nothing else."""
    session, raw = ctx.session, ctx.raw
    repo.hold(session, f"{kind} {identity}")  # two copies at once on two daemons: one records
    earlier = repo.recorded_report(session, ticket.id, kind, identity, ctx.now - REPEAT_WINDOW)
    if earlier is None:
        return None
    ref = ctx.app.ref(ticket.id)
    raw.status, raw.ticket_id = RawStatus.DUPLICATE, ticket.id
    raw.reason = (
        f"the same {what} is already recorded on {ref} "
        f"({earlier.data.get('message_id') or 'an earlier copy'}, {earlier.at.isoformat()})"
    )
    log.info("duplicate %s %s for %s (raw %s)", kind, ctx.msg.message_id, ref, raw.id)
    return Outcome(raw.id, "duplicate", ticket.id, ref, raw.reason)


def _on_no_ticket(ctx: Context, status: RawStatus, why: str) -> Outcome:
    """A report about mail that is on no ticket: kept with its status and why, no ticket."""
    raw = ctx.raw
    raw.status, raw.reason = status, why
    log.info(
        "%s %s (raw %s) matches no ticket: kept, no ticket", status, ctx.msg.message_id, raw.id
    )
    return Outcome(raw.id, str(status), reason=why)
