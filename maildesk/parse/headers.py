"""The header block: repaired where real mail bends the syntax, split into fields as the
email package and an MTA split it, values decoded (encoded-words, raw 8-bit bytes),
addresses and Message-IDs read and bounded.

Every function that decodes takes `hints`: the charsets the message declares (its text
parts', then its encoded-words'), tried for raw 8-bit bytes after UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from email.header import decode_header

from maildesk.mail.address import mailbox_list, normalise_address
from maildesk.parse.limits import (
    MAX_ADDRESS,
    MAX_ADDRESSES,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_MESSAGE_ID,
    MAX_NAME,
)
from maildesk.parse.text import WS, clean, decode_8bit, decode_text, safe

# What the email package's feedparser takes for a header line (a field, an mbox "From "
# line or a continuation); the first other line ends the header block.
_FIELD_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_LEADING_BLANK_LINES = re.compile(rb"\A(?:[ \t]*\r?\n)+")
_BOM = b"\xef\xbb\xbf"
# RFC 5322 section 4.5: obsolete syntax allows white space between a field name and its colon.
_OBS_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]+:")
_MSGID = re.compile(r"<[^<>\s]+>")
# An RFC 2047 encoded-word, read as the email package reads one (email.header.ecre).
_ENCODED_WORD = re.compile(r"=\?([^?]*?)\?([qQbB])\?(.*?)\?=")
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([^\s"';]+)""", re.I)


def repair_header_block(raw: bytes) -> bytes:
    """The bytes as they are parsed: the header block repaired where real mail bends the
    syntax so that the email package would end it early, the body after it unchanged.

    A UTF-8 byte-order mark and blank lines before the first field are dropped; an indented
    first field is unindented, and continuation lines before any field (continuations of
    nothing, which the email package drops too) are dropped; `Name :` is written `Name:`.
    The stored bytes stay as they came; only the parse reads the repair.
    """
    raw = _LEADING_BLANK_LINES.sub(b"", raw.removeprefix(_BOM), count=1)
    block: list[bytes] = []
    size = 0  # how much of raw the block holds
    changed = False
    for line in _lines(raw):
        indented_first = not block and line[:1] in (b" ", b"\t")
        fixed = line.lstrip(b" \t") if indented_first else line
        obsolete = _OBS_FIELD_NAME.match(fixed)
        if obsolete:
            fixed = obsolete.group(1) + fixed[obsolete.end() - 1 :]
        if not _FIELD_LINE.match(fixed):
            if not indented_first:
                break
            size += len(line)  # a continuation of nothing: dropped, as the email package does
            changed = True
            continue
        block.append(fixed)
        changed = changed or fixed is not line
        size += len(line)
    if not changed:  # as most mail is: no copy of a body that may be 30 MB
        return raw
    return b"".join(block) + raw[size:]


def _lines(raw: bytes) -> Iterator[bytes]:
    """The lines of `raw`, each with its line end (CRLF, CR or LF), as the feedparser reads them."""
    pos = 0
    while pos < len(raw):
        found = _LINE.match(raw, pos)
        line = found.group(0) if found else raw[pos:]
        yield line
        pos += len(line)


def _header_lines(raw: bytes) -> list[bytes]:
    """The lines of the header block as the email package's feedparser reads it: lines end
    at CRLF, CR or LF, and the first line that is neither a field, a continuation nor an
    mbox "From " line ends the block (a blank line, or the body's first line when the
    separator is missing). An MTA ends the header there too."""
    lines: list[bytes] = []
    for line in _lines(raw):
        if not _FIELD_LINE.match(line):
            break
        lines.append(line)
    return lines


def header_block(raw: bytes) -> bytes:
    """The bytes of the header block (see _header_lines), without the separator line."""
    return raw[: sum(len(line) for line in _header_lines(raw))]


def header_fields(raw: bytes) -> list[tuple[str, bytes]]:
    """(name lower-cased, value unfolded, nothing decoded) for every field, in order, split
    as the email package splits them, so every header-derived value comes from the same
    fields the standard library (and the MTA) saw."""
    lines = _header_lines(raw)
    fields: list[list[bytes]] = []
    current: list[bytes] | None = None
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if current is not None:  # a continuation of nothing is dropped, as Python does
                current.append(line)
            continue
        current = None
        if line.startswith(b"From ") or line.startswith(b":"):
            continue  # an mbox envelope line, or a field without a name: not a field
        current = [line]
        fields.append(current)
        if len(fields) >= MAX_HEADERS:
            break
    out: list[tuple[str, bytes]] = []
    for field in fields:
        name, _, value = b"".join(field).partition(b":")
        # Unfolding removes the line breaks before continuation whitespace, nothing else.
        out.append((name.lower().decode("ascii", "replace"), _LINE_BREAK.sub(b"", value).strip()))
    return out


