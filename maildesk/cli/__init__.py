"""The `maildesk` command. Only this module (and the daemon) decides exit codes and logging."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from maildesk import pipeline, views
from maildesk.app import App
from maildesk.config import Agent, load_config, resolve_config_path
from maildesk.errors import ConfigError, MaildeskError, NotFound, StoreUnavailable
from maildesk.ingest import inbox
from maildesk.ingest.mailbox import read_mailbox
from maildesk.parse.parser import looks_like_mail, parse_message
from maildesk.routing.rules import route
from maildesk.store import repo
from maildesk.store.db import create_db_engine, transaction, upgrade
from maildesk.store.models import RawMessage, Ticket
from maildesk.store.repo import LISTABLE
from maildesk.terms import OUTBOX_STATUSES, SET_ASIDE, OutboxStatus
from maildesk.tickets import lifecycle, replies
from maildesk.tickets.commands import AgentRef, find_agent
from maildesk.tickets.lifecycle import Actor

log = logging.getLogger("maildesk")
T = TypeVar("T")

AGENT_ENV = "MAILDESK_AGENT"
# `ticket set` keys and the mail command each one is.
SET_FIELDS = {
    "status": "status",
    "priority": "priority",
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
}

EX_OK, EX_USAGE, EX_CONFIG_INVALID = 0, 64, 2
EX_DATAERR, EX_TEMPFAIL, EX_SOFTWARE = 65, 75, 70


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EX_USAGE
    level = (
        logging.DEBUG
        if args.verbose
        else logging.INFO
        if args.command == "serve"
        else logging.WARNING
    )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # aiosmtpd logs every SMTP command at INFO, alembic every migration step, APScheduler
    # every run: too chatty. mail-parser warns about every odd message it reads; maildesk
    # logs what matters about those itself (one line per quarantined message).
    for noisy in ("mail.log", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    logging.getLogger("mailparser").setLevel(max(level, logging.ERROR))
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        _err(f"configuration error in {resolve_config_path(args.config)}:")
        for problem in exc.problems:
            _err(f"  {problem}")
        return EX_CONFIG_INVALID
    except StoreUnavailable as exc:
        _err(f"maildesk: database unavailable: {exc}")
        return EX_TEMPFAIL
    except NotFound as exc:
        _err(f"maildesk: {exc}")
        return 1
    except MaildeskError as exc:
        _err(f"maildesk: {exc}")
        return 1
    except BrokenPipeError:
        return EX_OK


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _print_table(table: Table) -> None:
    """Tables fit the terminal; piped into a file or grep they are not cut at 80 columns."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _app(args: argparse.Namespace, **kwargs: Any) -> App:
    return App.build(load_config(args.config), **kwargs)


# --- commands -----------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from maildesk.daemon import serve

    app = _app(args)
    try:
        return serve(app)
    finally:
        app.close()


