"""The template context of a notification (docs/templates.md): the desk, the ticket, the
message that caused it (its text capped for agents' notices) and the event's own extras;
the current state of the services an acknowledgement's ticket is about (`service_status`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, object_session

from maildesk.app import App
from maildesk.notify.files import NO_FILES, NoticeFiles, notice_files
from maildesk.routing.impact import OPERATIONAL, service_states
from maildesk.store import repo
from maildesk.store.cis import ticket_services
from maildesk.store.impact import latest_broadcasts, open_incidents
from maildesk.store.models import Message, Ticket
from maildesk.store.views import alert_json
from maildesk.timefmt import iso


def ticket_context(app: App, ticket: Ticket, matched: Sequence[str] = ()) -> dict[str, Any]:
    """The `ticket` variable templates see."""
    org = app.config.organisation(ticket.organisation)
    return {
        "id": ticket.id,
        "ref": app.ref(ticket.id),
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "queue": ticket.queue,
        "type": ticket.type,
        "category": ticket.category,
        "assignee": ticket.assignee,
        "tags": list(ticket.tags),
        "requester": ticket.requester.email,
        "requester_name": ticket.requester.name,
        "organisation": ticket.organisation,
        "vip": bool(org and org.vip),
        "impact": ticket.impact,
        "urgency": ticket.urgency,
        "watchers": _watchers(ticket),
        "matched_rules": list(matched),
        "reply_address": app.reply_address(ticket.id),
        "status_url": app.status_url(ticket.id),  # None unless [http] status_page
        "sla_policy": ticket.sla_policy,
        "response_due": iso(ticket.sla_response_due),
        "resolution_due": iso(ticket.sla_resolution_due),
        **_problem(app, ticket),
        "suggestions": _suggestions(app, ticket),
        **_catalog(app, ticket),
    }


def _catalog(app: App, ticket: Ticket) -> dict[str, Any]:
    """A catalog request's item and its fields (label and value, in the item's order)."""
    item = app.config.catalog_item(ticket.catalog_item)
    values = dict(ticket.fields or {})
    labels = {f.name: f.label for f in item.fields} if item else {}
    order = [*labels, *(k for k in values if k not in labels)]
    fields = [
        {"name": k, "label": labels.get(k, k), "value": values[k]} for k in order if k in values
    ]
    return {"catalog_item": ticket.catalog_item, "fields": fields}


def _problem(app: App, ticket: Ticket) -> dict[str, Any]:
    """The ticket's problem (ref), the problem's known error, and the alert behind it."""
    session = object_session(ticket)
    if session is None or ticket.id is None:
        return {"problem": None, "known_error": None, "alert": None}
    problems = repo.related(session, ticket.id, "problem")
    alert = repo.ticket_alert(session, ticket.id)
    return {
        "problem": app.ref(problems[0].id) if problems else None,
        "known_error": problems[0].known_error if problems else ticket.known_error,
        "alert": alert_json(alert),
    }


def _suggestions(app: App, ticket: Ticket) -> list[Any]:
    """What learned routing suggested when the ticket was opened ([learning] only)."""
    session = object_session(ticket)
    if not app.config.learning.enabled or session is None:
        return []
    return repo.routed_suggestions(session, ticket.id)


def _watchers(ticket: Ticket) -> list[str]:
    """Who gets the requester side's mail besides the requester (as relays Cc them)."""
    session = object_session(ticket)
    if session is None:
        return []
    return [w for w in repo.watchers(session, ticket.id) if w != ticket.requester.email]


def message_context(message: Message | None, max_body: int | None = None) -> dict[str, Any]:
    """The `message` variable: the message that caused the notification, its text cut to
    `max_body` bytes when given (`body_omitted` says how many bytes were left out)."""
    if message is None:
        return {
            "subject": "",
            "from": "",
            "from_name": "",
            "body_text": "",
            "body_omitted": 0,
            "attachments": [],
        }
    text, omitted = (
        clip_text(message.body_text, max_body) if max_body is not None else (message.body_text, 0)
    )
    return {
        "subject": message.subject,
        "from": message.from_addr,
        "from_name": message.from_name,
        "body_text": text,
        "body_omitted": omitted,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in message.attachments
        ],
    }


def clip_text(text: str, limit: int) -> tuple[str, int]:
    """The start of `text` in at most `limit` bytes of UTF-8, and how many bytes are left out.

    The cut falls between characters, and at the end of a line when one ends in the second
    half of what is kept, so a quote does not stop mid-sentence without need.
    """
    if len(text) * 4 <= limit:  # no character is longer than 4 bytes: it fits, skip encoding
        return text, 0
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text, 0
    head = data[:limit].decode("utf-8", "ignore")  # "ignore" drops a character cut in two
    line_end = head.rfind("\n")
    if line_end >= len(head) // 2:
        head = head[:line_end]
    return head, len(data) - len(head.encode("utf-8", "replace"))


def context(
    app: App,
    ticket: Ticket,
    message: Message | None,
    matched: Sequence[str] = (),
    *,
    max_body: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The template context (docs/templates.md) for a notification about a ticket;
    `max_body` caps the quoted message text (see message_context)."""
    config = app.config
    return {
        "desk": {
            "name": config.desk.name,
            "address": config.desk.address,
            "reopen_days": config.desk.reopen_window.days,
        },
        "ticket": ticket_context(app, ticket, matched),
        "message": message_context(message, max_body),
        **extra,
    }


def agent_context(
    app: App,
    ticket: Ticket,
    message: Message | None,
    matched: Sequence[str] = (),
    *,
    files: NoticeFiles | None = None,
    like: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The context of a notice to agents: the message's text only up to `[notify]
    agent_notice_max_body`, so a big message is stored once (on the ticket), not again in
    every agent's notice; the template points to `maildesk ticket show` for the rest.
    Its files are listed as maildesk.notify.files says (`files`; by default named, not
    attached): numbered, with the command that saves each, tiny images left out.
    `like`: the context() of the same ticket and rules just built for another notice (its
    desk and ticket are taken, not queried again)."""
    cap = app.config.notify.agent_notice_max_body
    if like is None:
        ctx = context(app, ticket, message, matched, max_body=cap, **extra)
    else:
        ctx = {"desk": like["desk"], "ticket": like["ticket"]}
        ctx |= {"message": message_context(message, cap), **extra}
    if files is None:
        session = object_session(ticket)
        files = notice_files(app, session, ticket, message, attach=False) if session else NO_FILES
    ctx["message"]["attachments"] = list(files.listed)
    return ctx


def service_status(app: App, session: Session, ticket: Ticket) -> list[dict[str, Any]]:
    """The known issues of the services a new ticket is about: for each of them that
    another open incident degrades (or is an outage of), one entry per such incident with
    its ref, subject, since when, and the text of its latest `broadcast` (or None)."""
    about = ticket_services(ticket)
    services = app.config.services
    if not about or not services:
        return []
    incidents = open_incidents(session, exclude=[ticket.id])
    by_id = {i.id: i for i in incidents}
    states = {s.service.name: s for s in service_states(services, incidents)}
    hits = [states[name] for name in about if name in states]
    hits = [s for s in hits if s.state != OPERATIONAL]
    updates = latest_broadcasts(session, (i for s in hits for i in s.incidents))
    return [
        {
            "service": s.service.name,
            "state": s.state,
            "incident": app.ref(i),
            "subject": by_id[i].subject,
            "since": iso(by_id[i].since),
            "update": updates.get(i),
        }
        for s in hits
        for i in s.incidents
    ]
