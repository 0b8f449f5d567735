"""Which ticket does a message belong to? Pure: lookups come in through a ThreadIndex.

Order (SPEC): the ticket ref in the subject ([MD-42], any case, anywhere after any
Re:/AW:/SV:/Fwd: chain); then In-Reply-To/References against every stored Message-ID of a
ticket, inbound or outbound; then the reply token in a recipient address (support+TOKEN@).
A ref or token naming no ticket falls through to the next method.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from maildesk.mail.address import split_plus
from maildesk.mail.message import ParsedMessage

_REPLY_TOKEN = re.compile(r"[a-z0-9-]{6,64}")
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|vs|antw|wg|fw|fwd|tr|rv|r)\s*(\[\d+\])?\s*:\s*)+", re.I)


class ThreadIndex(Protocol):
    """The lookups threading needs; the store implements it, tests pass a small double."""

    def ticket_exists(self, ticket_id: int) -> bool: ...
    def ticket_for_message_ids(self, message_ids: Sequence[str]) -> int | None: ...
    def ticket_for_token(self, token: str) -> int | None: ...


@dataclass(frozen=True)
class ThreadMatch:
    """The ticket a message threads into (None: a new ticket) and how it was found."""

    ticket_id: int | None
    via: str | None = None  # "subject", "in-reply-to", "references", "reply-token"
    detail: str = ""


@lru_cache(maxsize=32)
def _ref_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + re.escape(prefix) + r"\s*[-#]\s*(\d{1,18})\s*\]", re.I)


def subject_refs(subject: str, prefix: str) -> list[int]:
    """Ticket numbers tagged in a subject, in order of appearance."""
    return [int(n) for n in _ref_pattern(prefix).findall(subject)]


def strip_reply_prefixes(subject: str) -> str:
    """'Re: AW: Fwd: Printer' -> 'Printer'."""
    return _REPLY_PREFIX.sub("", subject).strip()


def strip_ref_tag(subject: str, prefix: str) -> str:
    """Remove our [MD-n] tags and reply prefixes, for a ticket's own subject."""
    return _ref_pattern(prefix).sub("", strip_reply_prefixes(subject)).strip() or subject.strip()


def reply_tokens(recipients: Iterable[str], desk_addresses: Iterable[str]) -> list[str]:
    """Tokens from plus-addresses of the desk: support+TOKEN@example.com -> TOKEN.

    Only the desk's own addresses count: support+TOKEN@ at another domain is someone else's.
    """
    ours = {a.lower() for a in desk_addresses}
    out = []
    for addr in recipients:
        base, token = split_plus(addr.lower())
        if base in ours and _REPLY_TOKEN.fullmatch(token):
            out.append(token)
    return out


THREAD_KEY_REFERENCES = 20  # the nearest References count; a long chain shares these


def thread_keys(msg: ParsedMessage, prefix: str) -> list[str]:
    """What two messages of one conversation have in common, whichever came first: the
    Message-IDs they carry (their own, In-Reply-To, the nearest References) and the ticket
    refs in their subjects. The pipeline serialises messages sharing a key."""
    ids = dict.fromkeys(
        (msg.message_id, *msg.in_reply_to, *msg.references[-THREAD_KEY_REFERENCES:])
    )
    return [f"id:{m}" for m in ids if m] + [
        f"ref:{n}" for n in dict.fromkeys(subject_refs(msg.subject, prefix))
    ]


def thread_message(
    msg: ParsedMessage,
    index: ThreadIndex,
    *,
    prefix: str,
    recipients: Sequence[str],
    desk_addresses: Iterable[str],
) -> ThreadMatch:
    """Find the ticket this message belongs to, in SPEC order."""
    for number in subject_refs(msg.subject, prefix):
        if index.ticket_exists(number):
            return ThreadMatch(number, "subject", f"[{prefix}-{number}] in subject")
    if msg.in_reply_to:
        found = index.ticket_for_message_ids(msg.in_reply_to)
        if found is not None:
            return ThreadMatch(found, "in-reply-to", " ".join(msg.in_reply_to))
    if msg.references:
        found = index.ticket_for_message_ids(list(reversed(msg.references)))
        if found is not None:
            return ThreadMatch(found, "references", "a References Message-ID")
    for token in reply_tokens([*recipients, *msg.to, *msg.cc], desk_addresses):
        found = index.ticket_for_token(token)
        if found is not None:
            return ThreadMatch(found, "reply-token", "reply token in recipient")
    return ThreadMatch(None)


def ties(
    msg: ParsedMessage,
    index: ThreadIndex,
    ticket_ids: Iterable[int],
    *,
    recipients: Sequence[str],
    desk_addresses: Iterable[str],
) -> frozenset[str]:
    """What besides the subject ties this message to one of these tickets: "headers"
    (In-Reply-To/References of its messages), "reply-token" (its token in a recipient).

    A token was mailed only to the ticket's side (requester and watchers, or one agent);
    a Message-ID travels with every copy and forward of a mail, so it proves less.
    """
    wanted = set(ticket_ids)
    found: set[str] = set()
    if msg.thread_ids and index.ticket_for_message_ids(list(msg.thread_ids)) in wanted:
        found.add("headers")
    if any(
        index.ticket_for_token(token) in wanted
        for token in reply_tokens([*recipients, *msg.to, *msg.cc], desk_addresses)
    ):
        found.add("reply-token")
    return frozenset(found)


def corroborated(
    msg: ParsedMessage,
    index: ThreadIndex,
    ticket_id: int,
    *,
    recipients: Sequence[str],
    desk_addresses: Iterable[str],
) -> bool:
    """Does anything but the subject tie this message to the ticket (headers or a token)?"""
    return bool(ties(msg, index, [ticket_id], recipients=recipients, desk_addresses=desk_addresses))
