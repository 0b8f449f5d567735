"""The MIME tree: parsed once by the standard library, repaired where a mailer declared one
boundary and used another, walked without recursion and held to MAX_PARTS and MAX_DEPTH.

The walk reads two kinds of part again, as the messages they carry: a forward the email
package could not read (transfer-encoded, or opened by an mbox From line), and the MIME
entity inside opaque-signed S/MIME. What it reads again counts against the same limits.
"""

from __future__ import annotations

import email
import io
import re
from dataclasses import dataclass
from email.errors import MissingHeaderBodySeparatorDefect
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Compat32

from maildesk.errors import MessageTooComplex
from maildesk.parse import lean
from maildesk.parse.headers import header_block, repair_header_block
from maildesk.parse.limits import MAX_DEPTH
from maildesk.parse.smime import signed_entity
from maildesk.parse.text import decode_8bit, safe

# Bytes read again per message, over all its forwards and signed parts: a forward nested in
# forwards, each opened by a From line, is read again at every level.
_MAX_REREAD = 64 << 20
# An mbox envelope line ("From sender date"), or one that mbox quoting turned into ">From ".
_MBOX_FROM = re.compile(rb">*From [^\r\n]*\r?\n")
_BOUNDARY_PARAM = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.I)
_DELIMITER_LINE = re.compile(rb"^--([^\r\n]{1,204})", re.M)


@dataclass(frozen=True)
class Part:
    """One part of the tree, in document order, with its nesting depth."""

    part: Message
    depth: int
    # multipart/* or message/rfc822 with parsed sub-parts; not an opaque-signed part, which
    # is a file of its own besides the entity read from it (the next part, one level down)
    container: bool


def count_delimiters(raw: bytes, max_parts: int, counted: int = 0) -> None:
    """Refuse a multipart with more parts than allowed (`counted` of them already seen
    elsewhere in the message) before the email package walks it."""
    declared = {a or b for a, b in _BOUNDARY_PARAM.findall(raw)}
    if not declared:
        return
    count = counted
    for found in _DELIMITER_LINE.finditer(raw):
        if found.group(1).rstrip(b" \t") in declared:  # an opening delimiter: one more part
            count += 1
            if count > max_parts:
                raise MessageTooComplex(
                    f"more than {max_parts} MIME parts (maildesk reads at most {max_parts})"
                )


def email_tree(raw: bytes) -> Message:
    """The standard library's parse (lean on big parts: maildesk.parse.lean); never raises
    except for a tree nested past recursion."""
    try:
        msg = lean.message_from_bytes(raw)
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
    reread = _MAX_REREAD
    while stack:
        part, depth = stack.pop()
        if depth > max_depth:
            raise MessageTooComplex(
                f"MIME parts nested deeper than {max_depth} levels "
                f"(maildesk reads at most {max_depth})"
            )
        if len(out) >= max_parts:
            raise MessageTooComplex(
                f"more than {max_parts} MIME parts (maildesk reads at most {max_parts})"
            )
        source, signed = _to_read_again(part)
        entity = None
        if source is not None and len(source) <= reread:
            reread -= len(source)
            count_delimiters(source, max_parts, counted=len(out) + 1)
            entity = email_tree(source)
            if not signed:
                safe(lambda p=part, e=entity: _replace_forward(p, e), None)
        # Only a container's payload is wanted here: a leaf's may be a big body (lean).
        payload = safe(lambda p=part: p.get_payload() if p.is_multipart() else None, None)
        children = (
            [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
        )
        if signed and entity is not None:
            children = [entity]
        if safe(lambda p=part: p.get_content_type(), "") == "message/partial":
            children = []  # a fragment is a file until its set is reassembled (RFC 2046 5.2.2)
        out.append(Part(part, depth, bool(children) and not signed))
        stack.extend((child, depth + 1) for child in reversed(children))
    return out


def _to_read_again(part: Message) -> tuple[bytes | None, bool]:
    """The bytes of a message to read in this part's place, and whether it is the entity
    of an opaque-signed part (else a forward read again); (None, False) for most parts."""
    ctype = safe(lambda: part.get_content_type(), "")
    if ctype == "message/rfc822":
        return safe(lambda: _unread_forward(part), None), False
    entity = signed_entity(part) if ctype.startswith("application/") else None
    return entity, entity is not None


def _unread_forward(part: Message) -> bytes | None:
    """The forwarded message the email package could not read, to be read again: one sent
    base64 or quoted-printable (RFC 2046 forbids it, mailers do it), decoded; one whose
    first line is an mbox From line (so the package found no headers), without that line."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and len(payload) == 1 else None
    if not isinstance(inner, Message):
        return None
    cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    headerless = not inner.keys()
    # base64 text never reads as a header block: headers mean it was not encoded after all
    encoded = cte == "quoted-printable" or (cte == "base64" and headerless)
    if not (encoded or headerless):
        return None  # a forward as the email package reads it, which is most of them
    source = _as_read(inner)
    if encoded:
        holder = Message()  # decoded as the email package decodes any part, leniently
        holder["Content-Transfer-Encoding"] = cte
        holder.set_payload(source.decode("ascii", "surrogateescape"))
        decoded = holder.get_payload(decode=True)
        if not isinstance(decoded, bytes):
            return None
        source = decoded
    elif not _MBOX_FROM.match(source):
        return None
    source = repair_header_block(source)
    found = _MBOX_FROM.match(source)
    return source[found.end() :] if found else source


class _AsRead(Compat32):
    """Header lines written back as the parser read them (Compat32 folds them again)."""

    def fold_binary(self, name: str, value: str) -> bytes:
        return f"{name}: {value}{self.linesep}".encode("utf-8", "surrogateescape")


_AS_READ = _AsRead(linesep="\r\n")


def _as_read(msg: Message) -> bytes:
    """A parsed message written back as it came, as near as the parse allows: header lines
    as read, and no blank line after them where the message had none."""
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_AS_READ).flatten(msg)
    data = out.getvalue()
    if any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in msg.defects):
        head = sum(len(_AS_READ.fold_binary(k, v)) for k, v in msg.raw_items())
        data = data[:head] + data[head + len(_AS_READ.linesep) :]
    return data


def _replace_forward(part: Message, inner: Message) -> None:
    """Put the forward read again in the place of the one the email package read."""
    part.set_payload([inner])
    del part["Content-Transfer-Encoding"]


def defects(parts: list[Part]) -> list[str]:
    """What the email package noticed was wrong, per part: "content/type: DefectName"."""
    out: list[str] = []
    for p in parts:
        for defect in safe(lambda p=p: list(p.part.defects), []):
            ctype = safe(lambda p=p: p.part.get_content_type(), "?")
            out.append(f"{ctype}: {type(defect).__name__}")
    return out
