"""The requester's files in a notice to agents.

Up to `[notify] attach_limit` (decoded bytes, in all) the files of the message a notice is
about go with it, in the order they came, each that still fits; the others are named in the
notice with their size and the `maildesk ticket attachment save` command that writes them
out. Images under `[notify] min_image_bytes` (signature logos, tracking pixels) stay stored
on the message but are neither listed nor attached. An image the requester's HTML shows
(`cid:`) is shown in the notice's HTML part too, which then quotes that HTML (cleaned by
maildesk.parse.bodies.quotable_html) where the text part quotes the text.

Only mail from the requester side reaches agents this way, never an internal note, and a
flagged message (a stranger, a forged agent) has its files named, not attached. Nothing
here touches mail to requesters.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.mail.render import OutgoingAttachment, Rendered
from maildesk.parse.bodies import cid_references, quotable_html
from maildesk.store import repo
from maildesk.store.models import Message, Ticket


@dataclass(frozen=True)
class NoticeFiles:
    """What a notice says about a message's files, and what it carries."""

    listed: tuple[dict[str, Any], ...] = ()  # the template's `message.attachments`
    attachments: tuple[OutgoingAttachment, ...] = ()
    html: str | None = None  # the requester's HTML to quote, when it shows a carried image


NO_FILES = NoticeFiles()


def is_hidden(content_type: str, size: int, min_image_bytes: int) -> bool:
    """A signature logo or tracking pixel: an image smaller than `min_image_bytes`."""
    return content_type.lower().startswith("image/") and size < min_image_bytes


def save_command(ref: str, number: int) -> str:
    """The command line that saves file `number` of ticket `ref`."""
    return f"maildesk ticket attachment save {ref} {number}"


def size_text(size: int) -> str:
    """A size as people read it: 980 bytes, 14 KB, 2.4 MB (powers of 1000, as config)."""
    if size < 1000:
        return f"{size} bytes"
    if size < 1000**2:
        return f"{size / 1000:.0f} KB"
    return f"{size / 1000**2:.1f} MB"


def notice_files(
    app: App, session: Session, ticket: Ticket, message: Message | None, *, attach: bool
) -> NoticeFiles:
    """The files of `message` for a notice to agents; `attach` False names them only."""
    if message is None or not message.attachments:
        return NO_FILES
    config = app.config.notify
    attach = attach and message.direction == "in" and not message.internal
    session.flush()  # the message's files get their rows, and so their numbers
    numbers = {f.id: f.number for f in repo.ticket_files(session, ticket.id)}
    html_fits = len(message.body_html.encode("utf-8", "replace")) <= config.agent_notice_max_body
    shown_cids = cid_references(message.body_html) if attach and html_fits else set()
    budget = config.attach_limit
    listed: list[dict[str, Any]] = []
    carried: list[OutgoingAttachment] = []
    for a in message.attachments:
        if is_hidden(a.content_type, a.size, config.min_image_bytes):
            continue
        cid = (a.content_id or "").strip().strip("<>") or None
        inline = bool(cid and cid in shown_cids and a.content_type.startswith("image/"))
        fits = attach and a.size <= budget
        if fits:
            budget -= a.size
            carried.append(
                OutgoingAttachment(a.filename, a.content_type, a.content, cid if inline else None)
            )
        number = numbers.get(a.id, 0)
        listed.append(
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "size_text": size_text(a.size),
                "number": number,
                "attached": fits,
                "inline": inline and fits,
                "save": save_command(app.ref(ticket.id), number),
            }
        )
    kept = {a.content_id for a in carried if a.content_id}
    quoted = quotable_html(message.body_html, kept) if kept else None
    return NoticeFiles(tuple(listed), tuple(carried), quoted or None)


def with_quoted_html(rendered: Rendered, body_text: str, quoted: str | None) -> Rendered:
    """The notice with an HTML part: its text, escaped, with the requester's HTML where the
    text quotes the requester's text (at the end, before the notice's last lines, if the
    template does not quote it). A template's own HTML part is kept as it is."""
    if quoted is None or rendered.html is not None:
        return rendered
    text = rendered.text
    # The quote on lines of its own, so a subject line that repeats a short text is no match.
    at = text.find(f"\n{body_text}\n") if body_text.strip() else -1
    if at >= 0:
        before, after = text[: at + 1], text[at + 1 + len(body_text) :]
    else:
        cut = text.rfind("\n-- \n")
        before, after = (text[: cut + 1], text[cut + 1 :]) if cut >= 0 else (text, "")
    style = "white-space:pre-wrap;font-family:monospace"
    page = (
        f'<html><body><div style="{style}">{html.escape(before)}</div>\n'
        f"<div>{quoted}</div>\n"
        f'<div style="{style}">{html.escape(after)}</div></body></html>\n'
    )
    return replace(rendered, html=page)
