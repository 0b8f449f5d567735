"""A mail whose subject is `status` alone: the sender's tickets mailed back, no ticket opened.

The list goes to the sender's address only (a forged From makes the real owner get their
own list, nobody else's), never in answer to automatic mail, and at most `[notify]
auto_replies_per_hour` times an hour per address (maildesk.notify.selfservice).
"""

from __future__ import annotations

import logging

from maildesk.notify.selfservice import status_list
from maildesk.pipeline.context import Context
from maildesk.pipeline.outcome import Outcome
from maildesk.routing.guard import may_auto_reply
from maildesk.routing.selfservice import is_status_request
from maildesk.terms import RawStatus

log = logging.getLogger(__name__)


def status_request(ctx: Context) -> Outcome | None:
    """Subject `status`: answer with the sender's tickets (or record why not); None else."""
    msg, raw = ctx.msg, ctx.raw
    if not is_status_request(msg.subject):
        return None
    verdict = may_auto_reply(msg, ctx.app.config.own_addresses)
    if not verdict.allowed:
        raw.status = RawStatus.IGNORED
        raw.reason = f"status request not answered: automatic mail ({verdict.reason})"
        log.info("%s (raw %s)", raw.reason, raw.id)
        return Outcome(raw.id, "ignored", reason=raw.reason)
    why_not = status_list(ctx.app, ctx.session, ctx.requester, ctx.now)
    raw.reason = (
        f"status request not answered: {why_not}"
        if why_not
        else f"status list mailed to {ctx.requester}"
    )
    log.info("%s (raw %s)", raw.reason, raw.id)
    return Outcome(raw.id, "status", reason=raw.reason)
