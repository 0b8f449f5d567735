"""`maildesk problems`: problems with their incidents, age and known-error state; and the
problem keys of `ticket show --json` (problem, incidents, known_error, alert)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, print_json, print_table, with_session
from maildesk.config import Config
from maildesk.mail.message import ParsedMessage
from maildesk.routing.conditions import RouteContext
from maildesk.routing.monitors import recognise
from maildesk.store import repo
from maildesk.timefmt import iso


def add_problems(parsers: Parsers) -> None:
    """`maildesk problems [--json]`."""
    parsers.add("problems", cmd_problems, "problems and their incidents", [parsers.json_flag])


def cmd_problems(args: argparse.Namespace) -> int:
    """Every problem, newest first."""

    def load(app: App, session: Session) -> list[dict[str, Any]]:
        now = app.now()
        return [
            {
                "ref": app.ref(p.id),
                "subject": p.subject,
                "status": p.status,
                "queue": p.queue,
                "incidents": [app.ref(i.id) for i in repo.related(session, p.id, "incident")],
                "incident_count": count,
                "open_incidents": open_count,
                "known_error": p.known_error,
                "created_at": iso(p.created_at),
                "age_hours": round((now - p.created_at).total_seconds() / 3600, 1),
            }
            for p, count, open_count in repo.list_problems(session)
        ]

    rows = with_session(args, load, readonly=True)
    if args.json:
        print_json(rows)
        return EX_OK
    table = Table("problem", "status", "incidents", "open", "age", "known error", "subject")
    for r in rows:
        table.add_row(
            r["ref"],
            r["status"],
            str(r["incident_count"]),
            str(r["open_incidents"]),
            f"{r['age_hours']}h",
            "yes" if r["known_error"] else "no",
            r["subject"],
        )
    print_table(table)
    return EX_OK


def monitor_json(config: Config, msg: ParsedMessage, ctx: RouteContext) -> dict[str, Any] | None:
    """For `route test`: the monitor a message comes from and the alert keys it carries
    (each one incident), or None for mail from no monitor."""
    found = recognise(msg, config.monitors, ctx)
    if found is None:
        return None
    return {
        "monitor": found.monitor.name,
        "format": found.monitor.format,
        "alerts": [
            {
                "key": a.key,
                "state": a.state,
                "severity": a.severity,
                "priority": found.monitor.priority_of(a.severity),
            }
            for a in found.alerts
        ],
    }


def monitor_line(monitor: dict[str, Any]) -> str:
    """The `route test` line of a monitor's mail."""
    alerts = "; ".join(
        f"key {a['key']} {a['state']} {a['severity'] or '-'}" for a in monitor["alerts"]
    )
    found = alerts or "no alert it can read (an ordinary ticket)"
    return f"{monitor['monitor']} ({monitor['format']}): {found}"
