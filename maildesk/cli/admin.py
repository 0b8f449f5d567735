"""Commands for whoever sets up and watches the desk.

The database (`init`, `db upgrade`), `check-config`, dry-running the routing rules
(`route test`), the outbox of notifications, and `status` (backlog, queues, daemons).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table

from maildesk.app import App
from maildesk.cli import views
from maildesk.cli.common import EX_OK, Parsers, err, print_json, print_table, with_session
from maildesk.cli.learn import route_suggestions
from maildesk.cli.problems import monitor_json, monitor_line
from maildesk.config import load_config
from maildesk.errors import InvalidRequest, MaildeskError, NotFound, StoreUnavailable
from maildesk.mail.words import words
from maildesk.parse.parser import parse_message
from maildesk.routing.rules import decision_json, route
from maildesk.store import repo
from maildesk.store.db import create_db_engine, upgrade
from maildesk.terms import OUTBOX_STATUSES, OutboxStatus


def cmd_init(args: argparse.Namespace) -> int:
    """Create the database or bring its schema up to date."""
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


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply the schema migrations (the same as `init`)."""
    return cmd_init(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Load the config and its templates; any problem is a ConfigError (exit 2)."""
    from maildesk.app import check_stored_queues, load_templates

    config = load_config(args.config)
    load_templates(config)
    try:
        check_stored_queues(config)
    except StoreUnavailable as exc:
        err(f"maildesk: warning: queues not checked against their tickets: {exc}")
    print(
        f"{config.path}: OK ({len(config.queues)} queues, {len(config.agents)} agents, "
        f"{len(config.rules)} rules"
        + (f", {len(config.services)} services" if config.services else "")
        + (f", {len(config.inventory)} CIs" if config.cmdb.path else "")
        + ")"
    )
    return EX_OK


def cmd_route_test(args: argparse.Namespace) -> int:
    """Dry-run the rules on a message file: which matched, why, and what they decide."""
    config = load_config(args.config)
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        raise NotFound(f"route test: cannot read {args.file}: {exc.strerror}") from None
    msg = parse_message(raw)
    when = _at(args.at) if args.at else datetime.now().astimezone()
    if when.tzinfo is None:  # a bare time is the desk's local time
        when = when.replace(tzinfo=ZoneInfo(config.desk.timezone))
    cis = config.inventory.recognise(msg.subject, msg.body_text or "")
    ctx = config.route_context(when, args.recipient or config.smtp.accept[:1], cis)
    decision = route(
        msg,
        config.rules,
        config.default_queue.name,
        ctx,
        matrix=config.priority_matrix,
        explain=True,
    )
    decision, suggestions = route_suggestions(config, msg, decision, when)
    result = decision_json(decision)
    monitor = monitor_json(config, msg, ctx)
    if args.json:
        print_json(
            {
                "message": {"subject": msg.subject, "from": msg.from_addr, "to": list(msg.to)},
                "at": ctx.now.isoformat() if ctx.now else None,
                "rules": [
                    {"rule": r.rule, "matched": r.matched, "skipped": r.skipped, "reason": r.reason}
                    for r in decision.results
                ],
                "decision": result,
                "monitor": monitor,
                "suggestions": suggestions,
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
        f"{k}={words(v)}" for k, v in result.items() if k != "matched" and v not in (None, [])
    )
    print(f"decision: {shown}")
    if monitor is not None:
        print(f"monitor: {monitor_line(monitor)}")
    for s in suggestions:
        applied = ", applied" if s["applied"] else ""
        print(f"suggested {s['label']}: {s['value']} ({s['confidence']:.2f}{applied})")
    return EX_OK


def _at(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"route test --at: {text!r} is not a time (ISO, e.g. 2026-11-21T22:30 or "
            "2026-11-21T22:30+01:00)"
        ) from None


def cmd_outbox(args: argparse.Namespace) -> int:
    """List the outbox, or queue entries for another delivery attempt."""
    if args.action == "retry":
        return _outbox_retry(args)

    def load(app: App, session: Any) -> list[dict[str, Any]]:
        prefix = app.config.desk.ref_prefix
        return [views.outbox_json(e, prefix) for e in repo.list_outbox(session, status=args.status)]

    entries = with_session(args, load, readonly=True)
    if args.json:
        print_json(entries)
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
    print_table(table)
    return EX_OK


def _outbox_retry(args: argparse.Namespace) -> int:
    from maildesk.notify.sender import retry_entry

    if args.failed:

        def act(app: App, session: Any) -> list[int]:
            ids = [e.id for e in repo.list_outbox(session, status=OutboxStatus.FAILED)]
            for entry_id in ids:
                retry_entry(session, entry_id, app.now())
            return ids

        ids = with_session(args, act)
        print(f"{len(ids)} failed outbox entries queued for delivery")
        return EX_OK
    if not args.id or not args.id.isdigit():
        raise MaildeskError("usage: maildesk outbox retry ID | --failed")

    def one(app: App, session: Any) -> None:
        if retry_entry(session, int(args.id), app.now()) is None:
            raise NotFound(f"outbox entry {args.id} not found")

    with_session(args, one)
    print(f"outbox entry {args.id} queued for delivery")
    return EX_OK


def cmd_status(args: argparse.Namespace) -> int:
    """The backlog, the quarantine, the outbox and the daemons' heartbeats."""
    from maildesk.store import health

    def load(app: App, session: Any) -> dict[str, Any]:
        report = health.store_status(session, app.now(), app.spool)
        now = datetime.now(UTC)
        shares = health.daemon_shares(session, now)
        daemons = []
        for beat in health.heartbeats(session):
            try:
                age = (now - datetime.fromisoformat(beat["updated_at"])).total_seconds()
            except (KeyError, TypeError, ValueError):
                continue
            ident = f"{beat.get('host')}:{beat.get('pid')}"
            share = shares.get(ident, {"mailboxes": [], "claimed": 0})
            daemons.append(
                {
                    **beat,
                    "id": ident,
                    "age_seconds": round(age, 1),
                    "stale": age > health.STALE_AFTER,
                    "mailboxes": share["mailboxes"],
                    "claimed": share["claimed"] + _workers_claimed(beat, shares),
                    "backlog": report["pending"],
                }
            )
        return {**report, "daemons": daemons}

    report = with_session(args, load, readonly=True)
    if args.json:
        print_json(report)
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
        boxes = ", ".join(m["mailbox"] for m in d["mailboxes"]) or "none"
        print(
            f"daemon {d['host']} pid {d['pid']} port {d.get('port')}: {state}, "
            f"started {d.get('started_at')}, heartbeat {d['age_seconds']:.0f}s ago, "
            f"mailboxes held: {boxes}, {d['claimed']} pending claimed "
            f"(backlog {d['backlog']})"
        )
        for name, w in d.get("workers", {}).items():
            print(_worker_line(name, w))
    return EX_OK


def _workers_claimed(beat: dict[str, Any], shares: dict[str, dict[str, Any]]) -> int:
    """Pending mail a daemon's worker processes have claimed (each under its holder id),
    also put on each worker's entry as `claimed`."""
    total = 0
    for w in beat.get("workers", {}).values():
        if isinstance(w, dict) and w.get("holder"):
            w["claimed"] = int(shares.get(str(w["holder"]), {}).get("claimed", 0))
            total += w["claimed"]
    return total


def _worker_line(name: str, w: dict[str, Any]) -> str:
    """One worker of a daemon in `maildesk status`."""
    error = f", last error: {w['last_error']}" if w.get("last_error") else ""
    proc = (  # a pipeline worker process (`serve --workers N`)
        f" (process {w.get('pid') or 'restarting'}, claims as {w['holder']}, "
        f"{w.get('processed', 0)} processed, {w.get('claimed', 0)} claimed)"
        if w.get("holder")
        else ""
    )
    return f"  {name}{proc}: {w.get('restarts', 0)} restarts{error}"


# --- arguments ------------------------------------------------------------------------------


def add_init(parsers: Parsers) -> None:
    """`maildesk init`."""
    parsers.add("init", cmd_init, "create the database or bring it up to date")


def add_check_config(parsers: Parsers) -> None:
    """`maildesk check-config`."""
    parsers.add("check-config", cmd_check_config, "validate the config; exit 2 listing every error")


def add_route(parsers: Parsers) -> None:
    """`maildesk route test FILE [--at TIME] [--recipient ADDRESS ...]`."""
    routing = parsers.group("route", "routing tools", "route_command")
    sp = routing.add("test", cmd_route_test, "dry-run the rules on a message", [parsers.json_flag])
    sp.add_argument("--at", help="route as if at this time (ISO, e.g. 2026-11-21T22:30)")
    sp.add_argument(
        "--recipient", action="append", help="envelope recipient (default: first accepted)"
    )
    sp.add_argument("file", help="the message, as a file of RFC 5322 mail (.eml)")


def add_outbox(parsers: Parsers) -> None:
    """`maildesk outbox [list|retry] [ID] [--status S] [--failed]`."""
    sp = parsers.add(
        "outbox", cmd_outbox, "queued, sent and failed notifications", [parsers.json_flag]
    )
    sp.add_argument(
        "action",
        nargs="?",
        choices=["list", "retry"],
        default="list",
        help="list (default), or retry ID|--failed",
    )
    sp.add_argument("id", nargs="?", help="with retry: the entry's id in `outbox list`")
    sp.add_argument("--status", choices=OUTBOX_STATUSES, help="only entries in this state")
    sp.add_argument("--failed", action="store_true", help="with retry: every failed entry")


def add_status(parsers: Parsers) -> None:
    """`maildesk status`."""
    parsers.add(
        "status", cmd_status, "backlog, quarantine, outbox and running daemons", [parsers.json_flag]
    )


def add_db(parsers: Parsers) -> None:
    """`maildesk db upgrade`."""
    db = parsers.group("db", "database maintenance", "db_command")
    db.add("upgrade", cmd_db_upgrade, "apply schema migrations")
