"""Problem management: incidents linked to the problem that causes them, a problem's known
error, its resolution reaching every linked incident's requester, and the detection of a
burst of similar incidents.

A link is a `ticket_links` pair (the incident's `problem`, the problem's `incident`), as
`#link` makes between an incident and a problem. Resolving a problem resolves its open
incidents (`[problems] resolve_incidents`) and mails each linked incident's requester
once (`requester/problem_resolved`), threaded in their own ticket. Problems themselves
never mail a requester.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.notify import notices
from maildesk.notify.context import agent_context
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.terms import DONE_STATUSES, Status, TicketType
from maildesk.tickets import sla

log = logging.getLogger(__name__)

FIXED = "problem_fixed"  # the event on an incident whose requester was told of the fix
DETECTED = "problem_detected"


def open_problem(app: App, session: Session, source: Ticket, actor: str, now: datetime) -> Ticket:
    """A new problem from an incident: its subject and queue (and its requester, who is
    never mailed about the problem itself)."""
    problem = Ticket(
        requester=source.requester,
        subject=source.subject,
        status=Status.OPEN,
        priority=source.priority,
        queue=source.queue,
        type=TicketType.PROBLEM,
        category=source.category,
        tags=[],
        reply_token=secrets.token_hex(10),
        created_at=now,
        updated_at=now,
    )
    sla.started(app, problem, (), now)
    session.add(problem)
    session.flush()
    repo.add_event(session, problem, "created", now, actor=actor, source=app.ref(source.id))
    return problem


def link(
    app: App,
    session: Session,
    incident: Ticket,
    problem: Ticket,
    who: dict[str, str],
    now: datetime,
) -> str | None:
    """Link an incident to its problem; with a known error, the incident's assignee (or
    queue) is told the workaround."""
    ref, problem_ref = app.ref(incident.id), app.ref(problem.id)
    for old in repo.related(session, incident.id, "problem"):
        if old.id != problem.id:
            repo.remove_link(session, incident.id, old.id)
            repo.add_event(session, incident, "unlinked", now, **who, ticket=app.ref(old.id))
    if not repo.add_link(session, incident.id, problem.id, "problem", "incident", now):
        return None
    repo.add_event(session, incident, "linked", now, **who, relation="problem", ticket=problem_ref)
    repo.add_event(session, problem, "linked", now, **who, relation="incident", ticket=ref)
    if problem.known_error:
        notices.to_agents(
            app,
            session,
            incident,
            notices.assignee_or_queue(app, incident),
            kind="agent_problem_linked",
            template="agent/problem_linked",
            ctx=agent_context(app, incident, None, problem=_problem_ctx(app, session, problem)),
            answers=None,
            now=now,
            exclude=who.get("actor"),
        )
    return f"linked to problem {problem_ref}"


def set_known_error(
    app: App,
    session: Session,
    problem: Ticket,
    text: str | None,
    who: dict[str, str],
    now: datetime,
) -> str | None:
    """Mark a problem a known error with its workaround (None: no longer one)."""
    old = problem.known_error
    if old == text:
        return None
    problem.known_error = text
    repo.add_event(session, problem, "known_error", now, **who, change={"from": old, "to": text})
    return f"known error: {text}" if text else "no longer a known error"


def resolved(
    app: App,
    session: Session,
    problem: Ticket,
    now: datetime,
    resolve: Callable[[Ticket, str], object],
) -> None:
    """A problem was resolved: its open incidents too (if configured), and each linked
    incident's requester hears once, in their own ticket, that it was fixed and how."""
    ref = app.ref(problem.id)
    context = _problem_ctx(app, session, problem)
    told: set[str] = set()
    for incident in repo.related(session, problem.id, "incident"):
        if app.config.problems.resolve_incidents and incident.status not in DONE_STATUSES:
            resolve(incident, f"problem {ref} resolved")
        requester = incident.requester.email
        already = any(e.kind == FIXED and e.data.get("problem") == ref for e in incident.events)
        if requester in told or already:
            continue
        told.add(requester)
        notices.to_requester(
            app,
            session,
            incident,
            kind="problem_resolved",
            template="requester/problem_resolved",
            now=now,
            problem=context,
        )
        repo.add_event(session, incident, FIXED, now, problem=ref)
    log.info("%s resolved: %d requesters told", ref, len(told))


