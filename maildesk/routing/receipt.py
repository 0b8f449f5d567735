"""Is this message a read receipt, and of which message? Pure checks over a parsed message
and its bytes.

A receipt (a message disposition notification, RFC 8098) says what became of a message we
sent: displayed (read), deleted unread, dispatched, processed, failed. It is machine mail
(RFC 3834: never answered) and not a reply: it goes on the ticket as a record and changes
nothing. Three forms are taken for one:

- the standard report: multipart/report; report-type=disposition-notification, with a
  message/disposition-notification part (Disposition, Final-Recipient, Original-Message-ID);
- Exchange's marker `Content-Class: urn:content-classes:mdn`, whatever the body;
- a subject such as "Read:", "Gelesen:", "Lu :" (Outlook's receipts in its languages) *and*
  a body that is the receipt's fixed text ("Your message ... was read on ..."). A subject
  alone is never enough: people write "Read: the attached manual" too.

The message it refers to: Original-Message-ID of the report, then In-Reply-To/References,
then any Message-ID the report quotes (its text/rfc822-headers part).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from maildesk.mail.message import ParsedMessage

# How a mail client names a receipt in the subject: Outlook in English, German, French,
# Spanish, Italian, Dutch, Swedish, Danish/Norwegian, Finnish, Portuguese, Polish, Czech;
# "Not read:" and its kin are a receipt for a message deleted unread.
_READ_SUBJECT = re.compile(
    r"^\s*(?:(?:read|gelesen|lu|le[ií]do|letto|gelezen|läst|læst|lest|luettu|lida|lido|"
    r"odczytano|přečteno)\s*:|(?:return receipt|read receipt|lesebestätigung|"
    r"accusé de lecture)\s*(?:\([^)]{1,40}\))?\s*[:-])",
    re.I,
)
_UNREAD_SUBJECT = re.compile(
    r"^\s*(not read|nicht gelesen|non lu|no le[ií]do|non letto|niet gelezen|ej läst|"
    r"ikke læst|ikke lest|ei luettu|não lida|nie odczytano|nepřečteno)\s*:",
    re.I,
)
# The fixed text of a receipt: "Your message ... was read on <date>" in the languages above.
# Anchored at the start of the body and only in a short body, so a person quoting one in a
# mail of their own is not taken for it.
_RECEIPT_TEXT = re.compile(
    r"\A\s*(?:"
    r"your message\b.{0,1500}?\bwas (?:read|deleted without being read) on\b"
    r"|ihre nachricht\b.{0,1500}?\bwurde am\b.{0,200}?\b(?:gelesen|ungelesen gelöscht)\b"
    r"|votre message\b.{0,1500}?\ba été (?:lu|supprimé sans avoir été lu) le\b"
    r"|su mensaje\b.{0,1500}?\b(?:se ha leído|se leyó|fue leído|ha sido leído|"
    r"se eliminó sin leerse)\b"
    r"|il (?:tuo )?messaggio\b.{0,1500}?\bè stato (?:letto|eliminato senza essere letto)\b"
    r"|uw bericht\b.{0,1500}?\bis (?:gelezen|ongelezen verwijderd) op\b"
    r"|this is a return receipt for the mail that you sent\b"
    r")",
    re.I | re.S,
)
MAX_RECEIPT_TEXT = 3000  # characters: a receipt's text part is a few lines
_MDN_PART = re.compile(
    rb"^Content-Type:[ \t]*message/(?:global-)?disposition-notification", re.I | re.M
)
_DISPOSITION = re.compile(
    rb"^Disposition:[ \t]*([\w-]+)[ \t]*/[ \t]*([\w-]+)[ \t]*;[ \t]*([\w-]+)"
    rb"(?:[ \t]*/[ \t]*([\w-]+(?:[ \t]*,[ \t]*[\w-]+)*))?",
    re.I | re.M,
)
_FINAL_RECIPIENT = re.compile(
    rb"^Final-Recipient:[ \t]*[\w.-]+[ \t]*;[ \t]*<?([^\s<>]+@[^\s<>]+)>?", re.I | re.M
)
_ORIGINAL_ID = re.compile(rb"^Original-Message-ID:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# A Message-ID the report quotes (its text/rfc822-headers part, a quoted header block).
_QUOTED_ID = re.compile(rb"^(?:Original-)?Message-ID:[ \t]*(<[^<>\s@]+@[^<>\s@]+>)", re.I | re.M)
MDN_CLASS = "urn:content-classes:mdn"


@dataclass(frozen=True)
class Receipt:
    """What a receipt says: what became of which of our messages, for whom, and how sent."""

    original_ids: tuple[str, ...]  # the Message-IDs it refers to, the likeliest first
    disposition: str  # displayed, deleted, dispatched, processed, denied, failed; "" unknown
    modifiers: tuple[str, ...]  # e.g. ("error",), ("expired",)
    action_mode: str  # "automatic-action" or "manual-action" ("" unknown)
    sending_mode: str  # "MDN-sent-automatically" or "MDN-sent-manually" ("" unknown)
    reporter: str  # whose receipt: Final-Recipient, else From
    standard: bool  # an RFC 8098 report with a disposition-notification part
    recognised_by: str  # why it is taken for a receipt

    @property
    def automatic(self) -> bool | None:
        """Sent without the reader's say (None: the receipt does not tell)."""
        if not self.sending_mode:
            return None
        return self.sending_mode.lower() == "mdn-sent-automatically"


