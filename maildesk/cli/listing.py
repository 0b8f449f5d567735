"""`maildesk tickets`: the listing an agent works a day from, with the filters and sorts of
maildesk.store.listing; the `--as AGENT` option the ticket commands share."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table

from maildesk.app import App
from maildesk.cli import views
from maildesk.cli.common import EX_OK, Parsers, print_json, print_table, with_session
from maildesk.errors import MaildeskError
from maildesk.store.listing import SORTS, UNASSIGNED, TicketFilter, find_tickets
from maildesk.terms import Priority, Status
from maildesk.tickets.commands import AgentRef, find_agent
from maildesk.timefmt import local_text

AGENT_ENV = "MAILDESK_AGENT"


def cmd_tickets(args: argparse.Namespace) -> int:
    """List tickets: open ones newest first unless the options say otherwise."""

    def load(app: App, session: Any) -> tuple[str, list[dict[str, Any]]]:
        prefix = app.config.desk.ref_prefix
        rows = find_tickets(session, _ticket_filter(app, args))
        return app.config.desk.timezone, [views.ticket_json(t, prefix) for t in rows]

    zone, tickets = with_session(args, load, readonly=True)
    if args.json:
        print_json(tickets)
        return EX_OK
    table = Table(
        "ref", "status", "prio", "queue", "assignee", "requester", "subject",
        f"sla due ({zone})", "updated",
    )  # fmt: skip
    for t in tickets:
        table.add_row(
            t["ref"],
            t["status"],
            t["priority"],
            t["queue"],
            t["assignee"] or "-",
            t["requester"],
            t["subject"],
            local_iso(t["sla_due"], ZoneInfo(zone)),
            local_iso(t["updated_at"], ZoneInfo(zone)),
        )
    print_table(table)
    if not tickets:
        print("no tickets match" if args.all or args.status else "no open tickets match")
    return EX_OK


def _ticket_filter(app: App, args: argparse.Namespace) -> TicketFilter:
    """The listing the options of `maildesk tickets` ask for."""
    agents = [AgentRef(email=a.email, name=a.name) for a in app.config.agents]
    assignees = [_agent_address(a, agents) for a in args.assignee or []]
    if args.mine:
        who = args.as_agent or os.environ.get(AGENT_ENV)
        if not who:
            raise MaildeskError(
                f"--mine needs to know who you are: --as ADDRESS (or set ${AGENT_ENV})"
            )
        me = find_agent(who, agents)
        if me is None:
            known = ", ".join(a.email for a in agents) or "none configured"
            raise MaildeskError(f"{who!r} is not one agent of [[agents]] (agents: {known})")
        assignees.append(me.email)
    return TicketFilter(
        statuses=tuple(dict.fromkeys(args.status or [])),
        priorities=tuple(dict.fromkeys(args.priority or [])),
        queues=(args.queue,) if args.queue else (),
        assignees=tuple(dict.fromkeys(assignees)),
        everything=args.all,
        sort=args.sort,
        limit=args.limit,
        offset=args.offset,
    )


def _agent_address(value: str, agents: list[AgentRef]) -> str:
    """An `--assignee` value: an agent by address, local part or name, `none`, or as given."""
    if value.lower() == UNASSIGNED:
        return UNASSIGNED
    found = find_agent(value, agents)
    return found.email if found else value.strip().lower()


def local_iso(value: str | None, zone: ZoneInfo) -> str:
    """An ISO instant as the desk's local time, e.g. 'Mon 23 Nov 10:00'; '-' for none."""
    if not value:
        return "-"
    return local_text(value, zone)


def _one_of(valid: tuple[str, ...], what: str) -> Callable[[str], list[str]]:
    """An option value of comma-separated `valid` words (case as `valid` writes them)."""
    by_lower = {v.lower(): v for v in valid}

    def parse(value: str) -> list[str]:
        words = [w.strip() for w in value.split(",") if w.strip()]
        wrong = [w for w in words if w.lower() not in by_lower]
        if wrong or not words:
            raise argparse.ArgumentTypeError(f"{value!r}: {what} must be one of {', '.join(valid)}")
        return [by_lower[w.lower()] for w in words]

    return parse


def as_agent_option() -> argparse.ArgumentParser:
    """`--as AGENT`: who runs the command (default $MAILDESK_AGENT)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--as",
        dest="as_agent",
        metavar="AGENT",
        help=f"the agent you are: address, local part or name (default ${AGENT_ENV})",
    )
    return parser


def add_tickets(parsers: Parsers) -> None:
    """`maildesk tickets [--status S,..] [--priority P,..] [--assignee A] [--mine] [--all]
    [--sort due|updated|priority|created] [--queue Q] [--limit N] [--offset N]`."""
    sp = parsers.add(
        "tickets",
        cmd_tickets,
        "list tickets (open ones, newest first, unless told otherwise)",
        [parsers.json_flag, as_agent_option()],
    )
    statuses, priorities = tuple(str(s) for s in Status), tuple(str(p) for p in Priority)
    sp.add_argument(
        "--status",
        action="extend",
        type=_one_of(statuses, "status"),
        metavar="STATUS",
        help=f"only these (repeatable or comma-separated): {', '.join(statuses)}",
    )
    sp.add_argument(
        "--priority",
        action="extend",
        type=_one_of(priorities, "priority"),
        metavar="PRIORITY",
        help=f"only these (repeatable or comma-separated): {', '.join(priorities)}",
    )
    sp.add_argument(
        "--assignee",
        action="append",
        metavar="AGENT",
        help=f"assigned to this agent (address, local part or name; {UNASSIGNED!r}: nobody)",
    )
    sp.add_argument("--mine", action="store_true", help=f"assigned to you (--as or ${AGENT_ENV})")
    sp.add_argument("--all", action="store_true", help="resolved, closed and merged tickets too")
    sp.add_argument(
        "--sort",
        choices=SORTS,
        default="created",
        help="created (newest first, the default), updated (latest first), "
        "due (next SLA target soonest first), priority (P1 first)",
    )
    sp.add_argument("--queue", help="only this queue")
    sp.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    sp.add_argument("--offset", type=int, default=0, help="skip this many (of the order)")
