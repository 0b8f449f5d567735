"""`maildesk ticket attachments ID` and `maildesk ticket attachment save ID NAME|N`: a
ticket's stored files, numbered as agent notices number them, and writing one out.

Every stored file is listed, also those agent notices leave out: images under `[notify]
min_image_bytes` (signature logos, tracking pixels) are marked hidden. A file is written
only where asked: into --out (a directory, or a file's path), by default the current
directory under its stored name made safe once more; an existing file is never replaced
without --force.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, err, print_json, print_table, with_session
from maildesk.errors import MaildeskError, NotFound
from maildesk.notify.files import is_hidden, size_text
from maildesk.parse.attachments import sanitise_filename
from maildesk.parse.bodies import cid_references
from maildesk.store import repo
from maildesk.store.models import Ticket

EX_EXISTS = 1  # the file is there already (and --force was not given)


def _ticket(session: Session, value: str) -> Ticket:
    number = value.rpartition("-")[2]
    ticket = session.get(Ticket, int(number)) if number.isdigit() else None
    if ticket is None:
        raise NotFound(f"ticket {value} not found (an id or ref like MD-42)")
    return ticket


def _files(app: App, session: Session, ticket: Ticket) -> list[tuple[int, dict[str, Any]]]:
    """The ticket's files: each attachment row's id, and the file as --json prints it."""
    files = repo.ticket_files(session, ticket.id)
    bodies = repo.message_html(session, {f.message_row for f in files if f.content_id})
    shown = {row: cid_references(html) for row, html in bodies.items()}
    minimum = app.config.notify.min_image_bytes
    return [
        (
            f.id,
            {
                "number": f.number,
                "filename": f.filename,
                "content_type": f.content_type,
                "size": f.size,
                "message_id": f.message_id,
                "inline": (f.content_id or "").strip().strip("<>")
                in shown.get(f.message_row, set()),
                "hidden": is_hidden(f.content_type, f.size, minimum),
                "internal": f.internal,
            },
        )
        for f in files
    ]


def file_rows(app: App, session: Session, value: str) -> list[dict[str, Any]]:
    """The files of ticket `value` as `ticket attachments --json` prints them."""
    return [row for _, row in _files(app, session, _ticket(session, value))]


def cmd_attachments(args: argparse.Namespace) -> int:
    """List a ticket's stored files."""
    rows = with_session(args, lambda app, s: file_rows(app, s, args.id), readonly=True)
    if args.json:
        print_json(rows)
        return EX_OK
    if not rows:
        print(f"{args.id}: no attachments")
        return EX_OK
    table = Table("#", "filename", "type", "size", "", "message")
    for r in rows:
        marks = [m for m in ("inline", "hidden", "internal") if r[m]]
        table.add_row(
            str(r["number"]),
            r["filename"],
            r["content_type"],
            size_text(r["size"]),
            " ".join(marks),
            r["message_id"],
        )
    print_table(table)
    return EX_OK


def _pick(
    files: list[tuple[int, dict[str, Any]]], which: str, ref: str
) -> tuple[int, dict[str, Any]]:
    """The file `which` names: its number, else its filename (exactly one)."""
    if which.isdigit():
        found = [f for f in files if f[1]["number"] == int(which)]
    else:
        found = [f for f in files if f[1]["filename"] == which]
    if not found:
        raise NotFound(
            f"{ref} has no attachment {which!r} (see: maildesk ticket attachments {ref})"
        )
    if len(found) > 1:
        numbers = ", ".join(str(f[1]["number"]) for f in found)
        raise MaildeskError(f"{ref} has several files named {which!r}: give a number ({numbers})")
    return found[0]


def _target(out: str | None, filename: str, number: int) -> Path:
    """Where the file goes: into the --out directory (or the current one) under its name,
    made safe again, or at the --out path itself."""
    name = sanitise_filename(filename, "application/octet-stream", number)
    base = Path(out) if out else Path.cwd()
    if out is None or base.is_dir():
        if Path(name).name != name or name in (".", ".."):  # never a path, checked again
            raise MaildeskError(f"refusing the stored name {filename!r}")
        return base / name
    if not base.parent.is_dir():
        raise MaildeskError(f"{out}: no such directory {str(base.parent)!r}")
    return base


def cmd_save(args: argparse.Namespace) -> int:
    """Write one stored file to disk."""

    def load(app: App, session: Session) -> tuple[str, dict[str, Any], bytes]:
        ticket = _ticket(session, args.id)
        ref = app.ref(ticket.id)
        row_id, row = _pick(_files(app, session, ticket), args.file, ref)
        return ref, row, repo.file_content(session, row_id) or b""

    ref, row, content = with_session(args, load, readonly=True)
    target = _target(args.out, row["filename"], row["number"])
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if args.force else os.O_EXCL)
    try:
        fd = os.open(target, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        err(f"maildesk: {target} exists; --force replaces it")
        return EX_EXISTS
    except OSError as exc:
        raise MaildeskError(f"{target}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    print(f"saved {ref} #{row['number']} {row['filename']} ({size_text(len(content))}) to {target}")
    return EX_OK


def add_to_ticket(ticket: Parsers, json_flag: argparse.ArgumentParser) -> None:
    """`maildesk ticket attachments ID` and `maildesk ticket attachment save ID NAME|N`."""
    sp = ticket.add(
        "attachments", cmd_attachments, "a ticket's stored files, numbered", [json_flag]
    )
    sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
    attachment = ticket.group("attachment", "one stored file of a ticket", "attachment_command")
    sp = attachment.add("save", cmd_save, "write a stored file to disk")
    sp.add_argument("id", help="ticket id or ref (42 or MD-42)")
    sp.add_argument("file", metavar="NAME|N", help="its number in `ticket attachments`, or name")
    sp.add_argument("--out", "-o", help="a directory, or the file to write (default: here)")
    sp.add_argument("--force", action="store_true", help="replace an existing file")