def _problem_ctx(app: App, session: Session, problem: Ticket) -> dict[str, Any]:
    return {
        "ref": app.ref(problem.id),
        "subject": problem.subject,
        "known_error": problem.known_error,
        "resolution": _resolution(app, problem),
        "incidents": [app.ref(i.id) for i in repo.related(session, problem.id, "incident")],
    }


def _resolution(app: App, problem: Ticket) -> str:
    """How it was fixed: the newest agent text on the problem, else its workaround."""
    for message in reversed(problem.messages):
        if message.direction == "in" and app.config.agent(message.from_addr) and message.body_text:
            return message.body_text.strip()
    return problem.known_error or ""


# --- detection --------------------------------------------------------------------------


def group_key(ticket: Ticket, by: str, routed: Sequence[str], alert_key: str | None) -> str | None:
    """What makes incidents alike for `[problems] detect by`; None: not groupable."""
    if by == "category":
        return ticket.category
    if by == "queue":
        return ticket.queue
    if by == "rule":
        return routed[-1] if routed else None
    if by == "monitor":
        return alert_key
    words = re.sub(r"[\W\d_]+", " ", ticket.subject.lower()).split()
    return " ".join(words) or None


def detect(app: App, session: Session, now: datetime) -> list[Ticket]:
    """Open a problem candidate for each group of `incidents` alike within `within` (the
    queue lead is told, once), and link later incidents of a group to its problem."""
    rule = app.config.problems.detect
    if rule is None:
        return []
    groups: dict[str, list[Ticket]] = {}
    for ticket in repo.recent_incidents(session, now - rule.within):
        if ticket.status in DONE_STATUSES:
            continue
        alert = repo.ticket_alert(session, ticket.id) if rule.by == "monitor" else None
        alert_key = alert.key if alert is not None else None
        key = group_key(ticket, rule.by, repo.routed_by(session, ticket), alert_key)
        if key is not None:
            groups.setdefault(key, []).append(ticket)
    opened = []
    who = {"actor": "system", "via": "scheduler"}
    for key, incidents in groups.items():
        problem = _detected_problem(session, incidents, key)
        loose = [t for t in incidents if not repo.related(session, t.id, "problem")]
        if problem is None and len(incidents) >= rule.incidents:
            problem = open_problem(app, session, incidents[0], "system", now)
            repo.add_event(
                session,
                problem,
                DETECTED,
                now,
                group=key,
                by=rule.by,
                incidents=[app.ref(t.id) for t in incidents],
            )
            opened.append(problem)
            for t in loose:
                link(app, session, t, problem, who, now)
            _tell_lead(app, session, problem, now)
        elif problem is not None:
            for t in loose:
                link(app, session, t, problem, who, now)
    return opened


def _detected_problem(session: Session, incidents: Sequence[Ticket], key: str) -> Ticket | None:
    """The open problem detection made for this group before, if any."""
    for incident in incidents:
        for problem in repo.related(session, incident.id, "problem"):
            detected = [e for e in problem.events if e.kind == DETECTED]
            if (
                problem.status not in DONE_STATUSES
                and detected
                and detected[0].data.get("group") == key
            ):
                return problem
    return None


def _tell_lead(app: App, session: Session, problem: Ticket, now: datetime) -> None:
    lead = app.config.sla.lead(problem.queue)
    agent = app.config.agent(lead) if lead else None
    recipients: list[Any] = (
        [agent or notices.Recipient(lead)] if lead else list(app.config.agents_of(problem.queue))
    )
    notices.to_agents(
        app,
        session,
        problem,
        recipients,
        kind="agent_problem_detected",
        template="agent/problem_detected",
        ctx=agent_context(app, problem, None, problem=_problem_ctx(app, session, problem)),
        answers=None,
        now=now,
    )
