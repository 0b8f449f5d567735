"""Commands for agents: list and show tickets; reply, note and set fields from the shell.

Also `sla`: which tickets are at risk of missing their SLA, and which are in breach.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli import attachments, catalog, views
from maildesk.cli.common import EX_OK, Parsers, err, operator, print_json, print_table, with_session
from maildesk.cli.listing import AGENT_ENV, as_agent_option, local_iso
from maildesk.cli.listing import add_tickets as add_tickets  # registered with the others
from maildesk.config import Agent
from maildesk.errors import MaildeskError, NotFound
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.store.views import ticket_detail
from maildesk.tickets import lifecycle, replies
from maildesk.tickets.commands import AgentRef, find_agent
from maildesk.tickets.lifecycle import Actor
from maildesk.tickets.sla import standing

T = TypeVar("T")

# `ticket set` keys and the mail command each one is.
SET_FIELDS = {
    "status": "status",
    "priority": "priority",
    "impact": "impact",
    "urgency": "urgency",
    "assignee": "assign",
    "assign": "assign",
    "queue": "queue",
    "type": "type",
    "category": "category",
    "tags": "tag",
    "tag": "tag",
    "watchers": "cc",
    "cc": "cc",
    "merge": "merge",
    "link": "link",
    "unlink": "unlink",
    "problem": "problem",
    "known_error": "known-error",
    "window": "schedule",
    "cis": "ci",
    "ci": "ci",
}


def _ticket_id(value: str) -> int:
    number = value.rpartition("-")[2]
    if not number.isdigit():
        raise NotFound(f"{value!r} is not a ticket id or ref like MD-42")
    return int(number)


def cmd_ticket_show(args: argparse.Namespace) -> int:
    """One ticket with its messages and events."""
    ticket_id = _ticket_id(args.id)

    def load(app: App, session: Any) -> tuple[str, dict[str, Any], str | None]:
        detail = ticket_detail(session, ticket_id, app.config.desk.ref_prefix)
        ticket = session.get(Ticket, ticket_id)
        if detail is None or ticket is None:
            raise NotFound(f"ticket {args.id} not found")
        return app.config.desk.timezone, detail, standing(ticket) if ticket.sla_policy else None

    zone, detail, sla_state = with_session(args, load, readonly=True)
    if args.json:
        print_json(detail)
        return EX_OK
    for line in views.show_text(detail, zone, sla_state):
        print(line)
    return EX_OK


def _agent_for(app: App, who: str | None, *, required: bool) -> Agent | None:
    """The agent a CLI change is made as (--as, else $MAILDESK_AGENT)."""
    who = who or os.environ.get(AGENT_ENV)
    if not who:
        if required:
            raise MaildeskError(f"say which agent you are: --as ADDRESS (or set ${AGENT_ENV})")
        return None
    found = find_agent(who, [AgentRef(email=a.email, name=a.name) for a in app.config.agents])
    agent = app.config.agent(found.email) if found else None
    if agent is None:
        known = ", ".join(a.email for a in app.config.agents) or "none configured"
        raise MaildeskError(f"{who!r} is not one agent of [[agents]] (agents: {known})")
    user = operator()
    if not app.config.security.may_act_as(user, agent.email):
        raise MaildeskError(
            f"OS user {user!r} may not act as {agent.email} ([security] cli_agents)"
        )
    return agent


def _record_identity(session: Session, agent: Agent | None) -> None:
    """Every event this command writes records the agent and the OS user who ran it."""
    identity = {"agent": agent.email if agent else None, "os_user": operator()}
    session.info[repo.CLI_IDENTITY] = identity


def _ticket_for_change(app: App, session: Session, value: str) -> Ticket:
    ticket = session.get(Ticket, _ticket_id(value))
    if ticket is None:
        raise NotFound(f"ticket {value} not found")
    final = lifecycle.resolve_merged(session, ticket)
    if final.id != ticket.id:
        print(f"{app.ref(ticket.id)} was merged into {app.ref(final.id)}; acting on that")
    return final


def _read(path: str, read: Callable[[Path], T]) -> T:
    """A file named on the command line; a missing or unreadable one is a clear error."""
    try:
        return read(Path(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise MaildeskError(f"{path}: {exc}") from exc


def _reply_text(args: argparse.Namespace) -> str:
    if args.message is not None:
        return str(args.message)
    if args.file:
        return _read(args.file, lambda p: p.read_text(encoding="utf-8"))
    if sys.stdin.isatty():
        err("type the text, then Ctrl-D:")
    return sys.stdin.read()


def cmd_ticket_reply(args: argparse.Namespace) -> int:
    """An agent's reply or note from the command line: the same path as one by mail."""
    text = _reply_text(args).strip()
    note = args.ticket_command == "note" or bool(args.note)
    if not text:
        raise MaildeskError("empty text: nothing to " + ("note" if note else "send"))
    attachments = [(Path(p).name, _read(p, Path.read_bytes)) for p in args.attach or []]

    def act(app: App, session: Session) -> replies.ReplyResult:
        agent = _agent_for(app, args.as_agent, required=True)
        assert agent is not None
        _record_identity(session, agent)
        ticket = _ticket_for_change(app, session, args.id)
        now = app.now()
        message = replies.cli_message(app, session, ticket, agent, text, attachments, now)
        actor = Actor(agent.email, "cli", agent)
        result = replies.agent_reply(app, session, ticket, actor, message, text, now, internal=note)
        if result.errors:
            raise MaildeskError("nothing changed:\n  " + "\n  ".join(result.errors))
        return result

    result = with_session(args, act)
    for change in result.changes:
        print(change)
    return EX_OK


