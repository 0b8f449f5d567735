"""Messages sent in fragments (message/partial, RFC 2046 §5.2.2): which set a fragment
belongs to, what to do with it given the fragments already stored, and the reassembly.
Pure: the pipeline (pipeline/fragments.py) looks the fragments up and stores the result.

A fragment is `Content-Type: message/partial; id="..."; number=N; total=M` (total may come
on the last fragment only). A set is the fragments with one id from one sender: a stranger
cannot slip a fragment into somebody else's message by guessing its id. When every number
from 1 to total has arrived, the message is reassembled (§5.2.2.1): fragment 1's enclosing
header fields, except Content-*, Subject, Message-ID, Encrypted and MIME-Version, in order;
then those fields from the enclosed header at the start of fragment 1's body; then the
bodies, in order. A set that is not complete within PARTIAL_WAIT, that has more than
MAX_FRAGMENTS fragments or is bigger than the message size limit, or that contradicts
itself, is not reassembled: each fragment becomes ordinary mail, kept as an attachment.
"""

from __future__ import annotations

import email.message
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from maildesk.mail.message import ParsedAttachment, ParsedMessage
from maildesk.parse.attachments import fragment_filename
from maildesk.parse.headers import (
    first_values,
    header_block,
    header_fields,
    mailboxes,
    repair_header_block,
)

PARTIAL_WAIT = timedelta(days=7)  # a set not complete by then is given up
MAX_FRAGMENTS = 100  # a set with more is not reassembled
MAX_SET_ID = 200  # characters of the id parameter
# Fields of fragment 1's enclosing header that the enclosed message's own replace (§5.2.2.1).
_FROM_ENCLOSED = re.compile(rb"^(content-[^:]*|subject|message-id|encrypted|mime-version)$", re.I)
_SEPARATOR = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Fragment:
    """One fragment's place in its set, or `problem`: why its parameters are unusable."""

    set_id: str
    number: int
    total: int | None
    sender: str  # the From address, lower-cased ("" when there is none)
    problem: str = ""

    @property
    def marker(self) -> str:
        """The words that name the set in every fragment's stored reason (how siblings are
        found; the bytes stay the truth)."""
        return f'of id "{self.set_id}" from {self.sender or "nobody"}:'

    def describe(self, what: str) -> str:
        """The fragment's reason: 'partial 2 of 3 of id "X" from Y: waiting for 1, 3'."""
        return f"partial {self.number} of {self.total or '?'} {self.marker} {what}"


@dataclass(frozen=True)
class Sibling:
    """A fragment of the same set already stored, and where it stands."""

    raw_id: int
    fragment: Fragment
    size: int
    state: str  # "waiting", "reassembled" or "released" (processed as ordinary mail)


@dataclass(frozen=True)
class Plan:
    """What to do with a fragment that arrived."""

    action: str  # "wait", "reassemble", "ordinary" or "duplicate"
    why: str  # "waiting for 1, 3", "the set was not complete within 7 days", ...
    parts: tuple[int, ...] = ()  # reassemble: the raw ids of fragments 1..total, in order
    release: tuple[int, ...] = ()  # waiting siblings that become ordinary mail too
    duplicate_of: int | None = None


def read_fragment(raw: bytes) -> Fragment | None:
    """The fragment these bytes are (from their header block), or None if not message/partial."""
    first = first_values(header_fields(repair_header_block(raw)))
    value = first.get("content-type", b"").decode("utf-8", "replace")
    probe = email.message.Message()
    try:
        probe["Content-Type"] = value
        if probe.get_content_type() != "message/partial":
            return None
        params = {k: _param(probe, k) for k in ("id", "number", "total")}
    except Exception:  # a header the email package cannot take: not a usable fragment
        return None
    sender = next(iter(mailboxes(first, "From")), ("", ""))[1].lower()
    set_id, number, total = params["id"], _count(params["number"]), _count(params["total"])
    problem = (
        "it has no id parameter"
        if not set_id
        else f"its id is longer than {MAX_SET_ID} characters"
        if len(set_id) > MAX_SET_ID
        else "its number parameter is missing or not a positive number"
        if number is None
        else f"its total parameter {params['total']!r} is not a positive number"
        if params["total"] and total is None
        else f"its number {number} is past its total {total}"
        if total is not None and number > total
        else ""
    )
    return Fragment(set_id[:MAX_SET_ID], number or 0, total, sender, problem)


