"""Report definitions: the desk's figures for a period, built once and shown as JSON, CSV,
an HTML file with charts, and (by the HTTP side) on the dashboard and at /api/reports.

`build_report(session, app_or_config, period, now)` returns a JSON-ready dict whose keys are
part of the contract (add keys freely; never rename or drop one). Dates are ISO 8601
(`YYYY-MM-DD`, days in the desk's timezone), instants ISO 8601 in UTC, durations whole
seconds of business time (the ticket's SLA policy calendar, 24x7 without a policy),
percentages 0-100 with one decimal, or null where nothing was measured.

    {
      "version": 1,
      "generated_at": "2026-11-30T12:00:00+00:00",
      "period": {"start": "2026-11-01", "end": "2026-11-30", "queue": null,
                 "timezone": "Europe/Berlin", "days": 30},
      "summary": {                      # one row
        "created": 10, "resolved": 6, "reopened": 1, "reopen_rate": 16.7,
        "backlog_start": 0, "backlog_end": 4,
        "first_response_breaches": 2, "resolution_breaches": 1,
        "mail_in": 25, "mail_out": 31, "quarantined": 1,
        "first_response_median_seconds": 3600, "first_response_p90_seconds": 7200,
        "resolution_median_seconds": 86400, "resolution_p90_seconds": 172800,
        "first_response_compliance": 80.0, "resolution_compliance": 83.3
      },
      "daily": [                        # one row per day of the period, in order
        {"date": "2026-11-01", "created": 2, "resolved": 0, "reopened": 0,
         "backlog": 2, "mail_in": 3, "mail_out": 4, "quarantined": 0}
      ],
      "times": [                        # first response and resolution, by group
        {"measure": "first_response" | "resolution",
         "group": "queue" | "priority" | "agent", "key": "it",
         "count": 4, "median_seconds": 3600, "p90_seconds": 5400}
      ],
      "sla": [                          # compliance by queue and by policy
        {"group": "queue" | "policy", "key": "standard",
         "first_response_measured": 5, "first_response_met": 4, "first_response_compliance": 80.0,
         "resolution_measured": 3, "resolution_met": 3, "resolution_compliance": 100.0}
      ],
      "breaches": [                     # each breach crossed in the period, oldest first
        {"ref": "MD-7", "queue": "it", "priority": "P1", "policy": "standard",
         "target": "first_response" | "resolution", "breached_at": "2026-11-03T10:00:00+00:00",
         "assignee": "agent@example.com" | null}
      ],
      "top_categories": [{"category": "printing" | null, "tickets": 3}],
      "top_requesters": [{"requester": "a@example.org", "name": "A", "tickets": 2}],
      "rules": [{"rule": "printers to it", "hits": 4}],   # rules that fired most
      "csat": null                      # satisfaction surveys: not recorded yet
    }

Which tickets count: created, first-response and resolution times, compliance and the top
lists are over tickets created in the period; resolved, reopened and breaches over those
events in the period; backlog is the tickets open (not resolved, closed or merged) at the end
of each day. With a queue, only that queue's tickets and their mail count (quarantined mail
has no queue and is counted only without one).

`charts(report)` draws the figures as SVG (matplotlib, Agg backend, deterministic output);
`render_html(report, charts)` makes one self-contained HTML page; `write_csv(report, out)`
writes one CSV per table (a directory) or a zip of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Config
from maildesk.errors import InvalidRequest
from maildesk.reports.charts import charts
from maildesk.reports.definitions import REPORT_VERSION, compute
from maildesk.reports.html import render_html
from maildesk.reports.tables import TABLES, csv_text, tables, write_csv

MAX_DAYS = 366  # the longest period one report covers

__all__ = [
    "MAX_DAYS",
    "REPORT_VERSION",
    "TABLES",
    "Period",
    "build_report",
    "charts",
    "csv_text",
    "render_html",
    "tables",
    "write_csv",
]


@dataclass(frozen=True)
class Period:
    """Whole days in the desk's timezone, `start` to `end` inclusive, and an optional queue."""

    start: date
    end: date
    queue: str | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidRequest(f"report period ends ({self.end}) before it starts ({self.start})")
        if self.days > MAX_DAYS:
            raise InvalidRequest(f"report period is {self.days} days; at most {MAX_DAYS} days")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def build_report(
    session: Session, app_or_config: App | Config, period: Period, now: datetime
) -> dict[str, Any]:
    """The figures for the period (keys as in this module's docstring); read-only."""
    config = app_or_config.config if isinstance(app_or_config, App) else app_or_config
    return compute(session, config, period.start, period.end, period.queue, now)
