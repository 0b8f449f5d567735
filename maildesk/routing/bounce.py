"""Is this message a bounce, and of what? Pure checks over a parsed message and its bytes.

Standard delivery status notifications (RFC 3464: multipart/report; report-type=
delivery-status) give Final-Recipient, Action and Status fields. Many servers still send
their own formats (qmail's "Hi. This is the qmail-send program", Exim's "Mail delivery
failed", Exchange's "Undeliverable:", Postfix before DSN); for those the sender (a null
envelope sender, MAILER-DAEMON, postmaster) and the subject tell, and the failing address
and the server's answer are read from the text. Either way the original message is found
by its Message-ID, which every format quotes: maildesk minted it, so it is on a ticket.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from maildesk.mail.message import ParsedMessage

_BOUNCE_SENDERS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mdaemon)([+\-_.].*)?@", re.I)
_BOUNCE_SUBJECTS = re.compile(
    r"(undeliver|returned mail|delivery (status notification|failure|has failed)|"
    r"mail delivery (failed|failure|subsystem)|failure notice|could not be delivered|"
    r"delivery notification|nondeliverable|unzustellbar|non remis)",
    re.I,
)
_MSGID = re.compile(rb"<[^<>\s@]+@[^<>\s@]+>")
_FINAL_RECIPIENT = re.compile(
    rb"^(?:Final|Original)-Recipient:\s*rfc822;\s*<?([^\s<>]+@[^\s<>]+)>?", re.I | re.M
)
_STATUS = re.compile(rb"^Status:\s*([245]\.\d{1,3}\.\d{1,3})", re.I | re.M)
_ACTION = re.compile(rb"^Action:\s*(\w+)", re.I | re.M)
_DIAGNOSTIC = re.compile(rb"^Diagnostic-Code:\s*(.+(?:\r?\n[ \t].+)*)", re.I | re.M)
# Non-standard: "<user@host>:" (qmail, Postfix) or an indented address line (Exim).
# [ \t]*, not \s*: under re.M, \s* also spans blank lines, which is quadratic on a long
# run of them.
_TEXT_RECIPIENT = re.compile(rb"^[ \t]*<?([\w.+'-]+@[\w.-]+\.\w+)>?:?[ \t\r]*$", re.M)
_SMTP_ANSWER = re.compile(rb"\b([45]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})?[^\r\n]*", re.M)


@dataclass(frozen=True)
class Bounce:
    """What a bounce says: who failed, how, and which of our messages it answers."""

    recipients: tuple[str, ...]
    permanent: bool  # a hard bounce (5.x.x / failed); False for delays and soft failures
    status: str  # e.g. "5.1.1", or "" when the report does not say
    diagnostic: str  # the server's answer, as far as the report gives it
    quoted_ids: tuple[str, ...]  # Message-IDs quoted in the report, the bounce's own excluded
    standard: bool  # an RFC 3464 delivery-status report


def recognise(msg: ParsedMessage, raw: bytes, envelope_from: str | None) -> Bounce | None:
    """The bounce this message is, or None for ordinary mail (including auto-replies)."""
    report = _is_delivery_report(msg, raw)
    null_sender = envelope_from is not None and envelope_from.strip("<> ") == ""
    robot = bool(_BOUNCE_SENDERS.match(msg.from_addr or ""))
    if not report and not ((null_sender or robot) and _BOUNCE_SUBJECTS.search(msg.subject)):
        return None
    action = _first(_ACTION, raw).lower()
    status = _first(_STATUS, raw)
    diagnostic = _first(_DIAGNOSTIC, raw)
    recipients = _all(_FINAL_RECIPIENT, raw)
    if not report:
        recipients = recipients or tuple(
            r for r in _all(_TEXT_RECIPIENT, raw) if r.lower() != (msg.from_addr or "").lower()
        )
        answer = _SMTP_ANSWER.search(raw)
        if answer and not diagnostic:
            diagnostic = answer.group(0).decode("utf-8", "replace").strip()
            status = status or (answer.group(2) or b"").decode()
            if not status:
                status = "5.0.0" if answer.group(1).startswith(b"5") else "4.0.0"
    if action in ("delayed", "relayed", "delivered", "expanded"):
        permanent = False
    else:
        permanent = not status.startswith("4")
    own = msg.message_id
    quoted = tuple(dict.fromkeys(m.decode() for m in _MSGID.findall(raw) if m.decode() != own))
    return Bounce(
        recipients=tuple(dict.fromkeys(r.lower() for r in recipients)),
        permanent=permanent,
        status=status,
        diagnostic=" ".join(diagnostic.split())[:1000],
        quoted_ids=quoted,
        standard=report,
    )


def identity(bounce: Bounce, original: str) -> str:
    """What makes two bounces the same one: the message of ours they return, the addresses
    that failed, whether for good, the status and the server's answer (case and spacing
    aside).

    Two copies of one report (delivered to two desk addresses, or sent again by the remote
    MTA) differ in their Message-ID, Date and Received lines, and perhaps in the report's
    Arrival-Date, but not in these; a report that says something new (the delay became a
    failure, another recipient failed) differs in them. A hash of the report's bytes would
    tell copies apart that say the same thing.
    """
    diagnostic = " ".join(bounce.diagnostic.lower().split())
    failed = "permanent" if bounce.permanent else "temporary"
    parts = (original, ",".join(sorted(bounce.recipients)), failed, bounce.status, diagnostic)
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def _is_delivery_report(msg: ParsedMessage, raw: bytes) -> bool:
    if msg.content_type != "multipart/report":
        return False
    content_type = msg.header("content-type") or ""
    return "delivery-status" in content_type.lower() or b"message/delivery-status" in raw


def _first(pattern: re.Pattern[bytes], raw: bytes) -> str:
    found = pattern.search(raw)
    return found.group(1).decode("utf-8", "replace").strip() if found else ""


def _all(pattern: re.Pattern[bytes], raw: bytes) -> tuple[str, ...]:
    return tuple(m.decode("utf-8", "replace") for m in pattern.findall(raw))
