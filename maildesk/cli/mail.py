"""Commands that take mail in: the MTA pipe, bulk import, IMAP polling (the daemon:
cli/serve.py).

Also the quarantine, where a message that could not be processed waits for an operator.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from maildesk import pipeline
from maildesk.app import App, Replay
from maildesk.cli import views
from maildesk.cli.common import (
    EX_DATAERR,
    EX_OK,
    EX_TEMPFAIL,
    Parsers,
    err,
    open_app,
    operator,
    print_json,
    print_table,
    with_session,
)
from maildesk.errors import ConfigError, MaildeskError, NotFound, StoreUnavailable
from maildesk.ingest import backlog, inbox
from maildesk.ingest.mailbox import check_mailbox, read_mailbox
from maildesk.parse.parser import looks_like_mail
from maildesk.store import repo
from maildesk.store.db import transaction
from maildesk.store.models import RawMessage
from maildesk.store.repo import LISTABLE
from maildesk.terms import SET_ASIDE

log = logging.getLogger("maildesk")


def cmd_deliver(args: argparse.Namespace) -> int:
    """Store and process one message from stdin; exit 75 makes the MTA retry later."""
    raw = sys.stdin.buffer.read()
    try:
        app = open_app(args)
    except ConfigError as exc:
        # Exit 75 so the MTA keeps the message and retries once the config is fixed.
        err(f"maildesk deliver: configuration error, message deferred:\n{exc}")
        return EX_TEMPFAIL
    except StoreUnavailable as exc:
        err(f"maildesk deliver: database unavailable, message deferred: {exc}")
        return EX_TEMPFAIL
    try:
        pending = backlog.over_limit(app, app.config.smtp.max_backlog)
        if pending is not None:  # as the listener's 451: the MTA keeps it until it drains
            err(f"maildesk deliver: {pending} messages pending ([smtp] max_backlog), deferred")
            return EX_TEMPFAIL
        rcpts = [args.recipient] if args.recipient else []
        # --sender ${sender} from Postfix's pipe(8); $SENDER from local(8) and procmail-likes
        sender = args.sender or os.environ.get("SENDER") or None
        raw_id = inbox.store_raw(
            app, raw, origin="deliver", envelope_from=sender, envelope_to=rcpts
        )
        try:
            outcome = pipeline.process(app, raw_id)
        except StoreUnavailable:
            return EX_OK  # stored; `maildesk serve` processes pending messages
        if not looks_like_mail(raw):
            err(f"maildesk deliver: input is not an email message; kept in quarantine as {raw_id}")
            return EX_DATAERR
        if args.verbose:
            err(f"{outcome.status} {outcome.ref or ''} {outcome.reason}".strip())
        return EX_OK
    finally:
        app.close()


def cmd_import(args: argparse.Namespace) -> int:
    """Ingest every message of an mbox file or a Maildir; importing again adds nothing twice.

    The mail is the mailbox's past: nothing is sent (each notification recorded as
    suppressed), tickets are dated by their messages, and one older than a day starts no
    SLA clock; `--notify` runs it as new mail instead.
    """
    path = Path(args.path)
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    check_mailbox(path)
    app = open_app(args)
    replay = Replay(historic=not args.notify)
    counts: dict[str, int] = {}
    try:
        since = _since(args.since, app.config.desk.timezone) if args.since else None
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
            statuses = pipeline.import_many(
                app,
                messages,
                save=inbox.save_raw,
                replay=replay,
                since=since,
                parse_ahead=_parse_ahead(total),
            )
            for status in statuses:
                counts[status] = counts.get(status, 0) + 1
                progress.advance(task)
    finally:
        app.close()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"imported {sum(counts.values())} messages from {path}: {summary or 'nothing'}")
    print(_replay_summary(replay))
    return EX_OK


# From this many messages on, on a machine with a second core, `import` parses the next
# messages in a second process while it stores (the process costs ~0.1 s to start).
PARSE_AHEAD_FROM = 50


def _parse_ahead(total: int) -> bool:
    return total >= PARSE_AHEAD_FROM and len(os.sched_getaffinity(0)) > 1


def _since(value: str, timezone: str) -> datetime:
    """`--since`: a day or a time (ISO 8601); without a zone, in the desk's timezone."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MaildeskError(
            f"import --since {value}: not a date or time (e.g. 2026-11-01 or 2026-11-01T08:00)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(timezone))


def _replay_summary(replay: Replay) -> str:
    """What the import mailed and what it did not, in words."""

    def kinds(counter: Counter[str]) -> str:
        return ", ".join(
            f"{n} {NOTICE_WORDS.get(k, k.replace('_', ' '))}" for k, n in sorted(counter.items())
        )

    if replay.historic:
        held = sum(replay.suppressed.values())
        line = (
            f"sent nothing: {held} notification(s) not sent ({kinds(replay.suppressed)}); "
            "use --notify to send them"
            if held
            else "sent nothing"
        )
        if replay.without_sla:
            line += f"; {replay.without_sla} ticket(s) older than a day started no SLA clock"
        return line
    sent = sum(replay.sent.values())
    return f"sent {sent} notification(s) ({kinds(replay.sent)})" if sent else "sent nothing"


# How the import summary names the notifications it counted.
NOTICE_WORDS = {
    "acknowledgement": "acknowledgements to requesters",
    "agent_new_ticket": "new-ticket notices to agents",
    "agent_requester_reply": "reply notices to agents",
    "agent_ticket_reopened": "reopened notices to agents",
    "relay": "agent replies relayed to requesters",
}