def plan(arrived: Sibling, siblings: Sequence[Sibling], *, expired: bool, max_size: int) -> Plan:
    """What to do with the fragment that `arrived`, given the set's stored fragments."""
    raw_id, size, this = arrived.raw_id, arrived.size, arrived.fragment
    if this.problem:
        return Plan("ordinary", this.problem)
    held = [s for s in siblings if s.state in ("waiting", "reassembled")]
    same = next((s for s in held if s.fragment.number == this.number), None)
    if same is not None:
        why = f"the same fragment is already stored (raw {same.raw_id})"
        return Plan("duplicate", why, duplicate_of=same.raw_id)
    waiting = [s for s in siblings if s.state == "waiting"]
    release = tuple(s.raw_id for s in waiting)
    given_up = _given_up(this, size, siblings, expired=expired, max_size=max_size)
    if given_up:
        return Plan("ordinary", given_up, release=release)
    total = this.total or next((s.fragment.total for s in waiting if s.fragment.total), None)
    have = {s.fragment.number: s.raw_id for s in waiting} | {this.number: raw_id}
    wanted = range(1, (total or max(have)) + 1)
    missing = [str(n) for n in wanted if n not in have]
    if total is None:
        missing.append("the last (the one that says total=)")
    if missing:
        return Plan("wait", f"waiting for {', '.join(missing)}")
    return Plan("reassemble", "complete", parts=tuple(have[n] for n in wanted))


def _given_up(
    this: Fragment, size: int, siblings: Sequence[Sibling], *, expired: bool, max_size: int
) -> str:
    """Why the set can no longer be reassembled ("" while it can)."""
    released = next((s for s in siblings if s.state == "released"), None)
    if released is not None:
        return f"fragment {released.fragment.number} was processed as ordinary mail"
    done = next((s for s in siblings if s.state == "reassembled"), None)
    if done is not None:
        return f"the set was already reassembled without fragment {this.number}"
    if expired:
        return f"the set was not complete within {PARTIAL_WAIT.days} days"
    waiting = [s for s in siblings if s.state == "waiting"]
    totals = {f.total for f in (this, *(s.fragment for s in waiting)) if f.total}
    if len(totals) > 1:
        return f"its fragments disagree on the total ({', '.join(map(str, sorted(totals)))})"
    largest = max([this.number, *totals, *(s.fragment.number for s in waiting)])
    if largest > MAX_FRAGMENTS:
        return f"more than {MAX_FRAGMENTS} fragments (MAX_FRAGMENTS)"
    if totals and largest > min(totals):
        return f"a fragment numbered past the total {min(totals)}"
    if size + sum(s.size for s in waiting) > max_size:
        return f"its fragments together are over the message size limit ({max_size} bytes)"
    return ""


def reassemble(fragments: Sequence[bytes]) -> bytes:
    """The message that fragments 1..N (their raw bytes, in order) are parts of (§5.2.2.1)."""
    first_head, first_body = _split(fragments[0])
    inner_head, inner_body = _split(first_body)
    newline = _newline(first_head)
    kept = [f for f in _fields(first_head) if not _FROM_ENCLOSED.match(_name(f))]
    enclosed = [f for f in _fields(inner_head) if _FROM_ENCLOSED.match(_name(f))]
    head = b"".join(_ended(f, newline) for f in (*kept, *enclosed))
    bodies = [inner_body, *(_split(f)[1] for f in fragments[1:])]
    return head + newline + b"".join(bodies)


def as_attachment(msg: ParsedMessage, raw: bytes, this: Fragment, why: str) -> ParsedMessage:
    """The fragment as ordinary mail: a short note as its text, the fragment (as it arrived)
    as an attachment that a mail program can reassemble with the others."""
    total = this.total or "?"
    note = (
        f"[Fragment {this.number} of {total} of a message sent in parts (message/partial, "
        f'id "{this.set_id}"). It was not reassembled: {why}. The fragment is attached '
        "as it arrived.]"
    )
    attachment = ParsedAttachment(
        filename=fragment_filename(this.number, this.total),
        content_type="message/partial",
        content=raw,
    )
    return replace(msg, body_text=note, body_html="", attachments=(attachment,))


def _param(probe: email.message.Message, name: str) -> str:
    value = probe.get_param(name, header="content-type")
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return str(value or "").strip()


def _count(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < int(value) <= 1_000_000 else None


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of a message or of an enclosed one; the blank line dropped."""
    raw = repair_header_block(raw)
    head = header_block(raw)
    rest = raw[len(head) :]
    separator = _SEPARATOR.match(rest)
    return head, rest[separator.end() :] if separator else rest


def _fields(head: bytes) -> list[bytes]:
    """The header fields as sent, each with its continuation lines (mbox From_ lines out)."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif line[:1] not in (b" ", b"\t") and not line.startswith(b"From "):
            fields.append(line)
    return fields


def _name(field: bytes) -> bytes:
    return field.partition(b":")[0].strip()


def _newline(head: bytes) -> bytes:
    found = _SEPARATOR.search(head)
    return found.group(0) if found else b"\r\n"


def _ended(field: bytes, newline: bytes) -> bytes:
    return field if field.endswith((b"\n", b"\r")) else field + newline
