"""The scheduler's jobs. The SLA job: warnings, breaches, escalations, reminders, auto-resolve,
auto-close; fragments of messages sent in parts that waited too long for the rest; and the
learned-routing retrain (`[learning] retrain`).

`run_due(app, now)` handles every ticket whose `sla_next_check` has come, one ticket per
transaction: the warning or breach, its notice and the new clock state commit together, so a
second run (or a second daemon on the same database) finds nothing more to do. On PostgreSQL
each ticket is taken FOR UPDATE SKIP LOCKED; SQLite serialises writers. `maildesk serve`
runs it from APScheduler; tests call it with any `now`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.learn.model import LearnUnavailable
from maildesk.learn.predict import forget
from maildesk.learn.train import TrainResult, train_label
from maildesk.notify import change_notices as change_notices_mod
from maildesk.notify import notices, selfservice
from maildesk.routing.guard import AUTOMATIC_REASONS, automatic_address
from maildesk.routing.partial import PARTIAL_WAIT
from maildesk.sla.lifecycle import lifecycle_due
from maildesk.store import leases, repo
from maildesk.store.changes import PASSED_EVENT, STARTING_EVENT, next_change_notice
from maildesk.store.db import transaction
from maildesk.store.models import Ticket
from maildesk.terms import Status
from maildesk.tickets import approvals, lifecycle, problems
from maildesk.tickets import sla as hooks
from maildesk.tickets.lifecycle import Actor

log = logging.getLogger(__name__)

SCHEDULER = Actor("scheduler", "scheduler")
STUCK_RETRY = timedelta(minutes=5)
SURVEY_WINDOW = timedelta(days=7)  # a ticket resolved longer than this before its delay: none


@dataclass
class JobReport:
    tickets: int = 0
    warnings: int = 0
    breaches: int = 0
    reminders: int = 0
    resolved: int = 0
    closed: int = 0
    refs: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.tickets > 0


def run_due(app: App, now: datetime, *, limit: int = 500) -> JobReport:
    """Handle every ticket due at `now` (at most `limit`); each in its own transaction."""
    report = JobReport()
    done: list[int] = []
    while report.tickets < limit:
        with transaction(app.sessions) as session:
            ticket = repo.next_sla_due(session, now, skip=done)
            if ticket is None:
                break
            done.append(ticket.id)
            _tick(app, session, ticket, now, report)
            if ticket.sla_next_check is not None and ticket.sla_next_check <= now:
                # Nothing more can happen at this instant; never spin on one ticket.
                log.warning("%s: SLA check due again at once; next look later", app.ref(ticket.id))
                ticket.sla_next_check = now + STUCK_RETRY
        report.tickets += 1
        report.refs.append(app.ref(ticket.id))
    return report


def _tick(app: App, session: Session, ticket: Ticket, now: datetime, report: JobReport) -> None:
    result = hooks.check(app, session, ticket, now)
    report.warnings += sum(e.kind == "warning" for e in result.events)
    report.breaches += sum(e.kind == "breach" for e in result.events)
    step = lifecycle_due(
        app.config.sla,
        policy=ticket.sla_policy,
        status=ticket.status,
        status_since=ticket.status_changed_at or ticket.updated_at,
        reminded_at=ticket.reminded_at,
        now=now,
    )
    if step is None:
        return
    settings = app.config.sla.lifecycle_of(ticket.sla_policy)
    if step.action == "remind":
        ticket.reminded_at = now
        repo.add_event(
            session,
            ticket,
            "reminded",
            now,
            actor=SCHEDULER.email,
            via=SCHEDULER.via,
            after_business_days=settings.remind_after,
        )
        notices.to_requester(
            app,
            session,
            ticket,
            kind="reminder",
            template="requester/pending_reminder",
            now=now,
            resolve_after=settings.resolve_after,
        )
        report.reminders += 1
        hooks.refresh(app, ticket, now)
    elif step.action == "resolve":
        lifecycle.set_status(
            app,
            session,
            ticket,
            Status.RESOLVED,
            SCHEDULER,
            now,
            reason="no answer from the requester",
        )
        report.resolved += 1
    elif step.action == "close":
        lifecycle.set_status(
            app,
            session,
            ticket,
            Status.CLOSED,
            SCHEDULER,
            now,
            reason=f"resolved for {settings.close_after}",
        )
        report.closed += 1


def refresh_all(app: App, now: datetime) -> int:
    """Recompute every running clock's due times (after a config change); return how many."""
    with transaction(app.sessions) as session:
        tickets = repo.live_tickets(session)
        for ticket in tickets:
            hooks.refresh(app, ticket, now)
    return len(tickets)


def release_stale_fragments(app: App, now: datetime) -> int:
    """Put fragments (message/partial) that waited PARTIAL_WAIT for the rest of their set
    back in line: the pipeline then processes them as ordinary mail, each with the fragment
    as an attachment (see pipeline.fragments). Returns how many."""
    with transaction(app.sessions) as session:
        stale = repo.stale_fragments(session, now - PARTIAL_WAIT)
        repo.requeue_fragments(session, stale)
    if stale:
        log.info(
            "%d fragments waited %s for the rest of their set: processed as mail",
            len(stale),
            PARTIAL_WAIT,
        )
    return len(stale)


def detect_problems(app: App, now: datetime) -> int:
    """[problems] detect: open problem candidates for bursts of similar incidents, and link
    later ones to them (see tickets.problems.detect). Returns how many problems opened."""
    if app.config.problems.detect is None:
        return 0
    with transaction(app.sessions) as session:
        opened = problems.detect(app, session, now)
    for problem in opened:
        log.info("problem candidate %s opened by detection", app.ref(problem.id))
    return len(opened)


