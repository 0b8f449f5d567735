"""TNEF (winmail.dat, application/ms-tnef): the files Outlook packed into it and its body,
read with tnefparse. The winmail.dat itself is kept too, by the caller.

tnefparse trusts every count it reads: a 30-byte stream that claims four billion MAPI
properties keeps it busy for hours. So a stream is first walked here, object by object and
property by property, and one whose counts claim more than the bytes that follow them is
kept as it came, unread. Only the objects that carry files and the body are passed on.
"""

from __future__ import annotations

import contextlib
import mimetypes
import re
import struct
from dataclasses import dataclass
from email.message import Message
from typing import Any

from maildesk.parse.text import clean, decode_text, safe
from maildesk.parse.tree import Part

TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
_SIGNATURE = b"\x78\x9f\x3e\x22"
_MAX_OBJECTS = 5_000  # Outlook writes about 7 per attached file
# tnefparse copies the rest of the stream for every object it reads; this bounds the sum.
_MAX_COPIED = 2 << 30
_MAX_NESTING = 3  # Outlook items attached to Outlook items
_EMBEDDED = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"

# TNEF attributes (MS-OXTNEF 2.1.3) and MAPI property types (MS-OXCDATA 2.11.1) read here.
_LEVEL_ATTACHMENT = 2
_ATT_BODY, _ATT_MAPI_PROPS, _ATT_RECIPIENTS = 0x800C, 0x9003, 0x9004
_ATT_ATTACHMENT, _ATT_OEM_CODEPAGE = 0x9005, 0x9007
_PROP_ATTACH_DATA_OBJ, _PROP_ATTACH_MIME_TAG = 0x3701, 0x370E
_MULTI_VALUED, _NAMED = 0x1000, 0x8000
_FIXED_SIZES = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8}
_FIXED_SIZES |= {0x0006: 8, 0x0007: 8, 0x0014: 8, 0x0040: 8, 0x0048: 16}
_VARIABLE = (0x0000, 0x000D, 0x001E, 0x001F, 0x0102)
_MIME_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")

_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from


@dataclass(frozen=True)
class TnefFile:
    """A file packed into a TNEF stream."""

    name: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Tnef:
    """What a TNEF stream holds: its files, and its body as text and as HTML."""

    files: tuple[TnefFile, ...]
    text: str
    html: str


def is_tnef(part: Message, content: bytes) -> bool:
    """A part that is a TNEF stream: declared as one or named winmail.dat, and signed as one."""
    return _declared(part) and content.startswith(_SIGNATURE)


def tnef_body(parts: list[Part]) -> tuple[str, str]:
    """The text and HTML body of the first winmail.dat that has one, for a message that has
    no other text (Outlook usually sends the text beside it too)."""
    for p in parts:
        if p.container or not _declared(p.part):
            continue
        content = safe(lambda p=p: p.part.get_payload(decode=True), None)
        tnef = unpack(content) if isinstance(content, bytes) else None
        if tnef is not None and (tnef.text or tnef.html):
            return tnef.text, tnef.html
    return "", ""


def _declared(part: Message) -> bool:
    ctype = safe(lambda: part.get_content_type(), "")
    name = str(safe(lambda: part.get_filename(), None) or "").strip().lower()
    return ctype in TNEF_TYPES or name == "winmail.dat"


def unpack(data: bytes) -> Tnef | None:
    """The files and body of a TNEF stream; None for a broken or over-counted one."""
    stream = safe(lambda: _kept_objects(data), None)
    if stream is None or not safe(lambda: _counts_fit(stream, 0), False):
        return None
    from tnefparse import TNEF  # loaded only for mail that carries a winmail.dat

    tnef = safe(lambda: TNEF(stream, do_checksum=False), None)
    if tnef is None:
        return None
    files = [safe(lambda a=a: _file(a), None) for a in safe(lambda: tnef.attachments, [])]
    codepage = safe(lambda: str(tnef.codepage or ""), "") or None
    return Tnef(
        files=tuple(f for f in files if f is not None),
        text=safe(lambda: _text(tnef.body, codepage), ""),
        html=safe(lambda: _text(tnef.htmlbody, None), ""),  # in its own code page, not the OEM one
    )


def _kept_objects(data: bytes) -> bytes | None:
    """The stream with only the objects that carry files, the body and its code page (the
    others, recipients among them, are where tnefparse fails most); None if not TNEF."""
    if not data.startswith(_SIGNATURE):
        return None
    kept = [data[:6]]
    for level, name, start, end in _objects(data):
        if level == _LEVEL_ATTACHMENT or name in (_ATT_MAPI_PROPS, _ATT_BODY, _ATT_OEM_CODEPAGE):
            kept.append(data[start:end])
    return b"".join(kept)


def _objects(data: bytes) -> list[tuple[int, int, int, int]]:
    """(level, attribute, start, end) of each object, cut where tnefparse cuts them."""
    out: list[tuple[int, int, int, int]] = []
    offset = 6
    while offset + 12 < len(data):  # tnefparse's own loop condition
        if len(out) >= _MAX_OBJECTS:
            raise ValueError(f"more than {_MAX_OBJECTS} TNEF objects")
        length = min(len(data) - offset, _u32(data, offset + 5)[0] + 11)
        out.append((data[offset], _u16(data, offset + 1)[0], offset, offset + length))
        offset += length
    return out


