"""The inbound mail as it is kept on a ticket: its message row and its message event."""

from __future__ import annotations

from maildesk.pipeline.context import Context
from maildesk.store import repo
from maildesk.store.blobs import new_attachment
from maildesk.store.models import Message, Ticket


def store_message(
    ctx: Context,
    ticket: Ticket,
    *,
    kind: str = "mail",
    internal: bool = False,
    text: str | None = None,
) -> Message:
    """Store an inbound message; `text` is its new text when it is a reply (else the body)."""
    msg, raw = ctx.msg, ctx.raw
    message = Message(
        ticket_id=ticket.id,
        raw_id=raw.id,
        direction="in",
        kind=kind,
        message_id=msg.message_id,
        in_reply_to=msg.in_reply_to[0] if msg.in_reply_to else None,
        from_addr=msg.from_addr or (raw.envelope_from or ""),
        from_name=msg.from_name,
        to=list(msg.to),
        cc=list(msg.cc),
        subject=msg.subject,
        body_text=msg.body_text if text is None else text,
        body_html=msg.body_html,
        internal=internal,
        created_at=ctx.now,
    )
    message.attachments = [
        new_attachment(
            ctx.session,
            a.content,
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            content_id=a.content_id,
        )
        for a in msg.attachments
    ]
    ctx.session.add(message)
    return message


def message_event(ctx: Context, ticket: Ticket, sender: str, **extra: str) -> None:
    """The event of a message on an existing ticket: who, how it threaded, as whom."""
    match = ctx.on.match
    repo.add_event(
        ctx.session,
        ticket,
        "message",
        ctx.now,
        actor=ctx.msg.from_addr,
        message_id=ctx.msg.message_id,
        threaded_by=match.via,
        detail=match.detail,
        sender=sender,
        **extra,
    )