def check_approvals(app: App, now: datetime) -> int:
    """Catalog requests awaiting approval: reminders after the item's approval_timeout,
    expiry after twice that (see tickets.approvals.check_waiting). Returns what it did."""
    if not app.config.catalog:
        return 0
    with transaction(app.sessions) as session:
        return approvals.check_waiting(app, session, now)


def schedule_learning(scheduler: Any, app: App) -> None:
    """Add the retrain job to the scheduler, if `[learning] retrain` asks for one."""
    every = app.config.learning.retrain
    if app.config.learning.enabled and every is not None:
        seconds = every.total_seconds()
        scheduler.add_job(
            lambda: take_firing(app, "learn", every) and retrain(app, app.now()),
            "interval",
            seconds=seconds,
            id="learn",
            max_instances=1,
        )


def take_firing(app: App, job: str, every: timedelta) -> bool:
    """Whether this daemon runs this firing of a scheduled job: only the first daemon on the
    database to fire within most of `every` does (store/leases.take_firing). Wall-clock
    time, like the scheduler's."""
    with transaction(app.sessions) as session:
        return leases.take_firing(session, job, leases.daemon_id(), datetime.now(UTC), every)


def retrain(app: App, now: datetime, *, force: bool = False) -> list[TrainResult]:
    """Train a new version of each `[learning]` label's model, unless one newer than most of
    the interval is there (another daemon made it); every daemon then loads it."""
    learning = app.config.learning
    with transaction(app.sessions, readonly=True) as session:
        newest = {m["label"]: m["created_at"] for m in reversed(repo.list_models(session))}
    results: list[TrainResult] = []
    for label in learning.labels:
        made = newest.get(label)
        recent = made is not None and learning.retrain is not None
        if not force and recent and now - made < learning.retrain * 0.9:  # type: ignore[operator]
            continue
        try:
            result = train_label(app, label, now)
        except LearnUnavailable as exc:
            log.warning("learn job skipped: %s", exc)
            return results
        if result.skipped:
            log.info("learn job: %s model not trained: %s", label, result.skipped)
        results.append(result)
    forget(app)  # this daemon loads the new models with its next message; others within POLL
    return results


def send_surveys(app: App, now: datetime) -> int:
    """[survey]: mail the satisfaction survey of each ticket resolved `delay` ago (within a
    week of that, so enabling surveys does not mail every old ticket), once per ticket, one
    ticket per transaction; an automatic or bouncing requester gets none (recorded as
    `survey_skipped`). Returns how many were sent."""
    config = app.config.survey
    if not config.enabled:
        return 0
    end = now - config.delay
    sent: int = 0
    done: list[int] = []
    while True:
        with transaction(app.sessions) as session:
            due = repo.surveys_due(session, (end - SURVEY_WINDOW, end), config.queues, skip=done)
            if not due:
                return sent
            ticket = due[0]
            done.append(ticket.id)
            if not repo.survey_settled(session, ticket.id):
                sent += _survey(app, session, ticket, now)


def _automatic_mail(ticket: Ticket) -> str:
    """Why the requester's mail on the ticket was written by a machine ("" if it was not)."""
    for event in ticket.events:
        data = event.data or {}
        reason = str(data.get("reason") or data.get("automatic") or "")
        if event.kind == "message" and data.get("automatic"):
            return f"the requester's mail was automatic ({reason})"
        if (
            event.kind == "notification_suppressed"
            and data.get("notification") == "acknowledgement"
            and reason.startswith(AUTOMATIC_REASONS)
        ):
            return f"the requester's mail was automatic ({reason})"
    return ""


def _survey(app: App, session: Session, ticket: Ticket, now: datetime) -> int:
    """One ticket's survey, or the reason it gets none; 1 if sent."""
    requester = ticket.requester
    reason = (
        automatic_address(requester.email, app.config.own_addresses)
        or (f"requester address bounces: {requester.bounce_reason}" if requester.bounced_at else "")
        or _automatic_mail(ticket)
    )
    message = None if reason else selfservice.survey(app, session, ticket, now)
    if message is None:
        reason = reason or "not sent (see notification_suppressed)"
        repo.add_event(session, ticket, "survey_skipped", now, via="scheduler", reason=reason)
        return 0
    repo.add_event(
        session, ticket, "survey_sent", now, via="scheduler", message_id=message.message_id
    )
    log.info("%s: survey sent to %s", app.ref(ticket.id), requester.email)
    return 1


def change_notices(app: App, now: datetime) -> int:
    """Each scheduled change's window notices, once each: "change starting" at its start,
    "window passed" when it is still open an hour after its end. The notice and its event
    commit together, one change per transaction, so a second run sends nothing again.
    Returns how many notices went out."""
    sent = 0
    for kind, notice in (
        (STARTING_EVENT, change_notices_mod.change_starting),
        (PASSED_EVENT, change_notices_mod.change_window_passed),
    ):
        done: list[int] = []
        while True:
            with transaction(app.sessions) as session:
                ticket = next_change_notice(session, kind, now, skip=done)
                if ticket is None:
                    break
                done.append(ticket.id)
                notice(app, session, ticket, now)
                repo.add_event(session, ticket, kind, now, actor=SCHEDULER.email, via="scheduler")
            log.info("%s: %s", app.ref(ticket.id), kind.removesuffix("_notified"))
            sent += 1
    return sent
