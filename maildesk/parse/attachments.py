"""Attachments: which parts are files, their names made safe, forwarded messages kept whole
as .eml, the files inside a winmail.dat listed beside it, and parts only mail-parser
recovered from a broken tree added without repeats."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import mimetypes
import re
import unicodedata
from collections.abc import Iterator
from email.message import Message
from typing import Any

from maildesk.mail.message import ParsedAttachment
from maildesk.parse.headers import decode_words
from maildesk.parse.limits import MAX_CONTENT_ID, MAX_CONTENT_TYPE
from maildesk.parse.text import WS, clean, safe
from maildesk.parse.tnef import is_tnef, unpack
from maildesk.parse.tree import Part

_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
# Names Windows treats as devices in any directory and with any extension.
_RESERVED_NAMES = re.compile(
    r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\.|$)", re.I
)
# Names mailers give the body text itself: .txt, .text, or no extension at all.
_BODY_NAME = re.compile(r"\.te?xt\s*$|^[^.]*$", re.I)


def sanitise_filename(name: str | None, content_type: str, index: int) -> str:
    """A filename safe to show and to write anywhere: no paths, controls, reserved characters
    or device names (CON, NUL, COM1, ...)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE_FILENAME.sub("_", base)
    base = unicodedata.normalize("NFC", clean(base)).strip(" .")
    if _RESERVED_NAMES.match(base):
        base = f"_{base}"
    if not base:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        base = f"attachment-{index}{ext}"
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) < 16 else base[:200]
    return base


def is_attachment(part: Message, first_text: Message | None) -> bool:
    """A part sent as a file: disposition attachment, or a filename, unless it is the
    message's first text part (`first_text`, from first_text_part)."""
    disposition = safe(lambda: part.get_content_disposition(), None)
    if disposition == "attachment":
        return True
    return bool(part_filename(part)) and part is not first_text


def first_text_part(parts: list[Part]) -> Message | None:
    """Where the message's text starts: the first text/plain or text/html part not sent as
    a file (no disposition attachment, no filename). A text/plain part sent inline (or with
    no disposition) under a name that mailers give body text counts too: a .txt name or
    none at all (HP OpenMail's BDY.TXT, VM's msg.txt, a web form's message.txt). After the
    message's text a named part is a file, whatever its name: Apple Mail sends files inline."""
    for p in parts:
        ctype = safe(lambda p=p: p.part.get_content_type(), "")
        if p.container or ctype not in ("text/plain", "text/html"):
            continue
        if safe(lambda p=p: p.part.get_content_disposition(), None) == "attachment":
            continue
        name = part_filename(p.part)
        if not name or (ctype == "text/plain" and _BODY_NAME.search(name)):
            return p.part
    return None


def part_filename(part: Message) -> str:
    """The filename a part declares (Content-Disposition or Content-Type name), decoded;
    "" for none, and for a blank one (name=" ", which some mailers put on body text)."""
    name = safe(lambda: part.get_filename(), None) or safe(lambda: part.get_param("name"), None)
    if isinstance(name, tuple):  # an RFC 2231 value get_param did not collapse
        name = safe(lambda: email.utils.collapse_rfc2231_value(name), "")
    decoded = decode_words(str(name)) if name else ""
    return decoded if decoded.strip() else ""


def attachments(parts: list[Part], mp: Any, raw: bytes) -> list[ParsedAttachment]:
    """Our walk's attachments, plus any mail-parser recovered from a broken tree (it reads
    parts lost in an epilogue, for one) that the walk did not see at all."""
    found = list(_walked_attachments(parts))
    if mp is None:  # a well-formed tree: the walk saw every part
        return found
    seen = {hashlib.sha256(a.content).digest() for a in found}
    seen |= {_wire_key(p.part) for p in parts}
    for att in safe(lambda: list(mp.attachments), None) or []:
        content = safe(lambda att=att: _mailparser_content(att), b"")
        wire = _squeeze(str(att.get("payload") or "").encode("utf-8", "replace"))
        if not content or wire in seen or hashlib.sha256(content).digest() in seen:
            continue
        ctype = clean(str(att.get("mail_content_type") or "application/octet-stream"))
        name = clean(str(att.get("filename") or ""))
        if name.encode("utf-8", "replace") not in raw:  # mail-parser made it up (randomly)
            name = ""
        found.append(
            ParsedAttachment(
                filename=sanitise_filename(name, ctype, len(found) + 1),
                content_type=ctype.lower()[:MAX_CONTENT_TYPE],
                content=content,
            )
        )
    return found


def _wire_key(part: Message) -> bytes:
    payload = safe(lambda: part.get_payload(), None)
    if not isinstance(payload, str):
        return b""
    return _squeeze(payload.encode("utf-8", "surrogateescape"))


def _squeeze(data: bytes) -> bytes:
    """Transfer-encoded text without its whitespace, for telling the same part seen twice."""
    return hashlib.sha256(re.sub(rb"\s+", b"", data)).digest()


