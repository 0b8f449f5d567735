"""Turn raw RFC 5322 bytes into a ParsedMessage: the entry points of parsing.

Parsing is defensive: Python's email package raises on first access to some broken headers
and parts, and mail-parser on some broken trees, so every field is read through a guard and
falls back to something sensible. The bytes are parsed once by the standard library; the
tree is checked against MAX_PARTS and MAX_DEPTH (a message past them raises
MessageTooComplex and is quarantined) before mail-parser (only ever loaded here) reads a
broken tree a second time, and our own walk of the same tree collects attachments and
recovers text. Every text field is clean: no NUL characters, no lone surrogates, bounded
lengths that fit the store's columns. The steps live in maildesk.parse.tree (the MIME tree),
.headers (the header block), .bodies (text and HTML), .attachments and .text (charsets);
.tnef (winmail.dat) and .smime (opaque-signed S/MIME) open what Outlook packs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from maildesk.errors import NotMail
from maildesk.mail.message import ParsedMessage, minted_message_id
from maildesk.parse.attachments import attachments
from maildesk.parse.bodies import bodies, charsets
from maildesk.parse.headers import (
    addresses,
    as_sent,
    decode_words,
    first_id,
    first_values,
    fits_id,
    header_charsets,
    header_fields,
    header_text,
    mailboxes,
    message_ids,
    repair_header_block,
)
from maildesk.parse.limits import (
    MAX_CONTENT_TYPE,
    MAX_DEPTH,
    MAX_PARTS,
    MAX_REFERENCES,
    MAX_SUBJECT,
)
from maildesk.parse.text import WS, clean, safe
from maildesk.parse.tree import count_delimiters, defects, email_tree, walk
from maildesk.parse.uuencode import split_uuencoded

__all__ = ["Summary", "looks_like_mail", "parse_message", "summarise"]

log = logging.getLogger(__name__)

_HEADER_LINE = re.compile(rb"^(From |[\x21-\x39\x3b-\x7e]+:)")


@dataclass(frozen=True)
class Summary:
    """What the header block alone says: enough to list a message that cannot be parsed."""

    from_addr: str
    subject: str
    message_id: str


def looks_like_mail(raw: bytes) -> bool:
    """True when the bytes start with a header line (or an mbox 'From ' line), once the
    header block is repaired (see maildesk.parse.headers.repair_header_block)."""
    return _starts_with_header(repair_header_block(raw))


def _starts_with_header(repaired: bytes) -> bool:
    return bool(_HEADER_LINE.match(repaired))


def parse_message(
    raw: bytes, *, max_parts: int = MAX_PARTS, max_depth: int = MAX_DEPTH
) -> ParsedMessage:
    """Parse raw bytes; raise NotMail for input that has no header block at all, and
    MessageTooComplex for a MIME tree past the limits. The bytes are parsed with their
    header block repaired; `raw` itself is what the message id is minted from."""
    body = repair_header_block(raw)
    if not _starts_with_header(body):
        raise NotMail("input has no header block: not an email message")
    count_delimiters(body, max_parts)
    msg = email_tree(body)
    parts = walk(msg, max_parts, max_depth)
    found_defects = defects(parts)
    # mail-parser's second reading only helps where the tree is broken (it recovers parts
    # lost in an epilogue, for one); well-formed mail is read by our walk alone.
    mp = safe(lambda: _mailparser(msg), None) if found_defects else None
    fields = header_fields(body)
    first = first_values(fields)
    declared = tuple(clean(c) for c in safe(lambda: charsets(parts), ()))
    # Raw 8-bit header bytes and text in a wrong charset are tried in the charsets the
    # message declares before they are guessed.
    hints = declared + header_charsets(fields)

    message_id = first_id(header_text(first, "Message-ID"))
    if message_id is not None and not fits_id(message_id):
        message_id = None
    from_name, from_addr = next(iter(mailboxes(first, "From", hints)), ("", ""))
    text, html = bodies(mp, parts, hints)
    files = attachments(parts, mp, body)
    text, uuencoded = split_uuencoded(text, len(files))  # files pasted into the text
    subject = WS.sub(" ", header_text(first, "Subject", hints)).strip()
    return ParsedMessage(
        message_id=message_id or minted_message_id(raw),
        message_id_minted=message_id is None,
        subject=clean(subject)[:MAX_SUBJECT],
        from_addr=from_addr,
        from_name=from_name,
        to=addresses(first, "To", hints),
        cc=addresses(first, "Cc", hints),
        reply_to=addresses(first, "Reply-To", hints),
        in_reply_to=message_ids(header_text(first, "In-Reply-To"))[-MAX_REFERENCES:],
        references=message_ids(header_text(first, "References"))[-MAX_REFERENCES:],
        body_text=clean(text),
        body_html=clean(html),
        attachments=(*files, *uuencoded),
        headers=tuple((n, clean(decode_words(v, hints))) for n, v in as_sent(fields, hints)),
        content_type=clean(safe(lambda: msg.get_content_type(), "text/plain"))[:MAX_CONTENT_TYPE],
        defects=tuple(clean(d) for d in found_defects),
        size=len(raw),
        charsets=declared,
        raw_headers=tuple(as_sent(fields, hints)),
    )


def _mailparser(msg: Message) -> Any:
    """mail-parser's reading of a broken tree (loaded only when a tree is broken)."""
    import mailparser

    return mailparser.MailParser(msg)


def summarise(raw: bytes) -> Summary:
    """From, Subject and Message-ID read from the header block alone; never raises."""
    try:
        fields = header_fields(repair_header_block(raw[:256_000]))
        first, hints = first_values(fields), header_charsets(fields)
        from_addr = next(iter(mailboxes(first, "From", hints)), ("", ""))[1]
        subject = WS.sub(" ", header_text(first, "Subject", hints)).strip()
        message_id = first_id(header_text(first, "Message-ID")) or ""
        return Summary(from_addr, clean(subject)[:MAX_SUBJECT], clean(message_id)[:998])
    except Exception:  # a summary is a courtesy; unreadable is a fine answer
        return Summary("", "", "")
