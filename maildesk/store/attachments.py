"""A ticket's stored files, numbered as `maildesk ticket attachments` shows them: in the
order they arrived (by message, then by place in the message), from 1."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.store.models import Attachment, Message


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    """One stored attachment of a ticket, without its content."""

    number: int  # the ticket-wide number `ticket attachments` shows and `save` takes
    id: int  # the attachment row
    filename: str
    content_type: str
    size: int
    content_id: str | None
    message_id: str  # the Message-ID of the mail that carried it
    message_row: int
    direction: str  # "in" or "out"
    internal: bool


def ticket_files(session: Session, ticket_id: int) -> list[StoredFile]:
    """Every file stored on the ticket's messages, numbered, contents not loaded."""
    stmt = (
        select(
            Attachment.id,
            Attachment.filename,
            Attachment.content_type,
            Attachment.size,
            Attachment.content_id,
            Message.message_id,
            Message.id,
            Message.direction,
            Message.internal,
        )
        .join(Message, Attachment.message_id == Message.id)
        .where(Message.ticket_id == ticket_id)
        .order_by(Message.id, Attachment.id)
    )
    return [
        StoredFile(
            number=number,
            id=row[0],
            filename=row[1],
            content_type=row[2],
            size=row[3],
            content_id=row[4],
            message_id=row[5],
            message_row=row[6],
            direction=row[7],
            internal=bool(row[8]),
        )
        for number, row in enumerate(session.execute(stmt).all(), start=1)
    ]


def file_content(session: Session, attachment_id: int) -> bytes | None:
    """The stored bytes of one attachment, or None if there is no such row."""
    return session.scalar(select(Attachment.content).where(Attachment.id == attachment_id))


def message_html(session: Session, message_rows: set[int]) -> dict[int, str]:
    """The HTML bodies of these messages (by row id), to tell which images they show."""
    if not message_rows:
        return {}
    stmt = select(Message.id, Message.body_html).where(Message.id.in_(message_rows))
    return {row[0]: row[1] or "" for row in session.execute(stmt).all()}
