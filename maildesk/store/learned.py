"""Learned routing (maildesk.learn): the versioned models, the examples they learn from, and
the suggestions agents later corrected (read from the events, no state of its own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maildesk.store.models import Event, LearnedModel, Message, Ticket
from maildesk.terms import Status

TRAINED_ON = (Status.RESOLVED, Status.CLOSED)
CHANGE_EVENTS = ("queue", "category", "type")


@dataclass(frozen=True)
class Example:
    """One resolved or closed ticket: its text and the final value of each label."""

    ticket_id: int
    subject: str
    body: str
    queue: str
    category: str | None
    type: str
    created_at: datetime


@dataclass(frozen=True)
class StoredModel:
    label: str
    version: int
    created_at: datetime
    metrics: dict[str, Any]
    blob: bytes
    digest: str


def training_examples(session: Session, since: datetime | None = None) -> list[Example]:
    """Resolved and closed tickets (created since `since`) with their first inbound message."""
    first = (
        select(Message.ticket_id, func.min(Message.id).label("first_id"))
        .where(Message.direction == "in")
        .group_by(Message.ticket_id)
        .subquery()
    )
    stmt = (
        select(Ticket.id, Ticket.subject, Message.body_text, Ticket.queue, Ticket.category)
        .add_columns(Ticket.type, Ticket.created_at)
        .join(first, first.c.ticket_id == Ticket.id)
        .join(Message, Message.id == first.c.first_id)
        .where(Ticket.status.in_([s.value for s in TRAINED_ON]))
        .order_by(Ticket.id)
    )
    if since is not None:
        stmt = stmt.where(Ticket.created_at >= since)
    return [Example(*row) for row in session.execute(stmt)]


def save_model(
    session: Session,
    label: str,
    blob: bytes,
    digest: str,
    metrics: dict[str, Any],
    now: datetime,
) -> int:
    """Store a new version of the label's model; return its version number."""
    newest = session.scalar(
        select(func.max(LearnedModel.version)).where(LearnedModel.label == label)
    )
    version = (newest or 0) + 1
    session.add(
        LearnedModel(
            label=label, version=version, created_at=now, metrics=metrics, blob=blob, digest=digest
        )
    )
    session.flush()
    return version


def model_versions(session: Session) -> dict[str, int]:
    """The newest version of each label's model (one small query: daemons poll it)."""
    stmt = select(LearnedModel.label, func.max(LearnedModel.version)).group_by(LearnedModel.label)
    return {label: int(version) for label, version in session.execute(stmt)}


def stored_model(session: Session, label: str, version: int | None = None) -> StoredModel | None:
    """One version of a label's model (default: the newest), or None."""
    stmt = select(LearnedModel).where(LearnedModel.label == label)
    if version is not None:
        stmt = stmt.where(LearnedModel.version == version)
    row = session.scalars(stmt.order_by(LearnedModel.version.desc()).limit(1)).first()
    if row is None:
        return None
    return StoredModel(
        row.label, row.version, row.created_at, dict(row.metrics), bytes(row.blob), row.digest
    )


def list_models(session: Session) -> list[dict[str, Any]]:
    """Every stored model, newest first, without its bytes."""
    stmt = select(
        LearnedModel.label, LearnedModel.version, LearnedModel.created_at, LearnedModel.metrics
    ).order_by(LearnedModel.created_at.desc(), LearnedModel.id.desc())
    return [
        {"label": label, "version": version, "created_at": at, "metrics": metrics}
        for label, version, at, metrics in session.execute(stmt)
    ]


def routed_with_suggestions(session: Session) -> list[tuple[int, datetime, dict[str, Any]]]:
    """(ticket, when, data) of every `routed` event that carries suggestions."""
    stmt = select(Event.ticket_id, Event.at, Event.data).where(Event.kind == "routed")
    return [
        (ticket_id, at, dict(data))
        for ticket_id, at, data in session.execute(stmt.order_by(Event.id))
        if data.get("suggestions")
    ]


def label_changes(
    session: Session, ticket_ids: Sequence[int]
) -> dict[int, list[tuple[str, str, Any]]]:
    """Per ticket, its later queue/category/type changes as (label, actor, new value)."""
    found: dict[int, list[tuple[str, str, Any]]] = {}
    ids = list(ticket_ids)
    for start in range(0, len(ids), 500):  # bounded IN lists
        stmt = (
            select(Event.ticket_id, Event.kind, Event.actor, Event.data)
            .where(Event.kind.in_(CHANGE_EVENTS), Event.ticket_id.in_(ids[start : start + 500]))
            .order_by(Event.id)
        )
        for ticket_id, kind, actor, data in session.execute(stmt):
            found.setdefault(ticket_id, []).append((kind, actor, data.get("to")))
    return found


def routed_suggestions(session: Session, ticket_id: int) -> list[Any]:
    """The suggestions the ticket's `routed` event recorded (empty if none)."""
    stmt = (
        select(Event.data)
        .where(Event.ticket_id == ticket_id, Event.kind == "routed")
        .order_by(Event.id.desc())
        .limit(1)
    )
    data = session.scalar(stmt)
    return list(data.get("suggestions", [])) if data else []
