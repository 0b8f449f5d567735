"""The email package's parse of a big message without holding its big parts three times.

`email.message_from_bytes` turns the whole message into one str, reads that through a
StringIO (four bytes a character in CPython), keeps every line of a part as a str of its
own and joins them into the part's payload: a 34 MB base64 attachment cost about 300 MB.
Here the bytes are fed to the parser in chunks, and every base64 leaf body of at least
CUT_MIN bytes is cut out first: the parser sees a one-line marker in its place, and the part
keeps a view of the original bytes. `get_payload(decode=True)` decodes from that view (one
copy, the decoded bytes), `get_payload()` gives the text as the parser would have (made
when asked), so every reader of the tree gets what it got before.

A message whose cut-out bodies cannot all be found again in the parsed tree is parsed
whole, as the email package reads it.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Iterator
from email.feedparser import BytesFeedParser
from email.message import Message
from email.policy import compat32
from typing import Any

__all__ = ["CUT_MIN", "message_from_bytes"]

CUT_MIN = 256 << 10  # bodies smaller than this are parsed as usual
FEED_CHUNK = 64 << 10
_BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.I)
_DELIMITER = re.compile(rb"^--([^\r\n]{1,204})\r?\n", re.M)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_BASE64 = re.compile(rb"^content-transfer-encoding[ \t]*:[ \t]*base64[ \t]*\r?$", re.I | re.M)
_CONTAINER = re.compile(rb"^content-type[ \t]*:[ \t]*(multipart|message)/", re.I | re.M)


class LeanMessage(Message):
    """A part whose body may be a view of the raw bytes (`cut`) instead of a str."""

    cut: memoryview | None = None

    def get_payload(self, i: Any = None, decode: bool = False) -> Any:
        view = self.cut
        if view is None or i is not None:
            return super().get_payload(i, decode)  # type: ignore[call-overload]
        if decode:
            try:
                return binascii.a2b_base64(view)
            except binascii.Error:
                pass  # bad padding and the like: the email package's lenient decoding
        self._payload = bytes(view).decode("ascii", "surrogateescape")
        try:
            return super().get_payload(i, decode)  # type: ignore[call-overload]
        finally:
            self._payload = ""

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        self.cut = None
        super().set_payload(payload, charset)


def message_from_bytes(raw: bytes) -> Message:
    """The email package's parse of `raw` (compat32, as `email.message_from_bytes`)."""
    if len(raw) < CUT_MIN:
        return _feed(raw)
    tag = secrets.token_hex(8)
    cuts: dict[str, memoryview] = {}
    fed = _feed(_with_cuts(raw, tag, cuts), LeanMessage)
    if not cuts:
        return fed
    found = 0
    for part in fed.walk():
        payload = vars(part).get("_payload")  # the marker as fed, before any reader sees it
        if isinstance(payload, str) and payload.startswith(tag):
            view = cuts.get(payload.strip())
            if view is None or not isinstance(part, LeanMessage):
                return _feed(raw)
            part.cut, part._payload = view, ""
            found += 1
    return fed if found == len(cuts) else _feed(raw)


def _feed(data: bytes, factory: type[Message] = Message) -> Message:
    parser = BytesFeedParser(_factory=factory, policy=compat32)
    view = memoryview(data)
    for start in range(0, len(data), FEED_CHUNK):
        parser.feed(bytes(view[start : start + FEED_CHUNK]))
    return parser.close()


def _with_cuts(raw: bytes, tag: str, cuts: dict[str, memoryview]) -> bytes:
    """`raw` with every big base64 leaf body replaced by a marker line (kept in `cuts`)."""
    view = memoryview(raw)
    out: list[bytes | memoryview] = []
    pos = 0
    for start, end in _big_bodies(raw):
        marker = f"{tag}-{len(cuts)}"
        cuts[marker] = view[start:end]
        out += [view[pos:start], marker.encode("ascii")]
        pos = end
    if not cuts:
        return raw
    out.append(view[pos:])
    return b"".join(out)


def _big_bodies(raw: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each base64 leaf body of at least CUT_MIN bytes: the text between
    its header block and the line end before the next delimiter line (or the end)."""
    declared = {(a or b) for a, b in _BOUNDARY.findall(raw)}
    segments: list[tuple[int, int]] = []
    if not declared:
        segments.append((0, len(raw)))
    else:
        delimiters = []  # (match, opens a part): every opening and close delimiter line
        for m in _DELIMITER.finditer(raw):
            name = m.group(1).rstrip(b" \t")
            if name in declared:
                delimiters.append((m, True))
            elif name.endswith(b"--") and name[:-2] in declared:
                delimiters.append((m, False))
        for (m, opens), nxt in zip(delimiters, [*delimiters[1:], None], strict=True):
            if opens:  # after a close delimiter comes an epilogue, not a part
                segments.append((m.end(), nxt[0].start() if nxt is not None else len(raw)))
    for start, end in segments:
        head = _HEAD_END.search(raw, start, end)
        if head is None or end - head.end() < CUT_MIN:
            continue
        block = raw[start : head.start()]
        if not _BASE64.search(block) or _CONTAINER.search(block):
            continue
        body_end = end
        if end < len(raw):  # the line end before a delimiter belongs to the delimiter
            body_end -= 2 if raw[end - 2 : end] == b"\r\n" else 1
        yield head.end(), body_end