def cmd_poll(args: argparse.Namespace) -> int:
    """Read the IMAP mailboxes (or the one named) once."""
    from maildesk.ingest import imap

    app = open_app(args)
    try:
        boxes = [b for b in app.config.mailboxes if not args.name or b.name == args.name]
        if not boxes:
            if not app.config.mailboxes:
                raise NotFound("no IMAP mailboxes configured ([[mailboxes]] in the config)")
            known = ", ".join(b.name for b in app.config.mailboxes)
            raise NotFound(f"no mailbox {args.name} (known: {known})")
        failed = 0
        for box in boxes:
            try:
                report = imap.poll_once(app, box)
            except imap.MailboxError as exc:
                err(f"maildesk poll: {exc}")
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


def cmd_quarantine(args: argparse.Namespace) -> int:
    """List, show, retry or drop set-aside messages."""
    action = args.action or "list"
    if action == "list":
        return _quarantine_list(args)
    if action == "retry" and args.all:
        if args.status not in SET_ASIDE:
            raise MaildeskError(f"quarantine retry --all: cannot retry {args.status} messages")
        ids = with_session(args, lambda app, s: repo.quarantined_ids(s, _set_aside(args)))
    elif args.id and args.id.isdigit():
        ids = [int(args.id)]
    else:
        raise MaildeskError(
            f"usage: maildesk quarantine {action} ID" + (" | --all" if action == "retry" else "")
        )
    if action == "show":
        raw = with_session(args, lambda app, s: _quarantined(s, ids[0]).raw)
        sys.stdout.buffer.write(raw)
        return EX_OK
    if action == "drop":
        return _quarantine_drop(args, ids[0])
    return _quarantine_retry(args, ids)


def _quarantine_list(args: argparse.Namespace) -> int:
    rows = with_session(
        args,
        lambda app, s: [
            views.quarantine_json(r) for r in repo.list_quarantine(s, _set_aside(args))
        ],
    )
    if args.json:
        print_json(rows)
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
    print_table(table)
    return EX_OK


def _quarantine_drop(args: argparse.Namespace, raw_id: int) -> int:
    actor = operator()

    def drop(app: App, session: Session) -> str:
        row = _quarantined(session, raw_id, lock=True)
        return repo.drop_quarantined(
            session, row, actor=actor, why=args.reason or "", now=app.now()
        )

    reason = with_session(args, drop)
    log.warning("raw message %s removed from quarantine: %s", raw_id, reason)
    print(f"quarantined message {raw_id} dropped ({reason})")
    return EX_OK


def _quarantine_retry(args: argparse.Namespace, ids: list[int]) -> int:
    app = open_app(args)
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
    again = counts.get("quarantined", 0)
    if again:
        err(f"maildesk quarantine retry: {again} of {len(ids)} quarantined again (reasons above)")
        return EX_DATAERR
    return EX_OK


def _set_aside(args: argparse.Namespace) -> str:
    return "spam" if args.spam else str(args.status)


def _quarantined(session: Session, raw_id: int, *, lock: bool = False) -> RawMessage:
    row = repo.set_aside_message(session, raw_id, lock=lock)
    if row is None:
        raise NotFound(f"no quarantined message {raw_id}")
    return row


# --- arguments ------------------------------------------------------------------------------


def add_deliver(parsers: Parsers) -> None:
    """`maildesk deliver [--recipient ADDRESS]`."""
    sp = parsers.add("deliver", cmd_deliver, "ingest one message from stdin (MTA pipe transport)")
    sp.add_argument("--recipient", help="envelope recipient (e.g. Postfix ${recipient})")
    sp.add_argument(
        "--sender", help="envelope sender (e.g. Postfix ${sender}; default: $SENDER if set)"
    )


def add_import(parsers: Parsers) -> None:
    """`maildesk import PATH [--notify] [--since DATE] [--quiet]`."""
    sp = parsers.add(
        "import",
        cmd_import,
        "bulk ingest an mbox file or a Maildir (idempotent); sends nothing unless --notify",
    )
    sp.add_argument("path", help="an mbox file or a Maildir directory")
    sp.add_argument(
        "--notify",
        action="store_true",
        help="send acknowledgements and agent notices and start SLA clocks as for new mail "
        "(default: send nothing, date tickets by their messages, no SLA clock for tickets "
        "older than a day)",
    )
    sp.add_argument(
        "--since",
        metavar="DATE",
        help="only messages dated on or after DATE (ISO 8601, e.g. 2026-11-01; "
        "without a zone, in the desk's timezone)",
    )
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def add_quarantine(parsers: Parsers) -> None:
    """`maildesk quarantine [list|show|retry|drop] [ID]`."""
    sp = parsers.add(
        "quarantine", cmd_quarantine, "messages that could not be processed", [parsers.json_flag]
    )
    sp.add_argument(
        "action",
        nargs="?",
        choices=["list", "show", "retry", "drop"],
        help="list (default), show ID (the raw message), retry ID|--all, drop ID",
    )
    sp.add_argument("id", nargs="?", help="the message's id in `quarantine list`")
    sp.add_argument("--all", action="store_true", help="with retry: every quarantined message")
    sp.add_argument("--reason", help="with drop: why, kept in the record the drop leaves")
    sp.add_argument(
        "--status",
        choices=LISTABLE,
        default="quarantined",
        help="which set-aside messages: failed processing (default), dropped by a rule (spam), "
        "held from a flooding sender (flood), bounces of mail on no ticket (bounce), "
        "read receipts of mail on no ticket (receipt), fragments of a message sent in parts "
        "waiting for the rest (partial), and the records dropped ones leave (dropped)",
    )
    sp.add_argument("--spam", action="store_true", help="the same as --status spam")


def add_poll(parsers: Parsers) -> None:
    """`maildesk poll [NAME]`."""
    sp = parsers.add("poll", cmd_poll, "read the IMAP mailboxes once and exit (for cron)")
    sp.add_argument("name", nargs="?", help="only this [[mailboxes]] entry")
