"""SLAs through the pipeline and the scheduler job, on SQLite and PostgreSQL, on a fake clock.

Mail goes through the one pipeline in-process (store_raw + process, as every ingest edge
does); time is an injected clock, so a two-day breach takes milliseconds. The daemon test at
the end checks that `maildesk serve` runs the job from APScheduler by itself, and the
PostgreSQL test that two schedulers on one database notify a breach once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maildesk import jobs, pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.store.db import transaction
from maildesk.store.models import OutboxEntry, Ticket
from tests.conftest import Clock, Sink, mail, run_cli, running_desk, wait_until

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 11:00 in Berlin

SLA = """
[[calendars]]
name = "office"
timezone = "Europe/Berlin"
hours = {{ "mon-fri" = "09:00-17:00" }}
holidays = ["2026-11-25"]

[sla]
leads = {{ "*" = "lead@example.com" }}
remind_after = {remind_after}
resolve_after = {resolve_after}
close_after = "{close_after}"

[[sla_policies]]
name = "standard"
default = true
calendar = "{calendar}"
first_response = {{ P1 = "1h", P2 = "2h", P3 = "4h", P4 = "8h" }}
resolution = {{ P1 = "4h", P2 = "8h", P3 = "16h", P4 = "32h" }}
warn_at = 0.75
escalate = [ {escalate} ]
"""


@pytest.fixture
def sla_app(
    db_url: str, write_config: Callable[..., Path]
) -> Iterator[Callable[..., tuple[App, Clock]]]:
    apps: list[App] = []

    def make(
        *,
        calendar: str = "24x7",
        escalate: str = '{ on = "resolution", notify = ["lead"], raise_priority = 1 }',
        remind_after: int = 0,
        resolve_after: int = 0,
        close_after: str = "3d",
        start: datetime = MONDAY,
    ) -> tuple[App, Clock]:
        extra = SLA.format(
            calendar=calendar,
            escalate=escalate,
            remind_after=remind_after,
            resolve_after=resolve_after,
            close_after=close_after,
        )
        clock = Clock(start)
        app = App.build(load_config(write_config(db_url, extra=extra)), clock=clock)
        apps.append(app)
        return app, clock

    yield make
    for app in apps:
        app.close()


def receive(app: App, subject: str = "Printer on fire", **kw: Any) -> pipeline.Outcome:
    msg = mail(subject, **kw)
    sender = str(msg["From"]).rpartition("<")[2].rstrip(">")
    raw_id = inbox.store_raw(
        app,
        msg.as_bytes(),
        origin="test",
        envelope_from=sender,
        envelope_to=["support@example.com"],
    )
    return pipeline.process(app, raw_id)


def agent_mail(app: App, ticket_id: int, body: str, agent: str = "alice@example.com") -> None:
    address = app.reply_address(ticket_id, "agent", agent)
    msg = mail(f"Re: [MD-{ticket_id}] Printer on fire", body, sender=agent, to=address)
    raw_id = inbox.store_raw(
        app, msg.as_bytes(), origin="test", envelope_from=agent, envelope_to=[address]
    )
    outcome = pipeline.process(app, raw_id)
    assert outcome.status in ("agent_reply", "commands", "note"), outcome


def ticket(app: App, ticket_id: int) -> Ticket:
    with transaction(app.sessions) as session:
        found = session.get_one(Ticket, ticket_id)
        session.expunge(found)
        return found


def outbox(app: App, kind: str) -> list[OutboxEntry]:
    with transaction(app.sessions) as session:
        rows = list(session.scalars(select(OutboxEntry).where(OutboxEntry.kind == kind)))
        for row in rows:
            session.expunge(row)
        return rows


def sla_events(app: App, ref: str) -> list[tuple[str, dict[str, Any]]]:
    code, out = run_cli("ticket", "show", ref, "--json", "--config", str(app.config.path))
    assert code == 0, out
    return [(e["kind"], e["data"]) for e in json.loads(out)["events"] if "sla" in e["kind"]]


def test_warning_then_breach_exactly_once_with_escalation(
    sla_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = sla_app()
    outcome = receive(app)  # P3: first response 4h, resolution 16h, warnings at 75 %
    assert outcome.ticket_id is not None
    t = ticket(app, outcome.ticket_id)
    assert t.sla_policy == "standard"
    assert t.sla_response_due == MONDAY + timedelta(hours=4)
    assert t.sla_resolution_due == MONDAY + timedelta(hours=16)
    assert t.sla_next_check == MONDAY + timedelta(hours=3)  # the first warning

    assert not jobs.run_due(app, clock.advance(hours=2, minutes=59))
    report = jobs.run_due(app, clock.advance(minutes=1))
    assert (report.warnings, report.breaches) == (1, 0)
    assert not jobs.run_due(app, clock.now)  # idempotent: nothing twice
    [warning] = outbox(app, "sla_warning")
    assert warning.recipients == ["alice@example.com"]  # the queue's agents (no assignee)

    report = jobs.run_due(app, clock.advance(hours=1))  # 4h: first response breached
    assert (report.warnings, report.breaches) == (0, 1)
    report = jobs.run_due(app, clock.advance(hours=8))  # 12h: resolution warning
    assert (report.warnings, report.breaches) == (1, 0)
    assert not jobs.run_due(app, clock.advance(hours=3, minutes=59))
    report = jobs.run_due(app, clock.advance(minutes=1))  # 16h: resolution breach
    assert report.breaches == 1
    for _ in range(3):
        assert not jobs.run_due(app, clock.advance(hours=1))

    kinds = [(k, d["target"]) for k, d in sla_events(app, "MD-1")]
    assert kinds == [
        ("sla_warning", "first_response"),
        ("sla_breach", "first_response"),
        ("sla_warning", "resolution"),
        ("sla_breach", "resolution"),
    ]
    breaches = outbox(app, "sla_breach")
    # The resolution breach escalates: the lead is told and the priority goes up a step.
    assert sorted(r for b in breaches for r in b.recipients) == [
        "alice@example.com",
        "alice@example.com",
        "lead@example.com",
    ]
    assert ticket(app, 1).priority == "P2"
    assert "SLA BREACHED" in breaches[-1].subject


def test_pending_pauses_the_clock_and_a_requester_reply_resumes_it(
    sla_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = sla_app()
    receive(app)
    clock.advance(hours=1)
    agent_mail(app, 1, "Please try again and tell us.")  # first response; pending
    t = ticket(app, 1)
    assert (t.status, t.first_response_at) == ("pending", MONDAY + timedelta(hours=1))
    assert t.sla_response_due is None and t.sla_resolution_due is None  # paused
    assert t.sla_consumed_us == 3600 * 10**6

    clock.advance(days=3)  # three days waiting on the requester count for nothing
    assert not jobs.run_due(app, clock.now)
    receive(app, "Re: [MD-1] Printer on fire", body="Still broken.", sender="carol@example.org")
    t = ticket(app, 1)
    assert t.status == "open"
    assert t.sla_resolution_due == clock.now + timedelta(hours=15)  # 16h - 1h used


def test_priority_change_recomputes_due_times_keeping_time_used(
    sla_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = sla_app()
    receive(app)
    clock.advance(hours=3, minutes=30)
    assert jobs.run_due(app, clock.now).warnings == 1  # first-response warning at 3h
    code, out = run_cli("ticket", "set", "MD-1", "priority=P1", "--config", str(app.config.path))
    assert code == 0, out
    t = ticket(app, 1)
    # P1: first response 1h, resolution 4h; 3.5h are used already.
    assert t.sla_response_due == MONDAY + timedelta(hours=1)
    assert t.sla_resolution_due == MONDAY + timedelta(hours=4)
    report = jobs.run_due(app, clock.now)
    assert report.breaches == 1  # first response, at once; no second warning
    report = jobs.run_due(app, clock.advance(minutes=30))
    assert report.breaches == 1  # resolution at 4h


def test_business_hours_calendar_and_holiday(sla_app: Callable[..., tuple[App, Clock]]) -> None:
    # Tuesday 16:00 in Berlin (15:00 UTC); Wednesday is a holiday; office 09:00-17:00.
    app, _ = sla_app(calendar="office", start=datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    receive(app)  # P3: first response 4 working hours: 1h on Tuesday, 3h on Thursday
    t = ticket(app, 1)
    assert t.sla_response_due == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)  # Thu 12:00 Berlin
    assert not jobs.run_due(app, datetime(2026, 11, 25, 23, 0, tzinfo=UTC))
    report = jobs.run_due(app, datetime(2026, 11, 26, 11, 0, tzinfo=UTC))
    assert report.breaches == 1


def test_escalation_moves_to_another_queue(sla_app: Callable[..., tuple[App, Clock]]) -> None:
    app, clock = sla_app(escalate='{ on = "first_response", move_to = "infra" }')
    receive(app)
    jobs.run_due(app, clock.advance(hours=4))
    t = ticket(app, 1)
    assert t.queue == "infra"
    _, out = run_cli("ticket", "show", "MD-1", "--config", str(app.config.path))
    assert "sla (scheduler): queue it -> infra" in out


def test_reminder_then_auto_resolve_then_auto_close(
    sla_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = sla_app(remind_after=2, resolve_after=1, close_after="3d")
    receive(app)
    agent_mail(app, 1, "#status pending\nPlease send the error message.")
    assert ticket(app, 1).status == "pending"
    assert not jobs.run_due(app, clock.advance(days=1, hours=23))
    report = jobs.run_due(app, clock.advance(hours=1))  # 2 business days (24x7: days)
    assert report.reminders == 1
    [reminder] = outbox(app, "reminder")
    assert reminder.recipients == ["carol@example.org"]
    assert "Waiting for your answer" in reminder.subject
    assert not jobs.run_due(app, clock.advance(hours=23))
    report = jobs.run_due(app, clock.advance(hours=1))
    assert report.resolved == 1
    assert ticket(app, 1).status == "resolved"
    [resolved] = outbox(app, "resolved")
    assert b"no answer from the requester" in resolved.raw
    assert jobs.run_due(app, clock.advance(days=3)).closed == 1
    assert ticket(app, 1).status == "closed"
    assert not jobs.run_due(app, clock.advance(days=30))
    _, out = run_cli("ticket", "show", "MD-1", "--config", str(app.config.path))
    assert "scheduler (scheduler): reminded" in out
    assert "scheduler (scheduler): status pending -> resolved" in out
    assert "scheduler (scheduler): status resolved -> closed" in out


def test_a_requester_answer_cancels_the_pending_reminder(
    sla_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = sla_app(remind_after=2, resolve_after=1)
    receive(app)
    agent_mail(app, 1, "#status pending\nPlease send the error message.")
    clock.advance(days=1)
    receive(app, "Re: [MD-1] Printer on fire", body="Here it is.", sender="carol@example.org")
    assert not jobs.run_due(app, clock.advance(days=10)).reminders
    assert ticket(app, 1).status == "open"


def test_late_first_response_settles_the_breach(sla_app: Callable[..., tuple[App, Clock]]) -> None:
    app, clock = sla_app()
    receive(app)
    clock.advance(hours=5)  # nobody ran the scheduler: the agent answers first
    agent_mail(app, 1, "Sorry for the wait.")
    kinds = [(k, d["target"]) for k, d in sla_events(app, "MD-1")]
    assert kinds == [("sla_breach", "first_response")]  # the breach alone, no warning
    assert ticket(app, 1).first_response_at == clock.now
    assert not jobs.run_due(app, clock.advance(hours=6)).breaches  # answered: nothing more


def test_merged_ticket_stops_its_clock(sla_app: Callable[..., tuple[App, Clock]]) -> None:
    app, _ = sla_app()
    receive(app)
    receive(app, "Printer on fire again", sender="dave@example.org")
    agent_mail(app, 2, "#merge MD-1")
    t = ticket(app, 2)
    assert (t.status, t.sla_next_check) == ("merged", None)


def test_maildesk_sla_lists_tickets_at_risk_and_in_breach(
    sla_app: Callable[..., tuple[App, Clock]],
) -> None:
    app, clock = sla_app()
    receive(app, "VPN down for everyone")  # rule: infra, P1 (1h / 4h)
    receive(app, "Printer on fire")  # P3
    receive(app, "Monitor flickers")  # P3, answered at once
    clock.advance(minutes=5)
    agent_mail(app, 3, "Try another cable.")
    jobs.run_due(app, clock.advance(hours=3, minutes=5))
    code, out = run_cli("sla", "--json", "--config", str(app.config.path))
    assert code == 0, out
    rows = {r["ref"]: r for r in json.loads(out)}
    assert rows["MD-1"]["state"] == "breached" and rows["MD-1"]["priority"] == "P1"
    assert rows["MD-2"]["state"] == "at risk"
    assert "MD-3" not in rows  # pending on the requester, answered in time
    code, out = run_cli("sla", "--all", "--config", str(app.config.path))
    assert code == 0 and "MD-3" in out and "paused" in out
    code, out = run_cli("sla", "--config", str(app.config.path))
    assert "breached" in out and "at risk" in out


# The row-lock race is PostgreSQL's; SQLite serialises every writer.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_schedulers_on_one_postgresql_notify_once(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    extra = SLA.format(
        calendar="24x7", escalate="", remind_after=0, resolve_after=0, close_after="3d"
    )
    path = write_config(db_url, extra=extra)
    clock = Clock(MONDAY)
    first = App.build(load_config(path), clock=clock)
    second = App.build(load_config(path), clock=clock)
    try:
        for n in range(20):
            receive(first, f"Printer {n} on fire", sender=f"user{n}@example.org")
        clock.advance(hours=5)  # every ticket: first-response warning and breach due
        barrier = threading.Barrier(2)
        reports: list[jobs.JobReport] = []

        def run(app: App) -> None:
            barrier.wait()
            reports.append(jobs.run_due(app, clock.now))

        threads = [threading.Thread(target=run, args=(a,)) for a in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sum(r.breaches for r in reports) == 20
        assert all(r.tickets for r in reports), "both schedulers should have taken work"
        breaches = outbox(first, "sla_breach")
        assert len(breaches) == 20
        assert len({b.ticket_id for b in breaches}) == 20
    finally:
        first.close()
        second.close()


def test_serve_runs_the_sla_job_from_apscheduler(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = SLA.format(
        calendar="24x7", escalate="", remind_after=0, resolve_after=0, close_after="3d"
    ).replace("[sla]\n", '[sla]\ncheck_interval = "1s"\n')
    clock = Clock(datetime.now(UTC))
    with running_desk(write_config(db_url, sink.port, extra=extra), sink, clock=clock) as desk:
        desk.send(mail("Printer on fire"))
        desk.wait_tickets(1)
        clock.advance(hours=5)
        wait_until(lambda: [m for m in desk.sink.parsed() if "SLA BREACHED" in str(m["Subject"])])