def _counts_fit(stream: bytes, depth: int) -> bool:
    """True when every count in the stream (and in the Outlook items it embeds) fits in
    the bytes that follow it, so tnefparse's loops end with the data."""
    objects = _objects(stream)
    if sum(len(stream) - start for _, _, start, _ in objects) > _MAX_COPIED:
        return False
    for level, name, start, end in objects:
        body = stream[start + 9 : end - 2]
        at_attachment = level == _LEVEL_ATTACHMENT
        if (at_attachment and name == _ATT_ATTACHMENT) or (
            not at_attachment and name == _ATT_MAPI_PROPS
        ):
            with contextlib.suppress(struct.error, _Stop):  # tnefparse stops there too
                _mapi_end(body, 0, depth)
        elif not at_attachment and name == _ATT_RECIPIENTS:
            _recipients_fit(body, depth)
    return True


def _recipients_fit(body: bytes, depth: int) -> None:
    """Recipient rows (only in embedded items: the outer stream's are not passed on) must
    each read whole, since tnefparse reads each row from where the last one stopped."""
    rows, offset = _u32(body, 0)[0], 4
    if rows > len(body) // 4:
        raise _Overcount
    for _ in range(rows):
        try:
            offset = _mapi_end(body, offset, depth)
        except (struct.error, _Stop) as exc:
            raise _Overcount from exc


class _Stop(Exception):
    """A property of a type tnefparse does not know: it stops reading the block there."""


class _Overcount(Exception):
    """A count claims more than the bytes that follow it."""


def _mapi_end(data: bytes, offset: int, depth: int) -> int:
    """Walk a MAPI property block as tnefparse's decode_mapi does; the offset after it."""
    count = _u32(data, offset)[0]
    offset += 4
    if count > (len(data) - offset) // 4:  # every property takes 4 bytes or more
        raise _Overcount
    for _ in range(count):
        if offset >= len(data):  # tnefparse would log a warning per missing property
            raise _Overcount
        kind, name = _u16(data, offset)[0], _u16(data, offset + 2)[0]
        offset += 4
        if name >= _NAMED:  # a GUID, a kind, then a number (kind 0) or a padded name
            kind_of_name, size = _u32(data, offset + 16)[0], _u32(data, offset + 20)[0]
            offset += 24 + (size + (-size % 4) if kind_of_name else 0)
        values = None
        if kind & _MULTI_VALUED:
            kind ^= _MULTI_VALUED
            values = _u32(data, offset)[0]
            offset += 4
        offset = _values_end(data, offset, kind, name, values, depth)
    return offset


def _values_end(
    data: bytes, offset: int, kind: int, name: int, values: int | None, depth: int
) -> int:
    """The offset after a property's values; embedded Outlook items are walked too."""
    if kind in _FIXED_SIZES:
        size = _FIXED_SIZES[kind] * (values or 1)
        if size > len(data) - offset:  # tnefparse reads past the end without noticing
            raise _Overcount
        padded = (values or 1) % 2 and _FIXED_SIZES[kind] == 2
        return offset + size + (2 if padded else 0)
    if kind not in _VARIABLE:
        raise _Stop
    for _ in range(values or 1):
        if values is None:
            items = _u32(data, offset)[0]
            offset += 4
        else:
            items = 1
        chunks = []
        for _ in range(items):  # each reads a length: past the end, struct.error ends it
            size = _u32(data, offset)[0]
            chunks.append(data[offset + 4 : offset + 4 + size])
            offset += 4 + size + (-size % 4)
        embedded = b"".join(c.rstrip(b"\x00") for c in chunks)
        if name != _PROP_ATTACH_DATA_OBJ or not embedded.startswith(_EMBEDDED):
            continue
        if depth >= _MAX_NESTING or not _counts_fit(embedded[len(_EMBEDDED) :], depth + 1):
            raise _Overcount
    return offset


def _file(attachment: Any) -> TnefFile | None:
    """One packed file: its long name (else its short one), type and bytes."""
    content = attachment.data
    if not isinstance(content, bytes) or not content:
        return None
    name = safe(lambda: str(attachment.long_filename() or ""), "")
    name = clean(name or safe(lambda: str(attachment.name or ""), "")).strip()
    declared = next(
        (
            str(a.data).strip().lower()
            for a in attachment.mapi_attrs
            if a.name == _PROP_ATTACH_MIME_TAG and isinstance(a.data, str)
        ),
        "",
    )
    guessed = mimetypes.guess_type(name, strict=False)[0] if name else None
    ctype = declared if _MIME_TYPE.match(declared) else (guessed or "application/octet-stream")
    return TnefFile(name=name, content_type=ctype, content=content)


def _text(body: Any, codepage: str | None) -> str:
    """A TNEF body as text: tnefparse gives str for MAPI bodies, bytes for the older one."""
    if isinstance(body, bytes):
        return decode_text(body.rstrip(b"\x00"), codepage).strip()
    return clean(body).strip() if isinstance(body, str) else ""
