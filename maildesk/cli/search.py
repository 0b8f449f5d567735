"""`maildesk search QUERY`: tickets whose mail holds every word, best first (docs/kb.md).

Subjects and bodies of the mail that came in (requesters', agents' replies); internal
notes only with `--internal`. The same data gives the same list on SQLite and PostgreSQL
(maildesk.store.search says how).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, print_json, print_table, with_session
from maildesk.store.search import search


def cmd_search(args: argparse.Namespace) -> int:
    """Search tickets' mail."""

    def load(app: App, session: Session) -> list[dict[str, Any]]:
        hits = search(
            session,
            args.query,
            queue=args.queue,
            status=args.status,
            requester=args.requester,
            internal=args.internal,
            limit=args.limit,
        )
        return [
            {
                "ref": app.ref(h.ticket_id),
                "subject": h.subject,
                "status": h.status,
                "queue": h.queue,
                "requester": h.requester,
                "score": h.score,
                "matches": h.matches,
                "snippet": h.snippet,
            }
            for h in hits
        ]

    rows = with_session(args, load, readonly=True)
    if args.json:
        print_json(rows)
        return EX_OK
    table = Table("ticket", "status", "queue", "subject", "snippet")
    for r in rows:
        table.add_row(r["ref"], r["status"], r["queue"], r["subject"], r["snippet"])
    print_table(table)
    if not rows:
        print("no ticket matches")
    return EX_OK


def add_search(parsers: Parsers) -> None:
    """`maildesk search QUERY [--queue Q] [--status S] [--requester A] [--internal]`."""
    sp = parsers.add("search", cmd_search, "search tickets' mail", [parsers.json_flag])
    sp.add_argument("query", help="words; a ticket matches when its mail holds all of them")
    sp.add_argument("--queue", help="only tickets in this queue")
    sp.add_argument("--status", help="only tickets with this status")
    sp.add_argument("--requester", help="only tickets of this requester (address)")
    sp.add_argument("--internal", action="store_true", help="search internal notes too")
    sp.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
