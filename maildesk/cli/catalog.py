"""`maildesk catalog` (the service catalog), `maildesk approvals` (requests waiting for their
approvers, with age) and `maildesk ticket approve|reject ID --as ADDR [-m TEXT]`."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, operator, print_json, print_table, with_session
from maildesk.config import load_config
from maildesk.errors import MaildeskError, NotFound
from maildesk.mail.address import normalise_address
from maildesk.notify.approval_notices import item_json
from maildesk.store import approvals as store
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.tickets import approvals, lifecycle
from maildesk.timefmt import iso


def add_catalog(parsers: Parsers) -> None:
    """`maildesk catalog [--json]` and `maildesk approvals [--json]`."""
    parsers.add("catalog", cmd_catalog, "the service catalog", [parsers.json_flag])
    parsers.add("approvals", cmd_approvals, "requests waiting for approval", [parsers.json_flag])


def add_ticket_decisions(ticket: Parsers) -> None:
    """`maildesk ticket approve|reject ID --as ADDR [-m TEXT]` (in the `ticket` group)."""
    for name, what in (("approve", "approve a request"), ("reject", "reject a request")):
        sp = ticket.add(name, cmd_ticket_decide, f"{what} as one of its approvers")
        sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
        sp.add_argument("--as", dest="as_approver", required=True, help="the approver's address")
        sp.add_argument("-m", "--message", default="", help="a comment (a rejection's reason)")
        sp.set_defaults(decision="approved" if name == "approve" else "rejected")


def cmd_catalog(args: argparse.Namespace) -> int:
    """The configured catalog items, with their fields and approvers."""
    config = load_config(args.config)
    rows = [{**item_json(i), "approvers": list(config.approvers_of(i))} for i in config.catalog]
    if args.json:
        print_json(rows)
        return EX_OK
    table = Table("name", "title", "type", "queue", "fields", "approval")
    for r in rows:
        fields = ", ".join(f["name"] + ("*" if f["required"] else "") for f in r["fields"])
        needs = (
            f"{r['approvals_required']} of {', '.join(r['approvers'])}" if r["approvers"] else "-"
        )
        table.add_row(r["name"], r["title"], r["type"], r["queue"] or "-", fields, needs)
    print_table(table)
    if not rows:
        print("no [[catalog]] items configured")
    return EX_OK


def cmd_approvals(args: argparse.Namespace) -> int:
    """Pending approvals of requests awaiting approval, oldest first, with their age."""

    def load(app: App, session: Session) -> list[dict[str, Any]]:
        now = app.now()
        return [
            {
                "ref": app.ref(t.id),
                "subject": t.subject,
                "catalog_item": t.catalog_item,
                "requester": t.requester.email,
                "approver": a.approver,
                "requested_at": iso(a.requested_at),
                "age_hours": round((now - a.requested_at).total_seconds() / 3600, 1),
                "reminded_at": iso(a.reminded_at),
            }
            for t, a in store.waiting_approvals(session)
        ]

    rows = with_session(args, load, readonly=True)
    if args.json:
        print_json(rows)
        return EX_OK
    table = Table("ref", "item", "approver", "age", "requester", "subject")
    for r in rows:
        age = f"{r['age_hours']}h"
        table.add_row(
            r["ref"], r["catalog_item"] or "-", r["approver"], age, r["requester"], r["subject"]
        )
    print_table(table)
    if not rows:
        print("no requests awaiting approval")
    return EX_OK


def cmd_ticket_decide(args: argparse.Namespace) -> int:
    """An approver's decision made at the command line (the OS user must be allowed to act
    as that address when [security] cli_agents is set)."""
    approver = normalise_address(args.as_approver)

    def act(app: App, session: Session) -> approvals.Decided:
        user = operator()
        if not app.config.security.may_act_as(user, approver):
            raise MaildeskError(
                f"OS user {user!r} may not act as {approver} ([security] cli_agents)"
            )
        session.info[repo.CLI_IDENTITY] = {"agent": None, "os_user": user}
        number = args.id.rpartition("-")[2]
        ticket = session.get(Ticket, int(number)) if number.isdigit() else None
        if ticket is None:
            raise NotFound(f"ticket {args.id} not found")
        ticket = lifecycle.resolve_merged(session, ticket)
        done = approvals.decide(
            app,
            session,
            ticket,
            approver,
            args.decision,
            comment=args.message,
            via="cli",
            proof=f"command line (OS user {user})",
            now=app.now(),
        )
        if not done.changed:
            raise MaildeskError(f"nothing changed: {done.text}")
        return done

    print(with_session(args, act).text)
    return EX_OK
