"""Write notifications to the outbox inside the caller's transaction (transactional outbox).

Each notification is also recorded as an outbound message of its ticket, so a reply to it
threads by In-Reply-To even when the mail client drops the subject tag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.config import DeskConfig
from maildesk.mail.render import (
    Envelope,
    OutgoingAttachment,
    Rendered,
    compose,
    mint_message_id,
)
from maildesk.store.models import Message, OutboxEntry, Ticket
from maildesk.terms import OutboxStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One notification to enqueue: who gets it, what it answers, how it is marked."""

    kind: str  # e.g. "acknowledgement", "agent_new_ticket", "relay"
    to: Sequence[str]
    cc: Sequence[str] = ()
    rendered: Rendered
    in_reply_to: str | None  # the Message-ID answered
    references: Sequence[str] = ()  # the References chain, oldest first, ending in_reply_to
    auto_submitted: str | None
    internal: bool
    reply_to: str
    from_name: str | None = None  # default: the desk's name
    attachments: Sequence[OutgoingAttachment] = ()
    precedence: str | None = None  # "bulk" for mail to subscribers


def enqueue(
    session: Session,
    ticket: Ticket,
    note: Notification,
    *,
    ref: str,
    desk: DeskConfig,
    now: datetime,
) -> Message:
    """Record the outbound message and its outbox entry; the caller's commit sends both."""
    message_id = mint_message_id(desk.domain, ref)
    subject = _tagged_subject(note.rendered.subject, ref)
    from_name = note.from_name or desk.name
    envelope = _envelope(
        note, desk, ref=ref, message_id=message_id, subject=subject, from_name=from_name, now=now
    )
    raw = compose(envelope, note.rendered, note.attachments)
    message = Message(
        ticket_id=ticket.id,
        direction="out",
        kind=note.kind,
        message_id=message_id,
        in_reply_to=note.in_reply_to,
        from_addr=desk.address,
        from_name=from_name,
        to=list(note.to),
        cc=list(note.cc),
        subject=subject,
        body_text=note.rendered.text,
        body_html=note.rendered.html or "",
        internal=note.internal,
        created_at=now,
    )
    session.add(message)
    recipients = list(dict.fromkeys([*note.to, *note.cc]))
    entry = _outbox_entry(
        ticket,
        note,
        desk,
        message_id=message_id,
        subject=subject,
        recipients=recipients,
        raw=raw,
        now=now,
    )
    session.add(entry)
    log.info("queued %s %s for %s to %s", note.kind, message_id, ref, ", ".join(recipients))
    return message


def _tagged_subject(subject: str, ref: str) -> str:
    """The subject with the ticket's [REF] tag in front, unless it carries it already."""
    if f"[{ref}]".lower() not in subject.lower():
        subject = f"[{ref}] {subject}"
    return subject


def _envelope(
    note: Notification,
    desk: DeskConfig,
    *,
    ref: str,
    message_id: str,
    subject: str,
    from_name: str,
    now: datetime,
) -> Envelope:
    """The headers of the outgoing mail: from the desk, answering what the note answers."""
    return Envelope(
        from_name=from_name,
        from_addr=desk.address,
        to=list(note.to),
        cc=list(note.cc),
        subject=subject,
        message_id=message_id,
        date=now,
        in_reply_to=note.in_reply_to,
        references=list(note.references)[-20:],
        reply_to=note.reply_to,
        auto_submitted=note.auto_submitted,
        precedence=note.precedence,
        loop_marker=desk.address,
        ticket_ref=ref,
    )


def _outbox_entry(
    ticket: Ticket,
    note: Notification,
    desk: DeskConfig,
    *,
    message_id: str,
    subject: str,
    recipients: list[str],
    raw: bytes,
    now: datetime,
) -> OutboxEntry:
    """The queued outbox entry that sends the composed mail, due at once."""
    return OutboxEntry(
        ticket_id=ticket.id,
        kind=note.kind,
        message_id=message_id,
        sender=desk.address,
        recipients=recipients,
        subject=subject,
        raw=raw,
        status=OutboxStatus.QUEUED,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


def enqueue_unthreaded(
    session: Session,
    desk: DeskConfig,
    kind: str,
    address: str,
    rendered: Rendered,
    now: datetime,
) -> str:
    """Queue an automatic answer that belongs to no ticket (the catalog, a status list) to
    one address; its Message-ID. Marked auto-replied and with the desk's loop marker."""
    message_id = mint_message_id(desk.domain, kind)
    envelope = Envelope(
        from_name=desk.name,
        from_addr=desk.address,
        to=[address],
        subject=rendered.subject,
        message_id=message_id,
        date=now,
        reply_to=desk.address,
        auto_submitted="auto-replied",
        loop_marker=desk.address,
    )
    session.add(
        OutboxEntry(
            ticket_id=None,
            kind=kind,
            message_id=message_id,
            sender=desk.address,
            recipients=[address],
            subject=rendered.subject,
            raw=compose(envelope, rendered),
            status=OutboxStatus.QUEUED,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return message_id
