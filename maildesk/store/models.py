"""SQLAlchemy 2 typed models. The schema itself is owned by the Alembic migrations.

The base types are maildesk.store.base; the raw messages maildesk.store.raw_models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from maildesk.store.base import Base as Base
from maildesk.store.base import Id as Id
from maildesk.store.base import UtcDateTime as UtcDateTime
from maildesk.store.raw_models import RawBody as RawBody
from maildesk.store.raw_models import RawMessage as RawMessage


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Set by a hard bounce of our mail to this address; cleared when mail comes from it.
    bounced_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    bounce_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # Set when this address was merged into another contact: mail from it is that
    # contact's (same requester), and its tickets moved there.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id"), nullable=True, index=True
    )
    merged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    merged_by: Mapped[str | None] = mapped_column(String(320), nullable=True)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), index=True)
    priority: Mapped[str] = mapped_column(String(8))
    queue: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(128))
    assignee: Mapped[str | None] = mapped_column(String(320))
    requester_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    # ITIL impact and urgency (high, medium, low; None: not known, counted as medium); the
    # priority follows them through [priority_matrix] whenever one of them changes.
    impact: Mapped[str | None] = mapped_column(String(8))
    urgency: Mapped[str | None] = mapped_column(String(8))
    organisation: Mapped[str | None] = mapped_column(String(128))  # the requester's, at routing
    reply_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # Set when the ticket was merged (status "merged"): its mail now threads into that one.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The SLA clock (maildesk.sla.clock.SlaState): enough to recompute every due time.
    sla_policy: Mapped[str | None] = mapped_column(String(128))
    sla_consumed_us: Mapped[int] = mapped_column(BigInteger, default=0)  # working time, µs
    sla_running_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sla_response_warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sla_response_breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sla_resolution_warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sla_resolution_breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Computed from the clock, for display and for the scheduler's selection.
    sla_response_due: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sla_resolution_due: Mapped[datetime | None] = mapped_column(UtcDateTime())
    sla_next_check: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    # A problem's known error: the workaround agents see on its newly linked incidents.
    known_error: Mapped[str | None] = mapped_column(Text)
    # A change's scheduled window (maildesk.tickets.changes); both or neither.
    change_start: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    change_end: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # A catalog request: its [[catalog]] item and the fields the requester filled in.
    catalog_item: Mapped[str | None] = mapped_column(String(128))
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    service: Mapped[str | None] = mapped_column(String(128))  # the service a rule set

    requester: Mapped[Contact] = relationship(lazy="joined", foreign_keys=[requester_id])
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="ticket", order_by="Event.id", cascade="all, delete-orphan"
    )
    ci_links: Mapped[list[TicketCi]] = relationship(
        order_by="TicketCi.id", cascade="all, delete-orphan"
    )


class Message(Base):
    """One message of a ticket: inbound (from a raw message) or outbound (minted by us)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in, out
    kind: Mapped[str] = mapped_column(String(32), default="mail")  # mail, acknowledgement, ...
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    from_addr: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(256), default="")
    to: Mapped[list[Any]] = mapped_column(default=list)
    cc: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_messages_ticket", "ticket_id", "id"),)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str | None] = mapped_column(String(998))
    content: Mapped[bytes] = mapped_column(LargeBinary)

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """The audit log: everything that happened to a ticket, and why."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320), default="system")
    via: Mapped[str] = mapped_column(String(16), default="mail")  # mail, cli, scheduler
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")

    __table_args__ = (Index("ix_events_ticket", "ticket_id", "id"),)


class OutboxEntry(Base):
    """A rendered notification waiting to be delivered, written with the ticket change."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # queued -> sent | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class Watcher(Base):
    """Someone who gets a ticket's public replies besides the requester (a CC, say)."""

    __tablename__ = "watchers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    added_at: Mapped[datetime] = mapped_column(UtcDateTime())
    added_by: Mapped[str] = mapped_column(String(320))

    __table_args__ = (UniqueConstraint("ticket_id", "email", name="uq_watchers_ticket_email"),)


class TicketLink(Base):
    """`linked_id` is this ticket's `relation`: problem, incident or related (one row a side)."""

    __tablename__ = "ticket_links"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    linked_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    relation: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("ticket_id", "linked_id", name="uq_ticket_links_pair"),)


class TicketCi(Base):
    """A configuration item a ticket is about, and the CI's services when it was linked
    (so a ticket's past does not move when the inventory is edited)."""

    __tablename__ = "ticket_cis"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    ci: Mapped[str] = mapped_column(String(255))
    services: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(16))  # recognised, agent, alert, request
    added_at: Mapped[datetime] = mapped_column(UtcDateTime())
    added_by: Mapped[str] = mapped_column(String(320))

    __table_args__ = (
        UniqueConstraint("ticket_id", "ci", name="uq_ticket_cis_ticket_ci"),
        Index("ix_ticket_cis_ci", "ci"),
    )


class AlertState(Base):
    """A monitor's alert (monitor + key) and the incident it opened: one open row per key."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    monitor: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(1000))
    state: Mapped[str] = mapped_column(String(16))  # problem, recovery, acknowledgement
    severity: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)  # problem alerts received for the incident
    first_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_at: Mapped[datetime] = mapped_column(UtcDateTime())
    is_open: Mapped[bool] = mapped_column(Boolean)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    changes: Mapped[list[Any]] = mapped_column(default=list)  # ISO times of state changes

    __table_args__ = (
        Index("ix_alerts_ticket", "ticket_id"),
        Index("ix_alerts_key", "monitor", "key"),
        Index(
            "uq_alerts_open_key",
            "monitor",
            "key",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )


class Approval(Base):
    """One approver's answer to a catalog request: pending until they decide or it expires."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    approver: Mapped[str] = mapped_column(String(320))
    decision: Mapped[str] = mapped_column(String(16))  # pending approved rejected expired
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # when decided
    comment: Mapped[str | None] = mapped_column(Text)
    via: Mapped[str | None] = mapped_column(String(255))  # the proof: token, auth, cli
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("ticket_id", "approver", name="uq_approvals_ticket_approver"),
        Index("ix_approvals_decision", "decision"),
    )


class Setting(Base):
    """Desk-wide values maildesk keeps itself, e.g. the generated reply-token secret."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ImapCheckpoint(Base):
    """How far a mailbox has been read: UIDs up to last_uid (under uidvalidity) are stored."""

    __tablename__ = "imap_checkpoints"

    mailbox: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Lease(Base):
    """Something one daemon of several does at a time (store/leases.py): an IMAP mailbox
    ("mailbox:NAME"), a firing of a scheduled job ("job:NAME"). Held until expires_at."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))  # the daemon: HOST:PID
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LearnedModel(Base):
    """A trained routing model (maildesk.learn): one version of one label, signed by the desk."""

    __tablename__ = "learned_models"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    label: Mapped[str] = mapped_column(String(16))  # queue, category, type
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per label
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 of blob under the desk secret

    __table_args__ = (UniqueConstraint("label", "version", name="uq_learned_models_version"),)
