"""A reply to a mail to a service's subscribers (a broadcast or an all-clear).

Such a mail went to people who are not on the incident: a subscriber's answer names the
incident by its subject tag and its Message-IDs, but its writer never joins it. From
anyone not on the ticket (not its requester, a watcher or a proven agent) it is a
conversation of its own: a new ticket, linked to the incident, which gets the link event
only (nothing appended, nobody paged, no reopen). The broadcast carried no reply token,
so the reply proves nothing more. An automatic answer to one (an out-of-office that
ignored the notice's `Auto-Submitted` and `Precedence: bulk`) is kept as raw mail,
ignored: no ticket, nobody told.
"""

from __future__ import annotations

import logging

from maildesk.pipeline.context import Context
from maildesk.pipeline.forwards import NOT_ON_TICKET
from maildesk.pipeline.open import new_ticket
from maildesk.pipeline.outcome import Outcome
from maildesk.routing.guard import automatic
from maildesk.store.broadcasts import answers_broadcast
from maildesk.terms import RawStatus

log = logging.getLogger(__name__)


def broadcast_reply(ctx: Context) -> Outcome | None:
    """A subscriber's reply to a broadcast or all-clear: a new ticket, linked."""
    on = ctx.on
    if on.sender.kind not in NOT_ON_TICKET:
        return None
    ids = list(ctx.msg.thread_ids)
    if not answers_broadcast(ctx.session, {on.named.id, on.ticket.id}, ids):
        return None
    machine = automatic(ctx.msg)
    if machine is not None:
        # An out-of-office from a list of hundreds would open a ticket per broadcast.
        raw, ref = ctx.raw, ctx.app.ref(on.named.id)
        raw.status = RawStatus.IGNORED
        raw.reason = f"an automatic answer ({machine}) to a service notice of {ref}"
        log.info("ignored %s (raw %s): %s", ctx.msg.message_id, raw.id, raw.reason)
        return Outcome(raw.id, "ignored", reason=raw.reason)
    who = on.sender.doubt or f"{ctx.requester} is not its requester, a watcher or an agent"
    reason = (
        f"a reply to a service notice of {ctx.app.ref(on.named.id)}, but {who}: a "
        "subscriber's answer is a conversation of its own"
    )
    return new_ticket(ctx, related=(on.ticket, reason))
