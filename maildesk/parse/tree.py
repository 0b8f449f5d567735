"""The MIME tree: parsed once by the standard library, repaired where a mailer declared one
boundary and used another, walked without recursion and held to MAX_PARTS and MAX_DEPTH."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import Message

from maildesk.errors import MessageTooComplex
from maildesk.parse.headers import header_block
from maildesk.parse.limits import MAX_DEPTH
from maildesk.parse.text import decode_8bit, safe

_BOUNDARY_PARAM = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.I)
_DELIMITER_LINE = re.compile(rb"^--([^\r\n]{1,204})", re.M)


@dataclass(frozen=True)
class Part:
    """One part of the tree, in document order, with its nesting depth."""

    part: Message
    depth: int
    container: bool  # multipart/* or message/rfc822 with parsed sub-parts


def count_delimiters(raw: bytes, max_parts: int) -> None:
    """Refuse a multipart with more parts than allowed before the email package walks it."""
    declared = {a or b for a, b in _BOUNDARY_PARAM.findall(raw)}
    if not declared:
        return
    count = 0
    for found in _DELIMITER_LINE.finditer(raw):
        if found.group(1).rstrip(b" \t") in declared:  # an opening delimiter: one more part
            count += 1
            if count > max_parts:
                raise MessageTooComplex(
                    f"more than {max_parts} MIME parts (limit MAX_PARTS={max_parts})"
                )


def email_tree(raw: bytes) -> Message:
    """The standard library's parse; never raises except for a tree nested past recursion."""
    try:
        msg = email.message_from_bytes(raw)
    except RecursionError as exc:
        raise MessageTooComplex(
            f"MIME parts nested too deeply to parse (limit MAX_DEPTH={MAX_DEPTH})"
        ) from exc
    except Exception:
        # Keep what can be read: the header block, and the rest as one text body.
        head = header_block(raw)
        rest = raw[len(head) :].lstrip(b"\r\n")
        msg = safe(lambda: email.message_from_bytes(head + b"\r\n\r\n"), None) or Message()
        msg.set_payload(decode_8bit(rest))
        return msg
    return safe(lambda: _with_real_boundary(msg, raw), None) or msg


def _with_real_boundary(msg: Message, raw: bytes) -> Message | None:
    """A multipart whose declared boundary never appears, but whose body starts with another
    delimiter line (some mailers write one boundary into the header and use another):
    parsed again with the boundary the body uses. None when that is not the case."""
    if msg.get_content_maintype() != "multipart" or isinstance(msg.get_payload(), list):
        return None
    body = raw[len(header_block(raw)) :].lstrip(b"\r\n")
    first = re.match(rb"--([0-9A-Za-z'()+_,./:=?-]{1,70})[ \t]*\r?\n", body)
    if first is None:
        return None
    fixed = email.message_from_bytes(raw)
    fixed.set_boundary(first.group(1).decode("ascii"))
    head = fixed.as_bytes().split(b"\n\n", 1)[0]
    reparsed = email.message_from_bytes(head + b"\n\n" + body)
    return reparsed if isinstance(reparsed.get_payload(), list) else None


def walk(msg: Message, max_parts: int, max_depth: int) -> list[Part]:
    """Every part in document order, without recursion, checked against the limits.

    A message/rfc822 part is listed once (it becomes an .eml attachment); its inner parts
    are listed too, so the limits count them and the text of a forward can be read.
    """
    out: list[Part] = []
    stack: list[tuple[Message, int]] = [(msg, 1)]
    while stack:
        part, depth = stack.pop()
        if depth > max_depth:
            raise MessageTooComplex(
                f"MIME parts nested deeper than {max_depth} levels (limit MAX_DEPTH={max_depth})"
            )
        if len(out) >= max_parts:
            raise MessageTooComplex(
                f"more than {max_parts} MIME parts (limit MAX_PARTS={max_parts})"
            )
        payload = safe(lambda p=part: p.get_payload(), None)
        children = (
            [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
        )
        out.append(Part(part, depth, bool(children)))
        stack.extend((child, depth + 1) for child in reversed(children))
    return out


def defects(parts: list[Part]) -> list[str]:
    """What the email package noticed was wrong, per part: "content/type: DefectName"."""
    out: list[str] = []
    for p in parts:
        for defect in safe(lambda p=p: list(p.part.defects), []):
            ctype = safe(lambda p=p: p.part.get_content_type(), "?")
            out.append(f"{ctype}: {type(defect).__name__}")
    return out
