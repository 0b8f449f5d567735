"""Files uuencoded into a text body (`begin 644 name` ... `end`, as old Outlook Express and
scripts piping `uuencode` into mail write them): decoded into attachments and taken out of
the text. Only a whole, valid block counts; anything else stays in the text as it came."""

from __future__ import annotations

import binascii
import mimetypes
import re

from maildesk.mail.message import ParsedAttachment
from maildesk.parse.attachments import sanitise_filename
from maildesk.parse.limits import MAX_CONTENT_TYPE

_BEGIN = re.compile(r"begin [0-7]{3,4} +(\S.*?)\s*")
_END = "end"
_OCTET_STREAM = "application/octet-stream"


def split_uuencoded(text: str, index: int) -> tuple[str, tuple[ParsedAttachment, ...]]:
    """The text without its uuencoded blocks, and the files they held; `index` is how many
    attachments the message already has (for the names of files whose name is unusable)."""
    lines = text.split("\n")
    kept: list[str] = []
    files: list[ParsedAttachment] = []
    i = 0
    while i < len(lines):
        begin = _BEGIN.fullmatch(lines[i])
        block = _block(lines, i + 1) if begin else None
        if begin is None or block is None:
            kept.append(lines[i])
            i += 1
            continue
        content, end = block
        name = sanitise_filename(begin.group(1), _OCTET_STREAM, index + len(files) + 1)
        files.append(ParsedAttachment(filename=name, content_type=_guessed(name), content=content))
        i = end + 1
        if kept and not kept[-1].strip() and i < len(lines) and not lines[i].strip():
            i += 1  # the blank lines around the block become one
    if not files:
        return text, ()
    return "\n".join(kept).strip(), tuple(files)


def _guessed(name: str) -> str:
    """The content type a file's name suggests; a compressed one (x.tar.gz) is just bytes."""
    ctype, compression = mimetypes.guess_type(name, strict=False)
    return (ctype if ctype and not compression else _OCTET_STREAM)[:MAX_CONTENT_TYPE]


def _block(lines: list[str], start: int) -> tuple[bytes, int] | None:
    """The bytes of the uuencoded lines from `start` to the `end` line, and that line's
    index; None unless every line up to it is a valid uuencoded line and some hold data."""
    chunks: list[bytes] = []
    finished = False  # a zero-length line ends the data: only `end` may follow it
    for j in range(start, len(lines)):
        line = lines[j].rstrip("\r")
        if line.rstrip() == _END:
            return (b"".join(chunks), j) if chunks else None
        if finished:
            return None
        data = _uu_line(line)
        if data is None:
            return None
        finished = not data
        if data:
            chunks.append(data)
    return None


def _uu_line(line: str) -> bytes | None:
    """One uuencoded line's bytes (b"" for the zero-length line), or None when the line is
    not one. The length character must match the line: binascii alone pads a short line
    with zeros, which would read most upper-case prose as data."""
    if not line or line in ("`", " "):
        return b""
    count = (ord(line[0]) - 32) & 63
    if not " " <= line[0] <= "`" or not line.isascii() or len(line) - 1 < (count + 2) // 3 * 4:
        return None
    try:
        return binascii.a2b_uu(line.encode("ascii"))
    except binascii.Error:
        return None