def first_values(fields: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """Field name -> its first value, as the email package's msg.get answers."""
    out: dict[str, bytes] = {}
    for name, value in fields:
        out.setdefault(name, value)
    return out


def header_charsets(fields: list[tuple[str, bytes]]) -> tuple[str, ...]:
    """The charsets the header block declares, lower-cased, in order: the Content-Type
    charset, then those of the encoded-words (hints, see the module docstring)."""
    texts = [(name, value.decode("latin-1")) for name, value in fields]
    labels = [c for n, t in texts if n == "content-type" for c in _CHARSET_PARAM.findall(t)]
    labels += [m.group(1) for _, t in texts for m in _ENCODED_WORD.finditer(t)]
    return tuple(dict.fromkeys(label.lower() for label in labels))


def as_sent(
    fields: list[tuple[str, bytes]], hints: Sequence[str] = ()
) -> Iterator[tuple[str, str]]:
    """Every field as text, encoded-words left encoded (raw 8-bit bytes decoded)."""
    for name, value in fields:
        yield clean(name), clean(decode_8bit(value[:MAX_HEADER_VALUE], hints))


def header_text(first: dict[str, bytes], name: str, hints: Sequence[str] = ()) -> str:
    """A header as text: encoded-words decoded; raw 8-bit bytes decoded as UTF-8, in the
    message's charsets or as Windows-1252."""
    return clean(decode_words(_undecoded(first, name, hints), hints))


def _undecoded(first: dict[str, bytes], name: str, hints: Sequence[str]) -> str:
    """A header as text with its encoded-words still encoded (raw 8-bit bytes decoded)."""
    value = first.get(name.lower())
    return "" if value is None else decode_8bit(value[:MAX_HEADER_VALUE], hints)


def decode_words(value: str, hints: Sequence[str] = ()) -> str:
    """A header value with its encoded-words decoded (RFC 2047), words in unknown or wrong
    charsets too: white space between adjacent encoded-words is dropped even when their
    charsets differ (section 6.2), white space next to ordinary text is kept as written, and
    a run of adjacent words in one charset is decoded as one (a character split across two
    words is whole again). A word that does not decode stays as written."""
    pieces: list[str | tuple[bytes, str]] = []  # text, or a word's bytes and charset
    pos = 0
    for found in _ENCODED_WORD.finditer(value):
        word = _word_bytes(found.group(0))
        between = value[pos : found.start()]
        pos = found.end()
        if word is None:
            pieces.append(between + found.group(0))
            continue
        if between and not (between.isspace() and pieces and isinstance(pieces[-1], tuple)):
            pieces.append(between)
        last = pieces[-1] if pieces else None
        if isinstance(last, tuple) and last[1] == word[1]:
            pieces[-1] = (last[0] + word[0], word[1])
        else:
            pieces.append(word)
    if not pieces:
        return value
    pieces.append(value[pos:])
    return "".join(p if isinstance(p, str) else decode_text(p[0], p[1], hints) for p in pieces)


def _word_bytes(word: str) -> tuple[bytes, str] | None:
    """The bytes and the charset (lower-cased) of one encoded-word; None when its
    base64 or quoted-printable text does not decode."""
    try:
        [(data, charset)] = decode_header(word)
    except Exception:  # HeaderParseError, binascii errors: the email package's own
        return None
    if not isinstance(data, bytes) or not isinstance(charset, str):
        return None
    return data, charset.lower()


def mailboxes(
    first: dict[str, bytes], name: str, hints: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, addresses normalised (lower-cased,
    NFC, the domain in Unicode: see maildesk.mail.address.normalise_address).

    The header is read as an MTA reads it (see maildesk.mail.address): split into
    mailboxes before any encoded-word is decoded, the angle address taken as the address
    whatever the phrase before it says, and an encoded-word never read as an address.
    """
    out = []
    for display, addr in safe(lambda: mailbox_list(_undecoded(first, name, hints)), []):
        addr = normalise_address(clean(addr).strip())
        if "@" in addr and len(addr) <= MAX_ADDRESS and not WS.search(addr):
            name_text = clean(WS.sub(" ", decode_words(display, hints)).strip())
            out.append((name_text[:MAX_NAME], addr))
            if len(out) >= MAX_ADDRESSES:
                break
    return out


def addresses(first: dict[str, bytes], name: str, hints: Sequence[str] = ()) -> tuple[str, ...]:
    """The distinct addresses of an address header, in order."""
    return tuple(dict.fromkeys(addr for _, addr in mailboxes(first, name, hints)))


def first_id(value: str) -> str | None:
    """The first Message-ID in a header value (a bare id@host gets its angle brackets)."""
    found = _MSGID.search(value)
    if found:
        return found.group(0)
    bare = value.strip()
    return f"<{bare}>" if bare and " " not in bare and "@" in bare else None


def message_ids(value: str) -> tuple[str, ...]:
    """Every Message-ID in a header value that fits the store."""
    return tuple(i for i in _MSGID.findall(value) if fits_id(i))


def fits_id(message_id: str) -> bool:
    """True when the store's message_id column can hold it."""
    return len(message_id.encode("utf-8", "replace")) <= MAX_MESSAGE_ID