def cmd_init(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    engine = create_db_engine(
        config.database.url,
        busy_timeout=config.database.busy_timeout,
        connect_timeout=config.database.connect_timeout,
    )
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    print(f"database ready: {engine.url.render_as_string(hide_password=True)}")
    return EX_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    from maildesk.app import load_templates

    config = load_config(args.config)
    load_templates(config)
    print(
        f"{config.path}: OK ({len(config.queues)} queues, {len(config.agents)} agents, "
        f"{len(config.rules)} rules)"
    )
    return EX_OK


def cmd_deliver(args: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read()
    try:
        app = _app(args)
    except ConfigError as exc:
        # Exit 75 so the MTA keeps the message and retries once the config is fixed.
        _err(f"maildesk deliver: configuration error, message deferred:\n{exc}")
        return EX_TEMPFAIL
    except StoreUnavailable as exc:
        _err(f"maildesk deliver: database unavailable, message deferred: {exc}")
        return EX_TEMPFAIL
    try:
        rcpts = [args.recipient] if args.recipient else []
        sender = os.environ.get("SENDER") or None  # set by Postfix's pipe(8) and others
        raw_id = inbox.store_raw(
            app, raw, origin="deliver", envelope_from=sender, envelope_to=rcpts
        )
        try:
            outcome = pipeline.process(app, raw_id)
        except StoreUnavailable:
            return EX_OK  # stored; `maildesk serve` processes pending messages
        if not looks_like_mail(raw):
            _err(f"maildesk deliver: input is not an email message; kept in quarantine as {raw_id}")
            return EX_DATAERR
        if args.verbose:
            _err(f"{outcome.status} {outcome.ref or ''} {outcome.reason}".strip())
        return EX_OK
    finally:
        app.close()


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    app = _app(args)
    counts: dict[str, int] = {}
    try:
        with (
            Progress(
                TextColumn("[bold]importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=args.quiet,
            ) as progress,
        ):
            total, messages = read_mailbox(path)
            task = progress.add_task("import", total=total)
            for status in pipeline.import_many(app, messages, save=inbox.save_raw):
                counts[status] = counts.get(status, 0) + 1
                progress.advance(task)
    finally:
        app.close()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"imported {sum(counts.values())} messages from {path}: {summary or 'nothing'}")
    return EX_OK


def cmd_route_test(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    raw = Path(args.file).read_bytes()
    msg = parse_message(raw)
    when = datetime.fromisoformat(args.at) if args.at else datetime.now().astimezone()
    if when.tzinfo is None:  # a bare time is the desk's local time
        when = when.replace(tzinfo=ZoneInfo(config.desk.timezone))
    ctx = config.route_context(when, args.recipient or config.smtp.accept[:1])
    decision = route(
        msg,
        config.rules,
        config.default_queue.name,
        ctx,
        matrix=config.priority_matrix,
        explain=True,
    )
    result = views.decision_json(decision)
    if args.json:
        _print_json(
            {
                "message": {"subject": msg.subject, "from": msg.from_addr, "to": list(msg.to)},
                "at": ctx.now.isoformat() if ctx.now else None,
                "rules": [
                    {"rule": r.rule, "matched": r.matched, "skipped": r.skipped, "reason": r.reason}
                    for r in decision.results
                ],
                "decision": result,
            }
        )
        return EX_OK
    print(
        f"message: {msg.subject!r} from {msg.from_addr}, routed at {ctx.now:%a %Y-%m-%d %H:%M %Z}"
    )
    for r in decision.results:
        mark = "skip " if r.skipped else "MATCH" if r.matched else "  -  "
        print(f"  {mark} {r.rule}: {r.reason}")
    shown = " ".join(
        f"{k}={v}" for k, v in result.items() if k != "matched" and v not in (None, [])
    )
    print(f"decision: {shown}")
    return EX_OK


def _with_session(
    args: argparse.Namespace, fn: Callable[[App, Any], Any], *, readonly: bool = False
) -> Any:
    app = _app(args)
    try:
        with transaction(app.sessions, readonly=readonly) as session:
            return fn(app, session)
    finally:
        app.close()


def cmd_tickets(args: argparse.Namespace) -> int:
    def load(app: App, session: Any) -> tuple[str, list[dict[str, Any]]]:
        prefix = app.config.desk.ref_prefix
        rows = repo.list_tickets(session, status=args.status, queue=args.queue, limit=args.limit)
        return prefix, [views.ticket_json(t, prefix) for t in rows]

    _prefix, tickets = _with_session(args, load, readonly=True)
    if args.json:
        _print_json(tickets)
        return EX_OK
    table = Table("ref", "status", "prio", "queue", "requester", "subject", "updated")
    for t in tickets:
        table.add_row(
            t["ref"],
            t["status"],
            t["priority"],
            t["queue"],
            t["requester"],
            t["subject"],
            (t["updated_at"] or "")[:16],
        )
    _print_table(table)
    return EX_OK


def _ticket_id(value: str) -> int:
    number = value.rpartition("-")[2]
    if not number.isdigit():
        raise NotFound(f"{value!r} is not a ticket id or ref like MD-42")
    return int(number)


def cmd_ticket_show(args: argparse.Namespace) -> int:
    ticket_id = _ticket_id(args.id)

    def load(app: App, session: Any) -> dict[str, Any]:
        ticket = repo.ticket_with_history(session, ticket_id)
        if ticket is None:
            raise NotFound(f"ticket {args.id} not found")
        return views.ticket_detail_json(
            ticket,
            app.config.desk.ref_prefix,
            watchers=repo.watchers(session, ticket.id),
            links=repo.links(session, ticket.id),
        )

    detail = _with_session(args, load, readonly=True)
    if args.json:
        _print_json(detail)
        return EX_OK
    print(f"{detail['ref']}  {detail['subject']}")
    print(
        f"status {detail['status']}  priority {detail['priority']}  queue {detail['queue']}  "
        f"type {detail['type']}  assignee {detail['assignee'] or '-'}  tags {detail['tags']}"
    )
    print(f"requester {detail['requester']}  created {detail['created_at']}")
    if detail["watchers"]:
        print(f"watchers {', '.join(detail['watchers'])}")
    for link in detail["links"]:
        print(f"linked {link['ticket']} ({link['relation']})")
    if detail["merged_into"]:
        print(f"merged into {detail['merged_into']}: its history is there now")
    for m in detail["messages"]:
        flag = " (internal)" if m["internal"] else ""
        to = ", ".join([*m["to"], *m["cc"]])
        print(f"\n--- {m['direction']} {m['kind']} {m['created_at']} {m['from']} -> {to}{flag}")
        print(f"Subject: {m['subject']}")
        print(m["body_text"].rstrip())
        for a in m["attachments"]:
            print(f"[attachment {a['filename']} {a['content_type']} {a['size']} bytes]")
    print("\nevents:")
    for e in detail["events"]:
        print(f"  {views.event_line(e)}")
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
    return agent


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
        _err("type the text, then Ctrl-D:")
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
        ticket = _ticket_for_change(app, session, args.id)
        now = app.now()
        message = replies.cli_message(app, session, ticket, agent, text, attachments, now)
        actor = Actor(agent.email, "cli", agent)
        result = replies.agent_reply(app, session, ticket, actor, message, text, now, internal=note)
        if result.errors:
            raise MaildeskError("nothing changed:\n  " + "\n  ".join(result.errors))
        return result

    result = _with_session(args, act)
    for change in result.changes:
        print(change)
    return EX_OK


def cmd_ticket_set(args: argparse.Namespace) -> int:
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
        who = agent.email if agent else f"cli:{_operator()}"
        ticket = _ticket_for_change(app, session, args.id)
        actor = Actor(who, "cli", agent)
        result = replies.set_fields(app, session, ticket, actor, "\n".join(lines), app.now())
        if result.errors:
            raise MaildeskError("nothing changed:\n  " + "\n  ".join(result.errors))
        return result

    result = _with_session(args, act)
    for change in result.changes or ["nothing needed changing"]:
        print(change)
    return EX_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    if args.action == "retry":
        return _outbox_retry(args)

    def load(app: App, session: Any) -> list[dict[str, Any]]:
        prefix = app.config.desk.ref_prefix
        return [views.outbox_json(e, prefix) for e in repo.list_outbox(session, status=args.status)]

    entries = _with_session(args, load, readonly=True)
    if args.json:
        _print_json(entries)
        return EX_OK
    table = Table("id", "ticket", "kind", "status", "tries", "to", "subject", "error")
    for e in entries:
        table.add_row(
            str(e["id"]),
            e["ticket"] or "",
            e["kind"],
            e["status"],
            str(e["attempts"]),
            ", ".join(e["to"]),
            e["subject"],
            e["last_error"] or "",  # the server's whole answer (wrapped)
        )
    _print_table(table)
    return EX_OK


def _outbox_retry(args: argparse.Namespace) -> int:
    from maildesk.notify.sender import retry_entry

    if args.failed:

        def act(app: App, session: Any) -> list[int]:
            ids = [e.id for e in repo.list_outbox(session, status=OutboxStatus.FAILED)]
            for entry_id in ids:
                retry_entry(session, entry_id, app.now())
            return ids

        ids = _with_session(args, act)
        print(f"{len(ids)} failed outbox entries queued for delivery")
        return EX_OK
    if not args.id or not args.id.isdigit():
        raise MaildeskError("usage: maildesk outbox retry ID | --failed")

    def one(app: App, session: Any) -> None:
        if retry_entry(session, int(args.id), app.now()) is None:
            raise NotFound(f"outbox entry {args.id} not found")

    _with_session(args, one)
    print(f"outbox entry {args.id} queued for delivery")
    return EX_OK


def cmd_quarantine(args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "list":
        return _quarantine_list(args)
    if action == "retry" and args.all:
        if args.status not in SET_ASIDE:
            raise MaildeskError(f"quarantine retry --all: cannot retry {args.status} messages")
        ids = _with_session(args, lambda app, s: repo.quarantined_ids(s, _set_aside(args)))
    elif args.id and args.id.isdigit():
        ids = [int(args.id)]
    else:
        raise MaildeskError(
            f"usage: maildesk quarantine {action} ID" + (" | --all" if action == "retry" else "")
        )
    if action == "show":
        raw = _with_session(args, lambda app, s: _quarantined(s, ids[0]).raw)
        sys.stdout.buffer.write(raw)
        return EX_OK
    if action == "drop":
        return _quarantine_drop(args, ids[0])
    return _quarantine_retry(args, ids)


def _quarantine_list(args: argparse.Namespace) -> int:
    rows = _with_session(
        args,
        lambda app, s: [
            views.quarantine_json(r) for r in repo.list_quarantine(s, _set_aside(args))
        ],
    )
    if args.json:
        _print_json(rows)
        return EX_OK
    table = Table("id", "received", "origin", "size", "from", "subject", "reason")
    for r in rows:
        table.add_row(
            str(r["id"]),
            (r["received_at"] or "")[:19],
            r["origin"],
            str(r["size"]),
            r["from"] or r["envelope_from"] or "?",
            r["subject"] or "?",
            (r["reason"] or "")[:80],
        )
    _print_table(table)
    return EX_OK


def _quarantine_drop(args: argparse.Namespace, raw_id: int) -> int:
    actor = _operator()

    def drop(app: App, session: Session) -> str:
        row = _quarantined(session, raw_id, lock=True)
        return repo.drop_quarantined(
            session, row, actor=actor, why=args.reason or "", now=app.now()
        )

    reason = _with_session(args, drop)
    log.warning("raw message %s removed from quarantine: %s", raw_id, reason)
    print(f"quarantined message {raw_id} dropped ({reason})")
    return EX_OK


def _quarantine_retry(args: argparse.Namespace, ids: list[int]) -> int:
    app = _app(args)
    counts: dict[str, int] = {}
    try:
        for raw_id in ids:
            with transaction(app.sessions) as session:
                repo.requeue_quarantined(session, _quarantined(session, raw_id, lock=True))
            outcome = pipeline.process(app, raw_id)
            status, detail = outcome.status, f"{outcome.ref or ''} {outcome.reason}".strip()
            if status == "skipped":  # a running daemon took it first: report where it went
                with transaction(app.sessions) as session:
                    row = session.get_one(RawMessage, raw_id)
                    status, detail = row.status, "processed by the running daemon"
            counts[status] = counts.get(status, 0) + 1
            print(f"{raw_id}: {status} {detail}".rstrip())
    finally:
        app.close()
    if len(ids) != 1:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"retried {len(ids)} messages: {summary or 'nothing to retry'}")
    return EX_OK


def _operator() -> str:
    """Who runs this command, for the record a drop leaves."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "operator"


def _set_aside(args: argparse.Namespace) -> str:
    return "spam" if args.spam else str(args.status)


def _quarantined(session: Session, raw_id: int, *, lock: bool = False) -> RawMessage:
    row = repo.set_aside_message(session, raw_id, lock=lock)
    if row is None:
        raise NotFound(f"no quarantined message {raw_id}")
    return row


def cmd_poll(args: argparse.Namespace) -> int:
    from maildesk.ingest import imap

    app = _app(args)
    try:
        boxes = [b for b in app.config.mailboxes if not args.name or b.name == args.name]
        if not boxes:
            known = ", ".join(b.name for b in app.config.mailboxes) or "none configured"
            raise NotFound(f"no mailbox {args.name!r} (known: {known})")
        failed = 0
        for box in boxes:
            try:
                report = imap.poll_once(app, box)
            except imap.MailboxError as exc:
                _err(f"maildesk poll: {exc}")
                failed += 1
                continue
            outcomes = [pipeline.process(app, raw_id) for raw_id in report.stored_ids]
            created = sum(o.status == "created" for o in outcomes)
            extra = f", {len(report.skipped_oversize)} over the size limit skipped"
            print(
                f"{box.name}: {report.stored} new message(s), {created} new ticket(s)"
                + (extra if report.skipped_oversize else "")
                + (" (UIDVALIDITY changed: rescanned)" if report.rescanned else "")
            )
        return EX_TEMPFAIL if failed else EX_OK
    finally:
        app.close()


def cmd_sla(args: argparse.Namespace) -> int:
    """Tickets at risk of missing their SLA, and those in breach (or all, with --all)."""
    from maildesk.tickets import sla as hooks

    def load(app: App, session: Session) -> list[dict[str, Any]]:
        now, prefix = app.now(), app.config.desk.ref_prefix
        rows = []
        for ticket in repo.sla_tickets(session):
            state = hooks.standing(ticket)
            if args.all or state in ("breached", "at risk"):
                used = hooks.consumed(app, ticket, now).total_seconds()
                rows.append(views.sla_json(ticket, prefix, state=state, consumed=used))
        order = {"breached": 0, "at risk": 1, "ok": 2, "paused": 3}
        return sorted(rows, key=lambda r: (order[r["state"]], r["resolution_due"] or "9", r["id"]))

    rows = _with_session(args, load, readonly=True)
    if args.json:
        _print_json(rows)
        return EX_OK
    zone = ZoneInfo(load_config(args.config).desk.timezone)
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
            _local(r["first_response_due"], zone) if not r["first_response_at"] else "answered",
            _local(r["resolution_due"], zone),
            r["subject"],
        )
    _print_table(table)
    if not rows:
        print("no tickets at risk or in breach" if not args.all else "no tickets under an SLA")
    return EX_OK


def _local(value: str | None, zone: ZoneInfo) -> str:
    """An ISO instant as the desk's local time, e.g. 'Mon 23 Nov 10:00'."""
    if not value:
        return "-"
    return (
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        .astimezone(zone)
        .strftime("%a %d %b %H:%M")
    )


def cmd_status(args: argparse.Namespace) -> int:
    from maildesk.store import health

    def load(app: App, session: Any) -> dict[str, Any]:
        report = health.store_status(session, app.now())
        now = datetime.now(UTC)
        daemons = []
        for beat in health.heartbeats(session):
            try:
                age = (now - datetime.fromisoformat(beat["updated_at"])).total_seconds()
            except (KeyError, TypeError, ValueError):
                continue
            daemons.append(
                {**beat, "age_seconds": round(age, 1), "stale": age > health.STALE_AFTER}
            )
        return {**report, "daemons": daemons}

    report = _with_session(args, load, readonly=True)
    if args.json:
        _print_json(report)
        return EX_OK
    oldest = report["oldest_pending_seconds"]
    print(
        f"backlog: {report['pending']} pending"
        + (f" (oldest {oldest:.0f}s)" if oldest is not None else "")
        + f", {report['quarantined']} quarantined"
    )
    print("outbox: " + ", ".join(f"{n} {status}" for status, n in report["outbox"].items()))
    if not report["daemons"]:
        print("daemons: none running (no heartbeat)")
    for d in report["daemons"]:
        state = "STALE" if d["stale"] else "alive"
        print(
            f"daemon {d['host']} pid {d['pid']} port {d.get('port')}: {state}, "
            f"heartbeat {d['age_seconds']:.0f}s ago"
        )
        for name, w in d.get("workers", {}).items():
            error = f", last error: {w['last_error']}" if w.get("last_error") else ""
            print(f"  {name}: {w.get('restarts', 0)} restarts{error}")
    return EX_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    return cmd_init(args)


# --- argument parser ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        default=argparse.SUPPRESS,
        help="config file (default: $MAILDESK_CONFIG or ./maildesk.toml)",
    )
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS)
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="machine-readable output")

    p = argparse.ArgumentParser(prog="maildesk", description=__doc__, parents=[common])
    p.set_defaults(config=None, verbose=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, parents=[common, *parents])
        sp.set_defaults(func=func)
        return sp

    add("serve", cmd_serve, "run the daemon (SMTP listener, pipeline, outbox sender)")
    add("init", cmd_init, "create the database or bring it up to date")
    add("check-config", cmd_check_config, "validate the config; exit 2 listing every error")
    sp = add("deliver", cmd_deliver, "ingest one message from stdin (MTA pipe transport)")
    sp.add_argument("--recipient", help="envelope recipient (e.g. Postfix ${recipient})")
    sp = add("import", cmd_import, "bulk ingest an mbox file or a Maildir (idempotent)")
    sp.add_argument("path")
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    route_p = sub.add_parser("route", help="routing tools")
    route_sub = route_p.add_subparsers(dest="route_command", metavar="ACTION", required=True)
    sp = route_sub.add_parser(
        "test", help="dry-run the rules on a message", parents=[common, json_flag]
    )
    sp.add_argument("--at", help="route as if at this time (ISO, e.g. 2026-11-21T22:30)")
    sp.add_argument(
        "--recipient", action="append", help="envelope recipient (default: first accepted)"
    )
    sp.add_argument("file")
    sp.set_defaults(func=cmd_route_test)

    sp = add("tickets", cmd_tickets, "list tickets", [json_flag])
    sp.add_argument("--status")
    sp.add_argument("--queue")
    sp.add_argument("--limit", type=int, default=1000)

    ticket_p = sub.add_parser("ticket", help="one ticket")
    ticket_sub = ticket_p.add_subparsers(dest="ticket_command", metavar="ACTION", required=True)
    sp = ticket_sub.add_parser(
        "show", help="a ticket with its messages and events", parents=[common, json_flag]
    )
    sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
    sp.set_defaults(func=cmd_ticket_show)
    as_agent = argparse.ArgumentParser(add_help=False)
    as_agent.add_argument(
        "--as",
        dest="as_agent",
        metavar="AGENT",
        help=f"the agent you are: address, local part or name (default ${AGENT_ENV})",
    )
    for name, what in (
        ("reply", "answer the requester (and watchers) as an agent; commands at the top apply"),
        ("note", "add an internal note (never sent to the requester)"),
    ):
        sp = ticket_sub.add_parser(name, help=what, parents=[common, as_agent])
        sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
        sp.add_argument("-m", "--message", help="the text (default: read from --file or stdin)")
        sp.add_argument("--file", "-f", help="read the text from this file")
        if name == "reply":
            sp.add_argument("--attach", action="append", help="attach a file (repeatable)")
            sp.add_argument(
                "--note", action="store_true", help="keep it internal (as `ticket note`)"
            )
        sp.set_defaults(func=cmd_ticket_reply, attach=None, note=False)
    sp = ticket_sub.add_parser(
        "set",
        help="change fields: status=resolved priority=P2 assignee=me queue=infra tags=+x,-y ...",
        parents=[common, as_agent],
    )
    sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
    sp.add_argument("changes", nargs="+", metavar="key=value", help=", ".join(SET_FIELDS))
    sp.set_defaults(func=cmd_ticket_set)

    sp = add("outbox", cmd_outbox, "queued, sent and failed notifications", [json_flag])
    sp.add_argument("action", nargs="?", choices=["list", "retry"], default="list")
    sp.add_argument("id", nargs="?")
    sp.add_argument("--status", choices=OUTBOX_STATUSES)
    sp.add_argument("--failed", action="store_true", help="with retry: every failed entry")

    sp = add("quarantine", cmd_quarantine, "messages that could not be processed", [json_flag])
    sp.add_argument("action", nargs="?", choices=["list", "show", "retry", "drop"])
    sp.add_argument("id", nargs="?")
    sp.add_argument("--all", action="store_true", help="with retry: every quarantined message")
    sp.add_argument("--reason", help="with drop: why, kept in the record the drop leaves")
    sp.add_argument(
        "--status",
        choices=LISTABLE,
        default="quarantined",
        help="which set-aside messages: failed processing (default), dropped by a rule (spam), "
        "held from a flooding sender (flood), bounces of mail on no ticket (bounce), "
        "and the records dropped ones leave (dropped)",
    )
    sp.add_argument("--spam", action="store_true", help="the same as --status spam")

    sp = add("sla", cmd_sla, "tickets at risk of missing their SLA and in breach", [json_flag])
    sp.add_argument("--all", action="store_true", help="every ticket under an SLA policy")

    sp = add("poll", cmd_poll, "read the IMAP mailboxes once and exit (for cron)")
    sp.add_argument("name", nargs="?", help="only this [[mailboxes]] entry")

    add("status", cmd_status, "backlog, quarantine, outbox and running daemons", [json_flag])

    db_p = sub.add_parser("db", help="database maintenance")
    db_sub = db_p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sp = db_sub.add_parser("upgrade", help="apply schema migrations", parents=[common])
    sp.set_defaults(func=cmd_db_upgrade)
    return p
