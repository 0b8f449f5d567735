"""The sample context every template is rendered with when the config is loaded, so a
template that uses a variable it does not get (or breaks) is a config error, not a failed
notification later."""

from __future__ import annotations

from typing import Any

from maildesk.config import Config
from maildesk.terms import Status


def sample_context(config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The context every template gets, with every documented field, and the extra
    variables some templates get (render.EXTRAS says which); for checking at load time."""
    desk = {
        "name": config.desk.name,
        "address": config.desk.address,
        "reopen_days": config.desk.reopen_window.days,
    }
    message = {
        "subject": "Printer on fire",
        "from": "requester@example.org",
        "from_name": "Requester",
        "body_text": "It is burning.",
        "body_omitted": 2500,  # as in a notice quoting part of a long message
        "attachments": [
            {
                "filename": "photo.jpg",
                "content_type": "image/jpeg",
                "size": 1,
                # the keys agent notices add (maildesk.notify.files)
                "size_text": "1 bytes",
                "number": 1,
                "attached": False,
                "inline": False,
                "save": "maildesk ticket attachment save MD-1 1",
            }
        ],
    }
    recipient = {"email": "requester@example.org", "name": "Requester"}
    context = {
        "desk": desk,
        "ticket": _sample_ticket(config),
        "message": message,
        "recipient": recipient,
    }
    return context, _sample_extras(config)


def _sample_ticket(config: Config) -> dict[str, Any]:
    """A sample ticket with every field a template may use."""
    return {
        "id": 42,
        "ref": f"{config.desk.ref_prefix}-42",
        "subject": "Printer on fire",
        "status": Status.NEW,
        "priority": "P3",
        "queue": config.default_queue.name,
        "type": "incident",
        "category": None,
        "assignee": None,
        "tags": ["sample"],
        "requester": "requester@example.org",
        "requester_name": "Requester",
        "organisation": "Example Corp",
        "vip": True,
        "impact": "high",
        "urgency": "medium",
        "watchers": ["watcher@example.org"],
        "matched_rules": ["sample rule"],
        "reply_address": config.desk.address,
        "status_url": "http://127.0.0.1:8025/status/42-0123456789abcdef0123456789abcdef",
        "sla_policy": "standard",
        "response_due": "2026-11-23T10:00:00Z",
        "resolution_due": "2026-11-25T17:00:00Z",
        "problem": f"{config.desk.ref_prefix}-7",
        "known_error": "Restart the print spooler",
        "alert": {
            "monitor": "nagios",
            "key": "web1/HTTP",
            "state": "problem",
            "severity": "CRITICAL",
            "count": 3,
            "first_at": "2026-11-23T09:00:00Z",
            "last_at": "2026-11-23T09:10:00Z",
        },
        "catalog_item": "new-laptop",
        "fields": [{"name": "user", "label": "For whom", "value": "dana@example.org"}],
    }


def _sample_extras(config: Config) -> dict[str, Any]:
    """Variables only some templates get (docs/templates.md says which)."""
    return {
        "agent": {"name": "Agent"},
        "flags": ["From claims agent agent@example.com, but it has no proof"],
        "errors": ['line 1 "#priority P9": priority must be one of P1, P2, P3, P4'],
        "commands": ["#priority P9"],
        "changes": ["priority: P3 -> P2"],
        "assigned_by": "agent@example.com",
        "noted_by": "Agent <agent@example.com>",
        "merged_into": {"ref": f"{config.desk.ref_prefix}-7", "subject": "Printers"},
        "why": "no answer from the requester",
        "resolve_after": 2,
        "tickets": [_status_line(config, "open", None)],
        "resolved": [_status_line(config, "resolved", "2026-11-20T09:00:00Z")],
        "csat": {"score": "bad", "comment": "took a week", "at": "2026-11-25T17:00:00Z"},
        "broadcast": {
            "text": "Mail is down since 09:10; next update at 10:00.",
            "services": ["email", "network"],
        },
        "change": {
            "start": "2026-12-05T21:00:00Z",
            "end": "2026-12-05T22:30:00Z",
            "start_local": "Sat 5 Dec 22:00",
            "end_local": "Sat 5 Dec 23:30",
            "timezone": config.desk.timezone,
            "assignee": "agent@example.com",
        },
        "problem": {
            "ref": f"{config.desk.ref_prefix}-7",
            "subject": "Print spooler crashes",
            "known_error": "Restart the print spooler",
            "resolution": "The spooler was patched.",
            "incidents": [f"{config.desk.ref_prefix}-42"],
        },
        "sla": {
            "kind": "breach",
            "target": "resolution",
            "target_name": "resolution",
            "policy": "standard",
            "priority": "P2",
            "limit": "16h00m",
            "consumed": "16h05m",
            "crossed_at": "2026-11-25T17:00:00+00:00",
            "escalated_to": ["lead@example.com"],
        },
        **_catalog_extras(),
    }


def _catalog_extras() -> dict[str, Any]:
    """What the service-catalog mails get (maildesk.notify.approval_notices)."""
    item = {
        "name": "new-laptop",
        "title": "New laptop",
        "description": "A laptop for a new or existing employee.",
        "type": "request",
        "queue": "it",
        "fields": [
            {"name": "user", "label": "For whom", "required": True, "choices": [], "kind": "text"}
        ],
        "needs_approval": True,
        "approvals_required": 1,
        "example_subject": "Request: New laptop",
        "example_body": "For whom: ...",
    }
    return {
        "items": [item],
        "item": item,
        "missing": [{"name": "user", "label": "For whom", "problem": "missing", "example": "..."}],
        "approval": {"approver": "carol@example.com", "required": 1, "of": 2, "timeout_hours": 72},
        "reason": "not in this year's budget",
    }


def _status_line(config: Config, status: str, resolved_at: str | None) -> dict[str, Any]:
    """A ticket as a status list shows it (maildesk.notify.selfservice)."""
    return {
        "ref": f"{config.desk.ref_prefix}-42",
        "subject": "Printer on fire",
        "status": status,
        "assignee_name": "Agent",
        "updated_at": "2026-11-23T09:00:00Z",
        "resolved_at": resolved_at,
        "next_due": "2026-11-25T17:00:00Z",
    }
