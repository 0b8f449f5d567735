"""Service-catalog mail: the catalog itself (to the asking address alone, on no ticket), what
a request still lacks, the approval request and its reminder to each approver (Reply-To with
that approver's own token), and the requester's news of approval, rejection or expiry.
Queued in the caller's transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.notify.context import context
from maildesk.notify.notices import send, to_requester
from maildesk.notify.outbox import enqueue_unthreaded
from maildesk.notify.recipients import Recipient
from maildesk.routing.catalog import CatalogItem
from maildesk.store import repo
from maildesk.store.models import Ticket

log = logging.getLogger(__name__)

CATALOG_KIND = "catalog_list"
HOUR = timedelta(hours=1)


def item_json(item: CatalogItem) -> dict[str, Any]:
    """An item as templates and `maildesk catalog --json` show it, with an example request."""
    fields = [
        {
            "name": f.name,
            "label": f.label,
            "required": f.required,
            "choices": list(f.choices),
            "kind": f.kind,
        }
        for f in item.fields
    ]
    example = "\n".join(f"{f.label}: {_example(f.kind, f.choices)}" for f in item.fields)
    return {
        "name": item.name,
        "title": item.title,
        "description": item.description,
        "type": item.type,
        "queue": item.queue,
        "fields": fields,
        "needs_approval": item.needs_approval,
        "approvals_required": item.approvals_required,
        "example_subject": f"Request: {item.title}",
        "example_body": example,
    }


def _example(kind: str, choices: Sequence[str]) -> str:
    if choices:
        return choices[0]
    return {"date": "2026-12-31", "email": "name@example.com", "number": "1"}.get(kind, "...")


def catalog_list(app: App, session: Session, address: str, now: datetime) -> str:
    """Mail `address` the catalog; what was not done and why, or "" (rate-limited per address
    as acknowledgements are)."""
    limit = app.config.notify.auto_replies_per_hour
    if limit and repo.status_mails_since(session, CATALOG_KIND, address, now - HOUR) >= limit:
        return f"rate limit: {limit} catalog mails to {address} within the last hour"
    contact = repo.contact(session, address)
    if contact is not None and contact.bounced_at is not None:
        return f"address bounces: {contact.bounce_reason}"
    desk = app.config.desk
    ctx = {
        "desk": {"name": desk.name, "address": desk.address, "reopen_days": 0},
        "recipient": {"email": address, "name": contact.name if contact else ""},
        "items": [item_json(i) for i in app.config.catalog],
    }
    rendered = app.templates.render("requester/catalog", ctx)
    message_id = enqueue_unthreaded(session, app.config.desk, CATALOG_KIND, address, rendered, now)
    log.info("queued catalog %s to %s", message_id, address)
    return ""


def request_incomplete(
    app: App,
    session: Session,
    ticket: Ticket,
    item: CatalogItem,
    problems: Mapping[str, str],
    now: datetime,
) -> None:
    """Tell the requester exactly which fields are missing or wrong and how to answer."""
    labels = {f.name: f for f in item.fields}
    missing = [
        {
            "name": name,
            "label": labels[name].label,
            "problem": why,
            "example": _example(labels[name].kind, labels[name].choices),
        }
        for name, why in problems.items()
    ]
    to_requester(
        app,
        session,
        ticket,
        kind="request_incomplete",
        template="requester/request_incomplete",
        now=now,
        item=item_json(item),
        missing=missing,
    )


def approval_request(
    app: App,
    session: Session,
    ticket: Ticket,
    item: CatalogItem,
    approver: str,
    now: datetime,
    *,
    reminder: bool = False,
) -> None:
    """The approval request (or its reminder) to one approver, answerable by reply."""
    name = "approval_reminder" if reminder else "approval_request"
    send(
        app,
        session,
        ticket,
        kind=name,
        template=f"approver/{name}",
        ctx=context(app, ticket, None, item=item_json(item), approval=_approval(item, approver)),
        to=Recipient(approver),
        role="approver",
        auto_submitted="auto-generated",
        internal=True,
        now=now,
    )


def _approval(item: CatalogItem, approver: str) -> dict[str, Any]:
    return {
        "approver": approver,
        "required": item.approvals_required,
        "of": len(item.approvers),
        "timeout_hours": int(item.approval_timeout.total_seconds() // 3600),
    }


def to_requester_decided(
    app: App,
    session: Session,
    ticket: Ticket,
    item: CatalogItem,
    outcome: str,
    now: datetime,
    reason: str = "",
) -> None:
    """The requester hears their request was approved, rejected (with the reason) or expired."""
    to_requester(
        app,
        session,
        ticket,
        kind=f"request_{outcome}",
        template=f"requester/request_{outcome}",
        now=now,
        item=item_json(item),
        reason=reason,
    )
