"""The report's figures against a week whose answers are known (tests/reports/seeded.py),
on SQLite and PostgreSQL. Every number below was worked out by hand from the seeded week."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from maildesk import reports
from maildesk.app import App
from maildesk.errors import InvalidRequest
from maildesk.store.db import transaction
from maildesk.store.models import OutboxEntry
from tests.conftest import Sink
from tests.reports.seeded import WEEK_END, WEEK_START, Seeder, at, seeded_desk

H = 3600


@pytest.fixture
def desk(
    db_url: str, write_config: Callable[..., Path], sink: Sink
) -> Iterator[tuple[App, Seeder]]:
    app, seeder = seeded_desk(db_url, write_config, sink.port)
    try:
        yield app, seeder
    finally:
        app.close()


def report_of(app: App, period: reports.Period) -> dict[str, Any]:
    with transaction(app.sessions, readonly=True) as session:
        return reports.build_report(session, app, period, at(9, 12))


def test_summary_and_days_of_the_seeded_week(desk: tuple[App, Seeder]) -> None:
    app, seeder = desk
    report = report_of(app, reports.Period(WEEK_START, WEEK_END))
    assert report["version"] == 1
    assert report["generated_at"] == "2026-11-09T12:00:00+00:00"
    assert report["period"] == {
        "start": "2026-11-02",
        "end": "2026-11-08",
        "queue": None,
        "timezone": "UTC",
        "days": 7,
    }
    summary = report["summary"]
    assert summary == {
        "created": 10,  # MD-2 .. MD-11; MD-1 came before, MD-12 after
        "resolved": 8,  # MD-1, 2, 3, 4, 5 (twice), 8, 9
        "reopened": 1,  # MD-5
        "reopen_rate": 14.3,  # 1 of the 7 tickets resolved
        "backlog_start": 1,  # MD-1
        "backlog_end": 4,  # MD-6, 7, 10, 11
        "first_response_breaches": 2,  # MD-4, MD-6
        "resolution_breaches": 1,  # MD-6 (MD-4 and MD-7 waited on the requester: paused)
        "mail_in": 28,
        "mail_out": summary["mail_out"],  # checked against the outbox below
        "quarantined": 1,
        # first responses 0, 20m, 30m, 30m, 1h, 1h, 1h30, 2h (business time)
        "first_response_median_seconds": 2700,
        "first_response_p90_seconds": 5940,
        # resolutions 45m, 2h, 5h, 6h, 8h, 9h
        "resolution_median_seconds": 19800,
        "resolution_p90_seconds": 30600,
        "first_response_compliance": 77.8,  # 7 of 9 settled
        "resolution_compliance": 85.7,  # 6 of 7 settled
    }
    days = {d["date"]: d for d in report["daily"]}
    assert list(days) == [f"2026-11-0{n}" for n in range(2, 9)]
    assert [d["created"] for d in report["daily"]] == [3, 2, 1, 1, 1, 1, 1]
    assert [d["resolved"] for d in report["daily"]] == [2, 3, 1, 1, 1, 0, 0]
    assert [d["reopened"] for d in report["daily"]] == [0, 0, 1, 0, 0, 0, 0]
    assert [d["backlog"] for d in report["daily"]] == [2, 1, 2, 2, 2, 3, 4]
    assert [d["quarantined"] for d in report["daily"]] == [0, 0, 1, 0, 0, 0, 0]
    assert [d["mail_in"] for d in report["daily"]] == [
        seeder.mail_in[date(2026, 11, n)] for n in range(2, 9)
    ]
    assert [d["mail_in"] for d in report["daily"]] == [7, 7, 5, 3, 3, 2, 1]


def test_mail_out_is_what_was_sent_on_the_days_it_was_sent(desk: tuple[App, Seeder]) -> None:
    app, _ = desk
    report = report_of(app, reports.Period(WEEK_START, WEEK_END))
    with transaction(app.sessions, readonly=True) as session:
        sent = session.scalar(
            select(func.count()).where(OutboxEntry.status == "sent").select_from(OutboxEntry)
        )
    mail_out = [d["mail_out"] for d in report["daily"]]
    assert sum(mail_out) == report["summary"]["mail_out"] == sent
    # The sender ran on Monday and Wednesday evening only.
    assert mail_out[0] > 0 and mail_out[2] > 0
    assert mail_out[1] == mail_out[3] == mail_out[4] == mail_out[5] == mail_out[6] == 0


def times(report: dict[str, Any], measure: str, group: str) -> dict[str, tuple[int, int, int]]:
    return {
        r["key"]: (r["count"], r["median_seconds"], r["p90_seconds"])
        for r in report["times"]
        if r["measure"] == measure and r["group"] == group
    }


def test_times_by_queue_priority_and_agent_in_business_hours(desk: tuple[App, Seeder]) -> None:
    app, _ = desk
    report = report_of(app, reports.Period(WEEK_START, WEEK_END))
    assert times(report, "first_response", "queue") == {
        "infra": (2, 4200, 6600),  # 20m and 2h (Mon 16:00 to Tue 10:00 is 2 office hours)
        "it": (6, 2700, 4500),  # 0 (Saturday), 30m, 30m, 1h, 1h, 1h30
    }
    assert times(report, "first_response", "priority") == {
        "P1": (2, 4200, 6600),
        "P3": (6, 2700, 4500),
    }
    assert times(report, "first_response", "agent") == {
        "alice@example.com": (5, 1800, 3600),
        "bob@example.com": (3, 5400, 6840),
    }
    assert times(report, "resolution", "queue") == {
        "infra": (2, 12600, 16920),  # 2h and 5h
        "it": (4, 25200, 31320),  # 45m, 6h, 8h, 9h (MD-5's second resolution)
    }
    assert times(report, "resolution", "agent") == {
        "alice@example.com": (3, 6 * H, 30240),
        "bob@example.com": (3, 5 * H, 26640),
    }


def test_sla_compliance_and_breaches(desk: tuple[App, Seeder]) -> None:
    app, _ = desk
    report = report_of(app, reports.Period(WEEK_START, WEEK_END))
    assert report["sla"] == [
        {
            "group": "queue",
            "key": "infra",
            "first_response_measured": 2,
            "first_response_met": 1,
            "first_response_compliance": 50.0,
            "resolution_measured": 2,
            "resolution_met": 2,
            "resolution_compliance": 100.0,
        },
        {
            "group": "queue",
            "key": "it",
            "first_response_measured": 7,  # MD-11 (Sunday night) is not settled yet
            "first_response_met": 6,
            "first_response_compliance": 85.7,
            "resolution_measured": 5,
            "resolution_met": 4,
            "resolution_compliance": 80.0,
        },
        {
            "group": "policy",
            "key": "standard",
            "first_response_measured": 9,
            "first_response_met": 7,
            "first_response_compliance": 77.8,
            "resolution_measured": 7,
            "resolution_met": 6,
            "resolution_compliance": 85.7,
        },
    ]
    assert [(b["ref"], b["target"], b["breached_at"]) for b in report["breaches"]] == [
        ("MD-4", "first_response", "2026-11-03T10:00:00+00:00"),
        ("MD-6", "first_response", "2026-11-04T12:00:00+00:00"),
        ("MD-6", "resolution", "2026-11-06T12:00:00+00:00"),
    ]
    assert report["breaches"][0] == {
        "ref": "MD-4",
        "queue": "infra",
        "priority": "P1",
        "policy": "standard",
        "target": "first_response",
        "breached_at": "2026-11-03T10:00:00+00:00",
        "assignee": "bob@example.com",
    }


def test_top_lists_rules_and_csat(desk: tuple[App, Seeder]) -> None:
    app, _ = desk
    report = report_of(app, reports.Period(WEEK_START, WEEK_END))
    assert report["top_categories"] == [
        {"category": None, "tickets": 6},
        {"category": "printing", "tickets": 4},
    ]
    assert [(r["requester"], r["name"], r["tickets"]) for r in report["top_requesters"]] == [
        ("carol@example.org", "Carol", 3),
        ("dave@example.org", "Dave", 2),
        ("erin@example.org", "Erin", 1),
        ("frank@example.org", "Frank", 1),
        ("gina@example.org", "Gina", 1),
        ("hank@example.org", "Hank", 1),
        ("ivy@example.org", "Ivy", 1),
    ]
    assert report["rules"] == [
        {"rule": "printers", "hits": 4},
        {"rule": "outages are P1 for infra", "hits": 2},
    ]
    assert report["csat"] is None


def test_one_queue_counts_only_its_tickets_and_their_mail(desk: tuple[App, Seeder]) -> None:
    app, _ = desk
    report = report_of(app, reports.Period(WEEK_START, WEEK_END, queue="infra"))
    summary = report["summary"]
    assert report["period"]["queue"] == "infra"
    assert (summary["created"], summary["resolved"], summary["backlog_start"]) == (2, 2, 0)
    assert [d["backlog"] for d in report["daily"]] == [1, 0, 0, 0, 0, 0, 0]
    # MD-4: opened, answered, resolved; MD-8 the same. Quarantined mail is on no queue.
    assert [d["mail_in"] for d in report["daily"]] == [1, 2, 0, 3, 0, 0, 0]
    assert summary["quarantined"] == 0
    assert [b["ref"] for b in report["breaches"]] == ["MD-4"]
    assert report["rules"] == [{"rule": "outages are P1 for infra", "hits": 2}]
    assert [r["key"] for r in report["sla"]] == ["infra", "standard"]


def test_a_day_at_the_edge_of_the_period_counts_whole(desk: tuple[App, Seeder]) -> None:
    app, _ = desk
    sunday = report_of(app, reports.Period(WEEK_END, WEEK_END))
    assert sunday["summary"]["created"] == 1  # MD-11 at 20:00, not MD-12 at 00:30 Monday
    assert sunday["summary"]["backlog_start"] == 3
    assert sunday["daily"] == [
        {
            "date": "2026-11-08",
            "created": 1,
            "resolved": 0,
            "reopened": 0,
            "backlog": 4,
            "mail_in": 1,
            "mail_out": 0,
            "quarantined": 0,
        }
    ]


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (date(2026, 11, 8), date(2026, 11, 2), "before it starts"),
        (date(2025, 1, 1), date(2026, 1, 2), "at most 366 days"),
    ],
)
def test_a_period_backwards_or_past_a_year_is_refused(start: date, end: date, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        reports.Period(start, end)
    assert reports.Period(date(2024, 1, 1), date(2024, 12, 31)).days == 366  # a leap year


def test_days_are_the_desks_days(
    db_url: str, write_config: Callable[..., Path], sink: Sink
) -> None:
    """In New York (UTC-5 after the clocks went back on 1 November) MD-12, opened Monday
    00:30 UTC, was opened on Sunday evening: the week has eleven new tickets."""

    def in_new_york(*args: Any, **kwargs: Any) -> Path:
        path: Path = write_config(*args, **kwargs)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("[desk]\n", '[desk]\ntimezone = "America/New_York"\n', 1))
        return path

    app, _ = seeded_desk(db_url, in_new_york, sink.port)
    try:
        report = report_of(app, reports.Period(WEEK_START, WEEK_END))
        sunday = report_of(app, reports.Period(date(2026, 11, 1), date(2026, 11, 1)))
    finally:
        app.close()
    assert report["period"]["timezone"] == "America/New_York"
    assert report["summary"]["created"] == 11
    assert [d["created"] for d in report["daily"]] == [3, 2, 1, 1, 1, 1, 2]
    assert report["summary"]["backlog_end"] == 5
    # 1 November, 25 hours long there: nothing happened in it, and MD-1 was open all day.
    assert (sunday["summary"]["created"], sunday["daily"][0]["backlog"]) == (0, 1)
