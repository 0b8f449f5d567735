"""`maildesk services [--json]`: every configured service with its state (operational,
degraded, outage), the open incidents that reach it and the changes that touch it
(docs/services.md, "Impact")."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, print_json, print_table, with_session
from maildesk.store.impact import services_json

NO_SERVICES = "no services: [[services]] is not configured (docs/services.md)"


def add_services(parsers: Parsers) -> None:
    """`maildesk services [--json]`."""
    parsers.add(
        "services",
        cmd_services,
        "services, their state, incidents and changes",
        [parsers.json_flag],
    )


def cmd_services(args: argparse.Namespace) -> int:
    """One row per configured service, in config order."""

    def load(app: App, session: Session) -> list[dict[str, Any]]:
        config = app.config
        return services_json(session, config.services, config.desk.ref_prefix, app.now())

    rows = with_session(args, load, readonly=True)
    if args.json:
        print_json(rows)
        return EX_OK
    if not rows:
        print(NO_SERVICES)
        return EX_OK
    table = Table("service", "state", "criticality", "queue", "depends on", "incidents", "changes")
    for r in rows:
        table.add_row(
            r["name"],
            r["state"],
            r["criticality"],
            r["queue"],
            " ".join(r["depends_on"]) or "-",
            " ".join(r["incidents"]) or "-",
            " ".join(r["changes"]) or "-",
        )
    print_table(table)
    return EX_OK
