"""`maildesk changes [--from DATE] [--to DATE] [--json]`: the change calendar, with each
change's CIs and services; the windows that overlap on the same queue, and the changes on
CIs with an open P1 incident, flagged."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, print_json, print_table, with_session
from maildesk.config.changes import parse_moment
from maildesk.errors import MaildeskError
from maildesk.tickets.changes import calendar
from maildesk.timefmt import local_text


def add_changes(parsers: Parsers) -> None:
    """`maildesk changes [--from DATE] [--to DATE] [--json]`."""
    sp = parsers.add("changes", cmd_changes, "the change calendar", [parsers.json_flag])
    sp.add_argument("--from", dest="start", help="from this date or time (desk timezone)")
    sp.add_argument("--to", dest="end", help="up to this date (inclusive) or time")


def _moment(value: str | None, timezone: str, *, end: bool) -> datetime | None:
    if value is None:
        return None
    try:
        moment = parse_moment(value, timezone)
    except ValueError as exc:
        raise MaildeskError(f"{value!r}: {exc}") from None
    date_only = len(value.strip()) == 10
    return moment + timedelta(days=1) if end and date_only else moment


def cmd_changes(args: argparse.Namespace) -> int:
    """Scheduled changes by window start."""

    def load(app: App, session: Session) -> list[dict[str, Any]]:
        zone = app.config.desk.timezone
        start = _moment(args.start, zone, end=False)
        end = _moment(args.end, zone, end=True)
        rows = calendar(app, session, start, end)
        for r in rows:
            window = r["change_window"]
            r["_when"] = f"{local_text(window['start'], zone)} - {local_text(window['end'], zone)}"
        return rows

    rows = with_session(args, load, readonly=True)
    if args.json:
        print_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        return EX_OK
    table = Table(
        "change", "window", "queue", "status", "assignee", "risk", "cis", "flags", "subject"
    )
    for r in rows:
        table.add_row(
            r["ref"],
            r["_when"],
            r["queue"],
            r["status"],
            r["assignee"] or "-",
            str(r["risk"] or "-"),
            _cis(r),
            _flags(r),
            r["subject"],
        )
    print_table(table)
    return EX_OK


def _cis(row: dict[str, Any]) -> str:
    """`mail01 web1 (email)`: the change's CIs, then its services."""
    cis = " ".join(row["cis"])
    services = f"({', '.join(row['services'])})" if row["services"] else ""
    return " ".join(filter(None, [cis, services])) or "-"


def _flags(row: dict[str, Any]) -> str:
    """OVERLAP (changes of its queue at the same time), P1 (open P1 incidents on its CIs)."""
    flags = []
    if row["p1_incidents"]:
        flags.append("P1 " + ", ".join(row["p1_incidents"]))
    if row["overlaps"]:
        flags.append("OVERLAP " + ", ".join(row["overlaps"]))
    return "; ".join(flags)
