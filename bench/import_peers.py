"""Bulk import: `maildesk import` against a bare loop, Roundup and django-helpdesk, same mail.

Every system gets the same seeded corpus (bench/corpus.py), differing only in the ticket
tag replies carry, which is each system's own syntax: `[MD-n]` for maildesk, `[issueN]` for
Roundup, `[support-n]` for django-helpdesk. All store in SQLite.

  floor           a bare loop in this process: read the mbox, parse each message with
                  mail-parser, INSERT it and COMMIT (WAL, synchronous=FULL): the least work
  maildesk        `maildesk import` (the repository's maildesk.toml)
  roundup         `roundup-mailgw TRACKER mailbox FILE`, classic tracker, PBKDF2 at 1,000
                  rounds (it hashes a random password for every new sender)
  roundup-stock   the same at the stock 250,000 rounds
  django-helpdesk `get_email` over a directory of .eml files

Each command runs once on an empty input first; its time there (interpreter start, imports,
opening the database) is subtracted, so msgs/s is the rate at which it handles mail
(`wall msgs/s` keeps the start-up in). Peak RSS is the process's VmHWM. After each run the
system's own database is read back: every message must be there, on the ticket of its
thread, with one ticket per thread, or the row says verified NO.

    python bench/import_peers.py [--messages N] [--quick] [--json] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import mailbox
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    Load,
    Run,
    check_run,
    check_threads,
    emit,
    machine,
    maildesk_bin,
    maildesk_threads,
    mark,
    run_measured,
    target,
    work_dir,
    write_config,
)
from corpus import CorpusInfo, CorpusOptions, cached_eml_dir, cached_mbox
from peers import Helpdesk, Roundup

SYSTEMS = ["floor", "maildesk", "roundup", "roundup-stock", "django-helpdesk"]


def rates(name: str, count: int, empty: Run, full: Run) -> dict[str, Any]:
    net = max(full.seconds - empty.seconds, 1e-9)
    return {
        "system": name,
        "messages": count,
        "seconds": round(full.seconds, 2),
        "startup_s": round(empty.seconds, 2),
        "msgs_per_s": round(count / net, 1),
        "ms_per_msg": round(1000 * net / count, 2),
        "wall_msgs_per_s": round(count / full.seconds, 1),
        "peak_rss_mib": full.peak_rss_mib,
    }


def verified(row: dict[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    row.update(
        tickets=check["tickets"],
        followups=check["followups"],
        verified=check["verified"],
    )
    if check["verified"] != "yes":
        row["check"] = check
    return row


def run_floor(messages: int, work: Path) -> dict[str, Any]:
    """Parse, insert, commit: the least a durable importer does per message."""
    import mailparser

    mbox, info = cached_mbox(CorpusOptions(messages=messages))
    db = sqlite3.connect(work / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE, sender TEXT,"
        " subject TEXT, body TEXT, raw BLOB)"
    )
    load = Load()
    start = time.perf_counter()
    box = mailbox.mbox(mbox, factory=None, create=False)
    for key in box.iterkeys():
        raw = box.get_bytes(key)
        parsed = mailparser.parse_from_bytes(raw)
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO messages (message_id, sender, subject, body, raw) VALUES (?, ?, ?, ?, ?)",
            (parsed.message_id, str(parsed.from_), parsed.subject, parsed.body, raw),
        )
        db.execute("COMMIT")
    box.close()
    seconds = time.perf_counter() - start
    stored = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    db.close()
    run = Run(seconds, 0, 0)
    row = rates("floor", messages, Run(0.0, 0, 0), run)
    row["peak_rss_mib"] = ""
    row["verified"] = "yes" if stored == info.messages else "NO"
    return mark(row, load)


def run_maildesk(messages: int, work: Path, db_url: str | None = None) -> dict[str, Any]:
    mbox, info = cached_mbox(CorpusOptions(messages=messages))
    config = write_config(work / "maildesk", db_url=db_url)
    log = config.parent / "maildesk.log"
    md = maildesk_bin()
    check_run(run_measured([md, "init", "--config", str(config)], log=log), "maildesk init", log)
    empty = config.parent / "empty.mbox"
    empty.write_bytes(b"")
    base = [md, "import", "--quiet", "--config", str(config)]
    first = run_measured([*base, str(empty)], cwd=config.parent, log=log)
    check_run(first, "maildesk import (empty)", log)
    load = Load()
    full = run_measured([*base, str(mbox)], cwd=config.parent, log=log)
    check_run(full, "maildesk import", log)
    row = mark(rates("maildesk", messages, first, full), load)
    url = db_url or f"sqlite:///{config.parent / 'var' / 'maildesk.db'}"
    return verified(row, check_threads(maildesk_threads(url), info))


def run_roundup(messages: int, work: Path, rounds: int | None) -> dict[str, Any]:
    name = "roundup" if rounds is not None else "roundup-stock"
    peer = Roundup(work / name, rounds=rounds)
    mbox, info = cached_mbox(CorpusOptions(messages=messages, tag_format=peer.tag_format))
    peer.prepare()
    empty = peer.run(None)
    load = Load()
    full = peer.run(mbox)
    row = mark(rates(name, messages, empty, full), load)
    return verified(row, check_threads(peer.threads(), info))


def run_helpdesk(messages: int, work: Path) -> dict[str, Any]:
    peer = Helpdesk(work / "django-helpdesk")
    eml, info = cached_eml_dir(CorpusOptions(messages=messages, tag_format=peer.tag_format))
    peer.prepare()
    empty = peer.run(None)
    load = Load()
    full = peer.run(eml)
    row = mark(rates("django-helpdesk", messages, empty, full), load)
    return verified(row, check_threads(peer.threads(), info))


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {r["system"]: r for r in rows}
    out = []
    md = by.get("maildesk")
    for peer in ("roundup", "django-helpdesk"):
        if md and peer in by:
            ratio = round(md["msgs_per_s"] / by[peer]["msgs_per_s"], 2)
            out.append(target(f"maildesk import msgs/s / {peer}", ratio, ">= 10", ratio >= 10))
    if md and "floor" in by:
        ratio = round(md["msgs_per_s"] / by["floor"]["msgs_per_s"], 2)
        out.append(target("maildesk import msgs/s / floor", ratio, "(for reference)", None))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=None, help="default 1000 (300 quick)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", choices=SYSTEMS, default=SYSTEMS)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    count = args.messages or (300 if args.quick else 1000)
    info: CorpusInfo = cached_mbox(CorpusOptions(messages=count))[1]
    rows: list[dict[str, Any]] = []
    versions: dict[str, str] = {}
    with work_dir("import", args.keep) as work:
        for system in args.only:
            if system == "floor":
                rows.append(run_floor(count, work))
            elif system == "maildesk":
                rows.append(run_maildesk(count, work))
            elif system == "roundup":
                rows.append(run_roundup(count, work, rounds=1000))
                versions.update(Roundup(work).versions())
            elif system == "roundup-stock":
                rows.append(run_roundup(count, work, rounds=None))
            elif system == "django-helpdesk":
                rows.append(run_helpdesk(count, work))
                versions.update(Helpdesk(work).versions())
    report = {
        "benchmark": "import_peers",
        "messages": count,
        "originals": info.originals,
        "replies": info.replies,
        "mbox_bytes": info.bytes,
        "machine": machine(),
        "versions": versions,
        "results": rows,
        "targets": targets(rows),
    }
    columns = [
        "system", "messages", "seconds", "startup_s", "msgs_per_s", "ms_per_msg",
        "wall_msgs_per_s", "peak_rss_mib", "tickets", "followups", "verified",
        "others_cores", "busy",
    ]  # fmt: skip
    emit(report, args.json, columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
