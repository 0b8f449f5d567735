"""Write notifications to the outbox inside the caller's transaction (transactional outbox).

Each notification is also recorded as an outbound message of its ticket, so a reply to it
threads by In-Reply-To even when the mail client drops the subject tag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.notify.render import Envelope, Rendered, compose, mint_message_id
from maildesk.store.models import Message, OutboxEntry, Ticket

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One notification to enqueue: who gets it, what it answers, how it is marked."""

    kind: str  # e.g. "acknowledgement", "agent_new_ticket"
    to: Sequence[str]
    rendered: Rendered
    in_reply_to: Message | None
    parent_references: Sequence[str] = ()  # the References of the message answered
    auto_submitted: str | None
    internal: bool


def enqueue(
    session: Session,
    ticket: Ticket,
    note: Notification,
    *,
    ref: str,
    desk: Any,
    reply_to: str,
    now: datetime,
) -> OutboxEntry:
    """Record the outbound message and its outbox entry; the caller's commit sends both."""
    message_id = mint_message_id(desk.domain, ref)
    parent = note.in_reply_to
    references: list[str] = []
    if parent is not None:
        references = [*note.parent_references, parent.message_id]
    subject = note.rendered.subject
    if f"[{ref}]".lower() not in subject.lower():
        subject = f"[{ref}] {subject}"
    raw = compose(
        Envelope(
            from_name=desk.name,
            from_addr=desk.address,
            to=list(note.to),
            subject=subject,
            message_id=message_id,
            date=now,
            in_reply_to=parent.message_id if parent is not None else None,
            references=references[-20:],
            reply_to=reply_to,
            auto_submitted=note.auto_submitted,
            loop_marker=desk.address,
            ticket_ref=ref,
        ),
        note.rendered,
    )
    session.add(
        Message(
            ticket_id=ticket.id,
            direction="out",
            kind=note.kind,
            message_id=message_id,
            in_reply_to=parent.message_id if parent is not None else None,
            from_addr=desk.address,
            from_name=desk.name,
            to=list(note.to),
            cc=[],
            subject=subject,
            body_text=note.rendered.text,
            body_html=note.rendered.html or "",
            internal=note.internal,
            created_at=now,
        )
    )
    entry = OutboxEntry(
        ticket_id=ticket.id,
        kind=note.kind,
        message_id=message_id,
        sender=desk.address,
        recipients=list(note.to),
        subject=subject,
        raw=raw,
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(entry)
    log.info("queued %s %s for %s to %s", note.kind, message_id, ref, ", ".join(note.to))
    return entry
