"""Stable JSON shapes of a ticket, its messages and its SLA standing, as `maildesk tickets`,
`ticket show --json`, `sla --json` and the HTTP API give them.

These field names are a contract (SPEC): add fields freely, never rename or remove one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from maildesk.store.approvals import approvals_json, ticket_approvals
from maildesk.store.cis import ticket_services
from maildesk.store.listing import next_due
from maildesk.store.models import AlertState, Event, Message, Ticket
from maildesk.store.problems import related, ticket_alert
from maildesk.store.tickets import links, ticket_with_history, watchers
from maildesk.timefmt import iso


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
        "resolved_at": iso(ticket.resolved_at),
        "parent": f"{prefix}-{ticket.parent_id}" if ticket.parent_id else None,
        "merged_into": f"{prefix}-{ticket.merged_into_id}" if ticket.merged_into_id else None,
        "sla_policy": ticket.sla_policy,
        "first_response_due": iso(ticket.sla_response_due),
        "resolution_due": iso(ticket.sla_resolution_due),
        "first_response_at": iso(ticket.first_response_at),
        "sla_due": iso(next_due(ticket)),
        "impact": ticket.impact,
        "urgency": ticket.urgency,
        "organisation": ticket.organisation,
        "change_window": change_window(ticket),
        "service": ticket.service,
        "cis": sorted(link.ci for link in ticket.ci_links),
        "services": sorted(ticket_services(ticket)),
    }


def change_window(ticket: Ticket) -> dict[str, str | None] | None:
    """A change's scheduled window (`start`, `end` in ISO 8601), or None."""
    if ticket.change_start is None or ticket.change_end is None:
        return None
    return {"start": iso(ticket.change_start), "end": iso(ticket.change_end)}


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


def ticket_detail_json(
    ticket: Ticket,
    prefix: str,
    *,
    watchers: Sequence[str] = (),
    links: Sequence[tuple[int, str]] = (),
    problems: Mapping[str, Any] | None = None,
    approvals: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """`ticket show --json`; `problems`: its problem, incidents, known_error and alert."""
    return {
        **ticket_json(ticket, prefix),
        "watchers": list(watchers),
        "links": [{"ticket": f"{prefix}-{other}", "relation": rel} for other, rel in links],
        "problem": None,
        "incidents": [],
        "known_error": ticket.known_error,
        "alert": None,
        "csat": csat_json(ticket.events),
        "catalog_item": ticket.catalog_item,
        "fields": dict(ticket.fields or {}),
        "approvals": [dict(a) for a in approvals],
        **(problems or {}),
        "kb_suggested": kb_suggested(ticket),
        "messages": [message_json(m) for m in ticket.messages],
        "events": [
            {"at": iso(e.at), "kind": e.kind, "actor": e.actor, "via": e.via, "data": e.data}
            for e in ticket.events
        ],
    }


def csat_json(events: Sequence[Event]) -> dict[str, Any] | None:
    """The requester's survey answer: score ("good", "bad" or 1-5), comment, at; or None."""
    answer = next((e for e in reversed(events) if e.kind == "survey_answered"), None)
    if answer is None:
        return None
    data = answer.data or {}
    return {"score": data.get("score"), "comment": data.get("comment") or "", "at": iso(answer.at)}


def kb_suggested(ticket: Ticket) -> list[str]:
    """The knowledge-base articles the acknowledgement suggested (slugs, in order)."""
    slugs = (s for e in ticket.events if e.kind == "kb_suggested" for s in e.data.get("slugs", []))
    return list(dict.fromkeys(slugs))


def ticket_detail(session: Session, ticket_id: int, prefix: str) -> dict[str, Any] | None:
    """A ticket with its watchers, links, messages and events (`ticket show --json`)."""
    ticket = ticket_with_history(session, ticket_id)
    if ticket is None:
        return None
    return ticket_detail_json(
        ticket,
        prefix,
        watchers=watchers(session, ticket.id),
        links=links(session, ticket.id),
        problems=problem_keys(session, ticket, prefix),
        approvals=approvals_json(ticket_approvals(session, ticket.id)),
    )


def problem_keys(session: Session, ticket: Ticket, prefix: str) -> dict[str, Any]:
    """The ticket's problem (ref or None), its incidents (refs, on a problem), the known
    error (its own, or its problem's) and the alert behind it (or None)."""
    problems = related(session, ticket.id, "problem")
    incidents = related(session, ticket.id, "incident")
    known = ticket.known_error or next((p.known_error for p in problems if p.known_error), None)
    return {
        "problem": f"{prefix}-{problems[0].id}" if problems else None,
        "incidents": [f"{prefix}-{i.id}" for i in incidents],
        "known_error": known,
        "alert": alert_json(ticket_alert(session, ticket.id)),
    }


def alert_json(alert: AlertState | None) -> dict[str, Any] | None:
    """An incident's alert as templates and `--json` show it."""
    if alert is None:
        return None
    return {
        "monitor": alert.monitor,
        "key": alert.key,
        "state": alert.state,
        "severity": alert.severity,
        "count": alert.count,
        "first_at": iso(alert.first_at),
        "last_at": iso(alert.last_at),
    }


def sla_json(ticket: Ticket, prefix: str, *, state: str, consumed: float) -> dict[str, Any]:
    """A ticket's SLA standing, as `maildesk sla --json` lists it."""
    return {
        "id": ticket.id,
        "ref": f"{prefix}-{ticket.id}",
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "queue": ticket.queue,
        "assignee": ticket.assignee,
        "policy": ticket.sla_policy,
        "state": state,
        "consumed_seconds": round(consumed),
        "first_response_due": iso(ticket.sla_response_due),
        "resolution_due": iso(ticket.sla_resolution_due),
        "first_response_at": iso(ticket.first_response_at),
        "first_response_warned_at": iso(ticket.sla_response_warned_at),
        "first_response_breached_at": iso(ticket.sla_response_breached_at),
        "resolution_warned_at": iso(ticket.sla_resolution_warned_at),
        "resolution_breached_at": iso(ticket.sla_resolution_breached_at),
    }