def recognise(msg: ParsedMessage, raw: bytes) -> Receipt | None:
    """The receipt this message is, or None for anything else (a delivery report included)."""
    content_type = (msg.header("content-type") or "").lower()
    report = msg.content_type == "multipart/report"
    if report and "delivery-status" in content_type:
        return None  # a bounce: see routing.bounce
    marked = (msg.header("content-class") or "").strip().lower() == MDN_CLASS
    if not (report or marked or _read_subject(msg.subject)):
        return None  # most mail stops here, before its bytes are looked at
    part = _MDN_PART.search(raw) if report or marked else None
    report = report and ("disposition-notification" in content_type or part is not None)
    if report:
        why = "multipart/report; report-type=disposition-notification"
    elif marked:
        why = f"Content-Class: {MDN_CLASS}"
    elif _read_subject(msg.subject) and _receipt_text(msg.body_text):
        why = f"subject {msg.subject[:40]!r} and a receipt's fixed text"
    else:
        return None
    fields = raw[part.end() :] if part is not None else raw if report or marked else b""
    return _read(msg, raw, fields, standard=part is not None, why=why)


def identity(receipt: Receipt, original: str) -> str:
    """What makes two receipts the same one: the message it reports on, whose receipt it is,
    and what became of the message. A second copy (sent to two desk addresses, resent by
    the reader's server) has these three the same; "displayed" after "deleted" does not."""
    return _digest(original, receipt.reporter.lower(), receipt.disposition.lower())


def _read(msg: ParsedMessage, raw: bytes, fields: bytes, *, standard: bool, why: str) -> Receipt:
    disposition = _DISPOSITION.search(fields)
    if disposition is not None:
        action, sending, kind, modifiers = (
            (g or b"").decode("ascii", "replace") for g in disposition.groups()
        )
    else:
        action = sending = modifiers = ""
        kind = "deleted" if _UNREAD_SUBJECT.match(msg.subject) else "displayed"
    reporter = _first(_FINAL_RECIPIENT, fields) or msg.from_addr
    original = _first(_ORIGINAL_ID, fields)
    own = msg.message_id
    quoted = (m.decode("ascii", "replace") for m in _QUOTED_ID.findall(raw))
    ids = dict.fromkeys(i for i in (original, *msg.thread_ids, *quoted) if i and i != own)
    return Receipt(
        original_ids=tuple(ids)[:50],
        disposition=kind.lower(),
        modifiers=tuple(m.strip().lower() for m in modifiers.split(",") if m.strip()),
        action_mode=action,
        sending_mode=sending,
        reporter=reporter.lower()[:320],
        standard=standard,
        recognised_by=why,
    )


def _read_subject(subject: str) -> bool:
    return bool(_READ_SUBJECT.match(subject) or _UNREAD_SUBJECT.match(subject))


def _receipt_text(body: str) -> bool:
    return len(body) <= MAX_RECEIPT_TEXT and bool(_RECEIPT_TEXT.match(body))


def _first(pattern: re.Pattern[bytes], data: bytes) -> str:
    found = pattern.search(data)
    return found.group(1).decode("utf-8", "replace").strip() if found else ""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]
