"""May maildesk answer this message automatically? Pure checks over a parsed message.

Rules learned the hard way by RFC 3834 and by Roundup, RT and django-helpdesk: never answer
auto-replies, bounces, mailing lists, bulk mail or ourselves.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from maildesk.mail.address import is_desk_address
from maildesk.mail.message import ParsedMessage
from maildesk.mail.render import LOOP_HEADER

__all__ = ["LOOP_HEADER", "automatic", "automatic_address", "is_own_loop", "may_auto_reply"]

_ROBOT_LOCALS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|daemon|"
    r"auto-?reply|autoresponder|listserv|majordomo)([+\-_.].*)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    """Whether an automatic answer may go out, and if not, why."""

    allowed: bool
    reason: str = ""


ALLOWED = Verdict(True)


def is_own_loop(msg: ParsedMessage, desk_address: str) -> bool:
    """True for a message that carries our own loop marker: our mail came back to us."""
    marker = msg.header(LOOP_HEADER.lower())
    return marker is not None and marker.strip().lower() == desk_address.lower()


def automatic(msg: ParsedMessage) -> str | None:
    """Why a message was written by a machine (an out-of-office, a vacation notice), or None.

    Only the explicit markers (RFC 3834 and the common vendor headers); the wider net of
    may_auto_reply (lists, robot addresses) is for deciding what to answer.
    """
    auto = (msg.header("auto-submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto}"
    precedence = (msg.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("x-autoreply", "x-autorespond"):
        if msg.header(header) is not None:
            return f"{header} header present"
    # Exchange marks its read receipts and delivery reports so (an MDN is automatic mail).
    content_class = (msg.header("content-class") or "").strip().lower()
    if content_class in ("urn:content-classes:mdn", "urn:content-classes:dsn"):
        return f"Content-Class: {content_class}"
    return None


def automatic_address(address: str, own_addresses: Collection[str]) -> str | None:
    """Why mail to this address would go to a machine (ours, or a robot's), or None."""
    if not address or "@" not in address:
        return "no usable address"
    if is_desk_address(address, own_addresses):
        return f"{address} is one of our own addresses"
    if _ROBOT_LOCALS.match(address.partition("@")[0]):
        return f"{address} is an automated sender"
    return None


def may_auto_reply(msg: ParsedMessage, own_addresses: Collection[str]) -> Verdict:
    """Decide whether an acknowledgement may be sent in answer to this message."""
    if why := automatic(msg):
        return Verdict(False, why)
    precedence = (msg.header("precedence") or "").strip().lower()
    if precedence == "list":
        return Verdict(False, f"Precedence: {precedence}")
    for header in ("list-id", "list-unsubscribe", "x-loop", LOOP_HEADER.lower()):
        if msg.header(header) is not None:
            return Verdict(False, f"{header} header present")
    suppress = (msg.header("x-auto-response-suppress") or "").lower()
    if any(word in suppress for word in ("all", "autoreply", "oof")):
        return Verdict(False, f"X-Auto-Response-Suppress: {suppress}")
    if msg.content_type == "multipart/report":
        return Verdict(False, "delivery report (multipart/report)")
    sender = msg.from_addr
    if not sender or "@" not in sender:
        return Verdict(False, "no usable From address")
    if is_desk_address(sender, own_addresses):
        return Verdict(False, "From is one of our own addresses")
    if _ROBOT_LOCALS.match(sender.partition("@")[0]):
        return Verdict(False, f"From {sender} is an automated sender")
    return ALLOWED


# The reasons may_auto_reply gives for a message a machine wrote (not for a rate limit or
# a setting): an acknowledgement suppressed for one of these went to automatic mail.
AUTOMATIC_REASONS = (
    "Auto-Submitted",
    "Precedence",
    "x-autoreply",
    "x-autorespond",
    "Content-Class",
    "list-id",
    "list-unsubscribe",
    "x-loop",
    LOOP_HEADER.lower(),
    "X-Auto-Response-Suppress",
    "delivery report",
    "From ",
)
