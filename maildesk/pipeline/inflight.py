"""A reply whose conversation is not stored yet, while mail stored before it still waits:
with several daemons, the message it answers may be in another daemon's hands right now.
It goes back, pending, for a moment, so that it threads to that message's ticket instead
of opening a second one. One daemon processes mail in order and never waits here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from maildesk.pipeline.context import Context
from maildesk.pipeline.outcome import Outcome
from maildesk.store import repo

log = logging.getLogger(__name__)

DEFER_FOR = timedelta(seconds=1)  # then any daemon may take it again
# Mail stored this long ago goes on as it is (a new ticket): what it answers never came.
DEFER_AT_MOST = timedelta(minutes=5)


def parent_in_flight(ctx: Context) -> Outcome | None:
    """The reply deferred (status "deferred"), or None: go on, it starts a new ticket."""
    msg, raw, now = ctx.msg, ctx.raw, ctx.app.now()
    if not (msg.in_reply_to or msg.references) or now - raw.received_at > DEFER_AT_MOST:
        return None
    if not repo.pending_before(ctx.session, raw.id):
        return None
    repo.defer_raw(ctx.session, raw, datetime.now(UTC) + DEFER_FOR)  # claims: wall-clock
    log.info(
        "deferred %s (raw %s): it answers mail not stored yet, and older mail is still pending",
        msg.message_id,
        raw.id,
    )
    return Outcome(raw.id, "deferred", reason="answers mail that may still be in process")