def cmd_ticket_set(args: argparse.Namespace) -> int:
    """Change ticket fields as an agent's mail commands would."""
    lines = []
    for pair in args.changes:
        key, eq, value = pair.partition("=")
        if not eq or key.strip().lower() not in SET_FIELDS:
            raise MaildeskError(
                f"{pair!r}: expected key=value with key one of {', '.join(SET_FIELDS)}"
            )
        lines.append(f"#{SET_FIELDS[key.strip().lower()]} {value.strip()}")

    def act(app: App, session: Session) -> replies.ReplyResult:
        agent = _agent_for(app, args.as_agent, required=False)
        who = agent.email if agent else f"cli:{operator()}"
        _record_identity(session, agent)
        ticket = _ticket_for_change(app, session, args.id)
        actor = Actor(who, "cli", agent)
        result = replies.set_fields(app, session, ticket, actor, "\n".join(lines), app.now())
        if result.errors:
            raise MaildeskError("nothing changed:\n  " + "\n  ".join(result.errors))
        return result

    result = with_session(args, act)
    for change in result.changes or ["nothing needed changing"]:
        print(change)
    return EX_OK


def cmd_ticket_broadcast(args: argparse.Namespace) -> int:
    """`#broadcast` from the command line: the affected services' subscribers are told."""
    text = _reply_text(args).strip()
    if not text:
        raise MaildeskError("empty text: nothing to broadcast")
    lines = "\n".join(f"#broadcast {line.strip()}" for line in text.splitlines() if line.strip())

    def act(app: App, session: Session) -> replies.ReplyResult:
        agent = _agent_for(app, args.as_agent, required=True)
        assert agent is not None
        _record_identity(session, agent)
        ticket = _ticket_for_change(app, session, args.id)
        actor = Actor(agent.email, "cli", agent)
        result = replies.set_fields(app, session, ticket, actor, lines, app.now())
        if result.errors:
            raise MaildeskError("nothing sent:\n  " + "\n  ".join(result.errors))
        return result

    for change in with_session(args, act).changes:
        print(change)
    return EX_OK


def cmd_sla(args: argparse.Namespace) -> int:
    """Tickets at risk of missing their SLA, and those in breach (or all, with --all)."""
    from maildesk.tickets import sla as hooks

    def load(app: App, session: Session) -> tuple[str, list[dict[str, Any]]]:
        rows = hooks.standings(app, session, app.now(), everything=args.all)
        return app.config.desk.timezone, rows

    timezone, rows = with_session(args, load, readonly=True)
    if args.json:
        print_json(rows)
        return EX_OK
    zone = ZoneInfo(timezone)
    table = Table(
        "ref",
        "state",
        "status",
        "prio",
        "policy",
        "assignee",
        "used",
        "first response due",
        "resolution due",
        "subject",
    )
    for r in rows:
        minutes = r["consumed_seconds"] // 60
        table.add_row(
            r["ref"],
            r["state"],
            r["status"],
            r["priority"],
            r["policy"],
            r["assignee"] or "-",
            f"{minutes // 60}h{minutes % 60:02d}",
            local_iso(r["first_response_due"], zone) if not r["first_response_at"] else "answered",
            local_iso(r["resolution_due"], zone),
            r["subject"],
        )
    print_table(table)
    if not rows:
        print("no tickets at risk or in breach" if not args.all else "no tickets under an SLA")
    return EX_OK


# --- arguments ------------------------------------------------------------------------------


def add_ticket(parsers: Parsers) -> None:
    """`maildesk ticket show|reply|note|set|broadcast|attachments|attachment save ID ...`."""
    ticket = parsers.group("ticket", "one ticket", "ticket_command")
    sp = ticket.add(
        "show", cmd_ticket_show, "a ticket with its messages and events", [parsers.json_flag]
    )
    sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
    as_agent = as_agent_option()
    for name, what in (
        ("reply", "answer the requester (and watchers) as an agent; commands at the top apply"),
        ("note", "add an internal note (never sent to the requester)"),
    ):
        sp = ticket.add(name, cmd_ticket_reply, what, [as_agent])
        sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
        sp.add_argument("-m", "--message", help="the text (default: read from --file or stdin)")
        sp.add_argument("--file", "-f", help="read the text from this file")
        if name == "reply":
            sp.add_argument("--attach", action="append", help="attach a file (repeatable)")
            sp.add_argument(
                "--note", action="store_true", help="keep it internal (as `ticket note`)"
            )
        sp.set_defaults(attach=None, note=False)
    sp = ticket.add(
        "set",
        cmd_ticket_set,
        "change fields: status=resolved priority=P2 impact=high assignee=me tags=+x,-y ...",
        [as_agent],
    )
    sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
    sp.add_argument("changes", nargs="+", metavar="key=value", help=", ".join(SET_FIELDS))
    sp = ticket.add(
        "broadcast", cmd_ticket_broadcast, "tell an incident's services' subscribers", [as_agent]
    )
    sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
    sp.add_argument("-m", "--message", help="the text (default: read from --file or stdin)")
    sp.add_argument("--file", "-f", help="read the text from this file")
    attachments.add_to_ticket(ticket, parsers.json_flag)
    catalog.add_ticket_decisions(ticket)


def add_sla(parsers: Parsers) -> None:
    """`maildesk sla [--all]`."""
    sp = parsers.add(
        "sla", cmd_sla, "tickets at risk of missing their SLA and in breach", [parsers.json_flag]
    )
    sp.add_argument("--all", action="store_true", help="every ticket under an SLA policy")
