"""Raw messages: every accepted message byte for byte (RawMessage), its bytes in a row of
their own (RawBody)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, select
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from maildesk.store.base import Base, Id, UtcDateTime

if TYPE_CHECKING:
    from maildesk.store.models import Ticket


class RawMessage(Base):
    """Every accepted message, stored byte for byte before anything else happens to it."""

    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    origin: Mapped[str] = mapped_column(String(32))  # smtp, deliver, import, imap
    envelope_from: Mapped[str | None] = mapped_column(String(512))
    envelope_to: Mapped[list[Any]] = mapped_column(default=list)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # The bytes live in raw_bodies, so that a change of status never rewrites them (SQLite
    # writes a whole row again for any change, a 30 MB message included).
    body: Mapped[RawBody | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    # pending -> processed | duplicate | ignored | quarantined
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # Set to a ticket not yet inserted, the flush that inserts it writes ticket_id with
    # the row's other changes (its claim): one UPDATE, not two. Never read.
    ticket: Mapped[Ticket | None] = relationship(lazy="raise")
    # Several daemons: who claimed this pending message, until when (raw.claim_pending).
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The spool row it was taken from (store/spool.py), for mail accepted through the spool.
    spool_key: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        Index("ix_raw_messages_status", "status", "id"),
        Index("ux_raw_messages_spool_key", "spool_key", unique=True),
    )

    @hybrid_property
    def raw(self) -> bytes:
        """The message as received, byte for byte (b"" once dropped)."""
        return self.body.raw if self.body is not None else b""

    @raw.inplace.setter
    def _raw_setter(self, value: Any) -> None:
        if self.body is None:
            self.body = RawBody(raw=value)
        else:
            self.body.raw = value

    @raw.inplace.expression
    @classmethod
    def _raw_expression(cls) -> Any:
        # A subquery on the raw message's row: a select of RawMessage.raw alone must name
        # the table (`.select_from(RawMessage)`, or another RawMessage column or condition).
        return select(RawBody.raw).where(RawBody.raw_id == cls.id).scalar_subquery()


class RawBody(Base):
    """The bytes of a raw message (RawMessage.raw), in a row of their own."""

    __tablename__ = "raw_bodies"

    raw_id: Mapped[int] = mapped_column(
        Id, ForeignKey("raw_messages.id", ondelete="CASCADE"), primary_key=True
    )
    raw: Mapped[bytes] = mapped_column(LargeBinary)
