"""Mail to the subscribers of the services a major incident affects: its broadcasts and
its all-clear (who gets them, and when, is maildesk.tickets.broadcasts).

One mail per subscriber, To that address alone, queued in the caller's transaction like
every notification. Each comes from the desk's plain address: it carries no reply token,
so a subscriber's answer proves nothing and joins nothing (a reply to a broadcast opens a
ticket of its own, maildesk.pipeline.broadcasts). All of an incident's mails to
subscribers answer one root Message-ID (In-Reply-To and References), which its first
broadcast mints, so each subscriber's mail client shows them as one thread; they are
marked `Auto-Submitted: auto-generated` and `Precedence: bulk`, which well-behaved
autoresponders do not answer.

Subscribers are not on the ticket: their templates get the incident's ref, subject,
status, type and priority, never the requester's side or the agents' (the other ticket
variables are there, but empty), and no message of the ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import SUPPRESSED_REASON, App
from maildesk.notify.context import context
from maildesk.notify.outbox import Notification, enqueue
from maildesk.store import repo
from maildesk.store.models import Message, Ticket

log = logging.getLogger(__name__)

# What of the ticket a subscriber may read; the rest of the `ticket` variable is empty.
PUBLIC = ("id", "ref", "subject", "status", "priority", "type", "impact", "urgency")


def public_ticket(full: dict[str, Any]) -> dict[str, Any]:
    """The `ticket` variable with everything but PUBLIC emptied (same keys, same types)."""
    return {k: v if k in PUBLIC else _empty(v) for k, v in full.items()}


def _empty(value: Any) -> Any:
    if isinstance(value, bool):
        return False
    return type(value)() if isinstance(value, list | dict | str) else None


def to_subscribers(
    app: App,
    session: Session,
    ticket: Ticket,
    addresses: Sequence[str],
    *,
    kind: str,
    template: str,
    root: str,
    broadcast: dict[str, Any],
    now: datetime,
) -> list[Message]:
    """Queue `template` (subscriber/broadcast or subscriber/all_clear) to each address."""
    if app.replay is not None and app.replay.historic:
        app.replay.suppressed[kind] += len(addresses)
        reason = f"{SUPPRESSED_REASON}; to {len(addresses)} subscribers"
        repo.add_event(
            session, ticket, "notification_suppressed", now, notification=kind, reason=reason
        )
        return []
    desk = app.config.desk
    ctx = context(app, ticket, None, broadcast=broadcast)
    ctx["ticket"] = public_ticket(ctx["ticket"])
    ref = app.ref(ticket.id)
    queued = []
    for address in addresses:
        recipient = {"email": address, "name": ""}
        rendered = app.templates.render(template, {**ctx, "recipient": recipient}, ticket.queue)
        note = Notification(
            kind=kind,
            to=[address],
            rendered=rendered,
            in_reply_to=root,
            references=[root],
            auto_submitted="auto-generated",
            precedence="bulk",
            internal=False,
            reply_to=desk.address,  # no token: a subscriber's reply is nobody's proof
        )
        queued.append(enqueue(session, ticket, note, ref=ref, desk=desk, now=now))
    log.info("%s: %s queued to %d subscribers", ref, kind, len(queued))
    return queued