def _mailparser_content(att: dict[str, Any]) -> bytes:
    payload = att.get("payload") or ""
    if att.get("binary"):
        # Broken base64 on the wire: keep the bytes as they came rather than nothing.
        return safe(lambda: base64.b64decode(payload), None) or str(payload).encode()
    return str(payload).encode(att.get("charset") or "utf-8", errors="replace")


def _walked_attachments(parts: list[Part]) -> Iterator[ParsedAttachment]:
    """Every part that is not body text, in document order. A forwarded message is kept
    whole as an .eml, and its own attachments are listed too; a forward inside a forward is
    not kept again (it is in the outer .eml), so nesting cannot multiply what is stored.
    A winmail.dat is kept as it came, and the files packed into it follow it."""
    index = 0
    first_text = first_text_part(parts)
    forward_end = 0  # parts before this index are inside a forwarded message
    for i, p in enumerate(parts):
        ctype = safe(lambda p=p: p.part.get_content_type(), "application/octet-stream")
        if ctype == "message/rfc822" and i > 0:
            if i >= forward_end:
                forward_end = _subtree_end(parts, i)
                index += 1
                yield _forwarded(p.part, index)
            continue
        if p.container:
            continue
        if ctype == "message/partial":
            index += 1
            yield _fragment(p.part, index)
            continue
        maintype = ctype.partition("/")[0]
        body_text = ctype in ("text/plain", "text/html") or maintype == "multipart"
        if body_text and not is_attachment(p.part, first_text):
            continue
        index += 1
        content = safe(lambda p=p: p.part.get_payload(decode=True), None)
        if not isinstance(content, bytes):
            content = safe(lambda p=p: str(p.part.get_payload()).encode("utf-8", "replace"), b"")
        cid = clean(safe(lambda p=p: str(p.part.get("Content-ID") or ""), "")).strip()
        yield ParsedAttachment(
            filename=sanitise_filename(part_filename(p.part), ctype, index),
            content_type=clean(ctype)[:MAX_CONTENT_TYPE],
            content=content,
            content_id=cid[:MAX_CONTENT_ID] or None,
        )
        if is_tnef(p.part, content):
            for packed in _tnef_files(content, index):
                index += 1
                yield packed


def _subtree_end(parts: list[Part], start: int) -> int:
    depth = parts[start].depth
    end = start + 1
    while end < len(parts) and parts[end].depth > depth:
        end += 1
    return end


def _tnef_files(content: bytes, index: int) -> Iterator[ParsedAttachment]:
    """The files packed into a winmail.dat, numbered on from its own index."""
    tnef = unpack(content)
    for i, packed in enumerate(tnef.files if tnef else (), start=index + 1):
        ctype = clean(packed.content_type)[:MAX_CONTENT_TYPE]
        yield ParsedAttachment(
            filename=sanitise_filename(packed.name, ctype, i),
            content_type=ctype,
            content=packed.content,
        )


def _enclosed(part: Message) -> tuple[Message | None, bytes]:
    """The message a message/* part encloses, and its bytes (b"" when there is none)."""
    payload = safe(lambda: part.get_payload(), None)
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return None, b""
    content = safe(lambda: inner.as_bytes(), None) or safe(
        lambda: inner.as_string().encode("utf-8", "surrogateescape"), b""
    )
    return inner, content


def fragment_filename(number: object, total: object, index: int = 1) -> str:
    """`partial-2-of-3.eml`, or `partial-2.eml` while the total is not known (RFC 2046
    gives it on the last fragment only)."""
    number, total = str(number or ""), str(total or "")
    if not number.isdigit():
        return f"partial-{index}.eml"
    return f"partial-{number}-of-{total}.eml" if total.isdigit() else f"partial-{number}.eml"


def _fragment(part: Message, index: int) -> ParsedAttachment:
    """A message/partial part as a file named after its place in the set; the pipeline
    reassembles complete sets (maildesk.routing.partial) before they are parsed."""
    _, content = _enclosed(part)
    number = str(safe(lambda: part.get_param("number"), "") or "")
    total = str(safe(lambda: part.get_param("total"), "") or "")
    return ParsedAttachment(
        filename=fragment_filename(number, total, index),
        content_type="message/partial",
        content=content,
    )


def _forwarded(part: Message, index: int) -> ParsedAttachment:
    """A message/rfc822 part as an .eml file named after its subject."""
    inner, content = _enclosed(part)
    name = part_filename(part)
    if not name and isinstance(inner, Message):
        subject = clean(decode_words(safe(lambda: str(inner.get("Subject") or ""), "")))
        # a subject is not a path: "build 1/2 failed" keeps its "1", unlike a filename's dirs
        subject = re.sub(r"[/\\]", "_", WS.sub(" ", subject)).strip()
        name = f"{subject[:120]}.eml" if subject else ""
    return ParsedAttachment(
        filename=sanitise_filename(name or f"forwarded-{index}.eml", "message/rfc822", index),
        content_type="message/rfc822",
        content=content,
    )
