"""Stable JSON shapes of tickets, messages, outbox entries and quarantined messages.

These field names are a contract (SPEC): add fields freely, never rename or remove one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maildesk.ingest.parse import summarise
from maildesk.routing.rules import STRATEGIES, RoutingDecision
from maildesk.store.models import Message, OutboxEntry, RawMessage, Ticket


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def ticket_json(ticket: Ticket, prefix: str) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "ref": f"{prefix}-{ticket.id}",
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "queue": ticket.queue,
        "type": ticket.type,
        "category": ticket.category,
        "assignee": ticket.assignee,
        "requester": ticket.requester.email,
        "requester_name": ticket.requester.name,
        "tags": list(ticket.tags),
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "closed_at": iso(ticket.closed_at),
        "parent": f"{prefix}-{ticket.parent_id}" if ticket.parent_id else None,
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "kind": message.kind,
        "from": message.from_addr,
        "from_name": message.from_name,
        "to": list(message.to),
        "cc": list(message.cc),
        "subject": message.subject,
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to,
        "body_text": message.body_text,
        "has_html": bool(message.body_html),
        "internal": message.internal,
        "created_at": iso(message.created_at),
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
            }
            for a in message.attachments
        ],
    }


def ticket_detail_json(ticket: Ticket, prefix: str) -> dict[str, Any]:
    return {
        **ticket_json(ticket, prefix),
        "messages": [message_json(m) for m in ticket.messages],
        "events": [
            {"at": iso(e.at), "kind": e.kind, "actor": e.actor, "data": e.data}
            for e in ticket.events
        ],
    }


def outbox_json(entry: OutboxEntry, prefix: str) -> dict[str, Any]:
    return {
        "id": entry.id,
        "ticket": f"{prefix}-{entry.ticket_id}" if entry.ticket_id else None,
        "kind": entry.kind,
        "status": entry.status,
        "to": list(entry.recipients),
        "subject": entry.subject,
        "message_id": entry.message_id,
        "attempts": entry.attempts,
        "next_attempt_at": iso(entry.next_attempt_at) if entry.status == "queued" else None,
        "last_error": entry.last_error,
        "created_at": iso(entry.created_at),
        "sent_at": iso(entry.sent_at),
    }


def quarantine_json(raw: RawMessage) -> dict[str, Any]:
    """A set-aside message as `maildesk quarantine --json` shows it.

    From, Subject and Message-ID come from the header block alone, so a message whose body
    could not be parsed (the usual reason it is here) still says who sent it and what about.
    """
    summary = summarise(raw.raw) if raw.raw else None
    return {
        "id": raw.id,
        "status": raw.status,
        "received_at": iso(raw.received_at),
        "processed_at": iso(raw.processed_at),
        "origin": raw.origin,
        "size": raw.size,
        "sha256": raw.sha256,
        "envelope_from": raw.envelope_from,
        "envelope_to": list(raw.envelope_to),
        "from": (summary.from_addr or None) if summary else None,
        "subject": (summary.subject or None) if summary else None,
        "message_id": (summary.message_id or None) if summary else None,
        "reason": raw.reason,
    }


def decision_json(decision: RoutingDecision, assignee: str | None = None) -> dict[str, Any]:
    """A routing decision as the `routed` event and `route test --json` show it."""
    strategy = decision.assignee in STRATEGIES
    return {
        "matched": list(decision.matched),
        "queue": decision.queue,
        "priority": decision.priority,
        "impact": decision.impact,
        "urgency": decision.urgency,
        "type": decision.type,
        "category": decision.category,
        "assignee": assignee if strategy or assignee else decision.assignee,
        "assigned_by": decision.assignee if strategy else None,
        "tags": list(decision.tags),
        "acknowledge": decision.acknowledge,
        "dropped_by": decision.dropped_by,
    }
