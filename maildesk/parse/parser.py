"""Turn raw RFC 5322 bytes into a ParsedMessage. The only module that touches mail-parser.

Parsing is defensive: Python's email package raises on first access to some broken headers
and parts, and mail-parser on some broken trees, so every field is read through a guard and
falls back to something sensible. The bytes are parsed once by the standard library; the
tree is checked against MAX_PARTS and MAX_DEPTH (a message past them raises
MessageTooComplex and is quarantined) before mail-parser decodes the text bodies, and our
own walk of the same tree collects attachments and recovers text mail-parser dropped.
Every text field is clean: no NUL characters, no lone surrogates, bounded lengths that fit
the store's columns.
"""

from __future__ import annotations

import base64
import codecs
import email
import email.policy
import email.utils
import hashlib
import logging
import mimetypes
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

from maildesk.errors import MessageTooComplex, NotMail
from maildesk.mail.address import mailbox_list
from maildesk.mail.message import ParsedAttachment, ParsedMessage, minted_message_id

# ParsedMessage and the minted ids live in maildesk.mail.message; named here for the callers
# that import them with the parser.
__all__ = [
    "ParsedAttachment",
    "ParsedMessage",
    "Summary",
    "html_to_text",
    "looks_like_mail",
    "minted_message_id",
    "parse_message",
    "sanitise_filename",
    "summarise",
]

log = logging.getLogger(__name__)

# Past these the message is quarantined instead of parsed: a 10,000-part multipart or a
# 100-level nesting costs seconds of CPU in the email package (and recursion past ~1,000
# levels), while real mail stays far below (a forward of a forward of a signed message
# with attachments is about 8 levels deep).
MAX_PARTS = 1000
MAX_DEPTH = 32
# What the store's columns and the notifications can hold.
# messages.message_id is VARCHAR(998) with a b-tree index (PostgreSQL: < 2,712 bytes a row)
MAX_MESSAGE_ID = 900  # bytes in UTF-8
MAX_ADDRESS = 320  # contacts.email, messages.from_addr
MAX_NAME = 256  # contacts.name, messages.from_name
MAX_SUBJECT = 1000
MAX_REFERENCES = 50  # the nearest ones; a References header can list thousands
MAX_ADDRESSES = 200  # per address header
MAX_HEADERS = 1000
MAX_HEADER_VALUE = 16_000
MAX_CONTENT_ID = 500
MAX_CONTENT_TYPE = 200

_HEADER_LINE = re.compile(rb"^(From |[\x21-\x39\x3b-\x7e]+:)")
# What the email package's feedparser takes for a header line (a field, an mbox "From "
# line or a continuation); the first other line ends the header block.
_FIELD_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_LEADING_BLANK_LINES = re.compile(rb"\A(?:[ \t]*\r?\n)+")
_MSGID = re.compile(r"<[^<>\s]+>")
_WS = re.compile(r"\s+")
_UNCLEAN = re.compile("[\x00\ud800-\udfff]")
_BOUNDARY_PARAM = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))""", re.I)
_DELIMITER_LINE = re.compile(rb"^--([^\r\n]{1,204})", re.M)
# HTML elements that start a new line in the text rendering; inline ones (span, b, a) do not.
_BLOCK_TAGS = [
    "p",
    "div",
    "li",
    "tr",
    "table",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "article",
    "header",
    "footer",
]
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
# Names Windows treats as devices in any directory and with any extension.
_RESERVED_NAMES = re.compile(
    r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\.|$)", re.I
)


@dataclass(frozen=True)
class Summary:
    """What the header block alone says: enough to list a message that cannot be parsed."""

    from_addr: str
    subject: str
    message_id: str


def looks_like_mail(raw: bytes) -> bool:
    """True when the bytes start with a header line (or an mbox 'From ' line)."""
    return bool(raw.strip()) and bool(_HEADER_LINE.match(_strip_leading_blank_lines(raw)))


def parse_message(
    raw: bytes, *, max_parts: int = MAX_PARTS, max_depth: int = MAX_DEPTH
) -> ParsedMessage:
    """Parse raw bytes; raise NotMail for input that has no header block at all, and
    MessageTooComplex for a MIME tree past the limits."""
    if not looks_like_mail(raw):
        raise NotMail("input has no header block: not an email message")
    body = _strip_leading_blank_lines(raw)
    _count_delimiters(body, max_parts)
    msg = _email_tree(body)
    parts = _walk(msg, max_parts, max_depth)
    defects = _defects(parts)
    # mail-parser's second reading only helps where the tree is broken (it recovers parts
    # lost in an epilogue, for one); well-formed mail is read by our walk alone.
    mp = _safe(lambda: _mailparser(msg), None) if defects else None
    fields = _header_fields(body)
    first = _first_values(fields)

    message_id = _first_id(_header(first, "Message-ID"))
    if message_id is not None and not _fits_id(message_id):
        message_id = None
    from_name, from_addr = next(iter(_mailboxes(first, "From")), ("", ""))
    text, html = _bodies(mp, parts)
    subject = _WS.sub(" ", _header(first, "Subject")).strip()
    return ParsedMessage(
        message_id=message_id or minted_message_id(raw),
        message_id_minted=message_id is None,
        subject=_clean(subject)[:MAX_SUBJECT],
        from_addr=from_addr,
        from_name=from_name,
        to=_addresses(first, "To"),
        cc=_addresses(first, "Cc"),
        reply_to=_addresses(first, "Reply-To"),
        in_reply_to=_ids(_header(first, "In-Reply-To"))[-MAX_REFERENCES:],
        references=_ids(_header(first, "References"))[-MAX_REFERENCES:],
        body_text=_clean(text),
        body_html=_clean(html),
        attachments=tuple(_attachments(parts, mp, body)),
        headers=tuple((name, _clean(_decode_words(value))) for name, value in _as_sent(fields)),
        content_type=_clean(_safe(lambda: msg.get_content_type(), "text/plain"))[:MAX_CONTENT_TYPE],
        defects=tuple(_clean(d) for d in defects),
        size=len(raw),
        charsets=tuple(_clean(c) for c in _safe(lambda: _charsets(parts), ())),
        raw_headers=tuple(_as_sent(fields)),
    )


def _mailparser(msg: Message) -> Any:
    """mail-parser's reading of a broken tree (loaded only when a tree is broken)."""
    import mailparser

    return mailparser.MailParser(msg)


def summarise(raw: bytes) -> Summary:
    """From, Subject and Message-ID read from the header block alone; never raises."""
    try:
        first = _first_values(_header_fields(_strip_leading_blank_lines(raw[:256_000])))
        from_addr = next(iter(_mailboxes(first, "From")), ("", ""))[1]
        subject = _WS.sub(" ", _header(first, "Subject")).strip()
        message_id = _first_id(_header(first, "Message-ID")) or ""
        return Summary(from_addr, _clean(subject)[:MAX_SUBJECT], _clean(message_id)[:998])
    except Exception:  # a summary is a courtesy; unreadable is a fine answer
        return Summary("", "", "")


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: scripts and styles dropped, blocks on their own lines."""
    from bs4 import BeautifulSoup  # loaded only for mail that has HTML and no text

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head"]):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(_BLOCK_TAGS):
        block.insert_before("\n")
        block.insert_after("\n")
    text = soup.get_text("")
    lines = (_WS.sub(" ", line).strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def sanitise_filename(name: str | None, content_type: str, index: int) -> str:
    """A filename safe to show and to write anywhere: no paths, controls, reserved characters
    or device names (CON, NUL, COM1, ...)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE_FILENAME.sub("_", base)
    base = unicodedata.normalize("NFC", _clean(base)).strip(" .")
    if _RESERVED_NAMES.match(base):
        base = f"_{base}"
    if not base:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        base = f"attachment-{index}{ext}"
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) < 16 else base[:200]
    return base


# --- defensive helpers --------------------------------------------------------------------


def _safe(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except Exception:  # the email package raises many kinds on broken input
        return default


def _clean(text: str) -> str:
    """Text the store and every UTF-8 sink accept: no NUL, lone surrogates replaced."""
    if not isinstance(text, str):
        text = str(text)
    return _UNCLEAN.sub(lambda m: "" if m.group(0) == "\x00" else "\ufffd", text)


def _strip_leading_blank_lines(raw: bytes) -> bytes:
    return _LEADING_BLANK_LINES.sub(b"", raw, count=1)


def _count_delimiters(raw: bytes, max_parts: int) -> None:
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


def _email_tree(raw: bytes) -> Message:
    """The standard library's parse; never raises except for a tree nested past recursion."""
    try:
        msg = email.message_from_bytes(raw)
    except RecursionError as exc:
        raise MessageTooComplex(
            f"MIME parts nested too deeply to parse (limit MAX_DEPTH={MAX_DEPTH})"
        ) from exc
    except Exception:
        # Keep what can be read: the header block, and the rest as one text body.
        head = _header_block(raw)
        rest = raw[len(head) :].lstrip(b"\r\n")
        msg = _safe(lambda: email.message_from_bytes(head + b"\r\n\r\n"), None) or Message()
        msg.set_payload(_decode_8bit(rest))
        return msg
    return _safe(lambda: _with_real_boundary(msg, raw), None) or msg


def _with_real_boundary(msg: Message, raw: bytes) -> Message | None:
    """A multipart whose declared boundary never appears, but whose body starts with another
    delimiter line (some mailers write one boundary into the header and use another):
    parsed again with the boundary the body uses. None when that is not the case."""
    if msg.get_content_maintype() != "multipart" or isinstance(msg.get_payload(), list):
        return None
    body = raw[len(_header_block(raw)) :].lstrip(b"\r\n")
    first = re.match(rb"--([0-9A-Za-z'()+_,./:=?-]{1,70})[ \t]*\r?\n", body)
    if first is None:
        return None
    fixed = email.message_from_bytes(raw)
    fixed.set_boundary(first.group(1).decode("ascii"))
    head = fixed.as_bytes().split(b"\n\n", 1)[0]
    reparsed = email.message_from_bytes(head + b"\n\n" + body)
    return reparsed if isinstance(reparsed.get_payload(), list) else None


@dataclass(frozen=True)
class _Part:
    part: Message
    depth: int
    container: bool  # multipart/* or message/rfc822 with parsed sub-parts


def _walk(msg: Message, max_parts: int, max_depth: int) -> list[_Part]:
    """Every part in document order, without recursion, checked against the limits.

    A message/rfc822 part is listed once (it becomes an .eml attachment); its inner parts
    are listed too, so the limits count them and the text of a forward can be read.
    """
    out: list[_Part] = []
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
        payload = _safe(lambda p=part: p.get_payload(), None)
        children = (
            [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
        )
        out.append(_Part(part, depth, bool(children)))
        stack.extend((child, depth + 1) for child in reversed(children))
    return out


def _header_lines(raw: bytes) -> list[bytes]:
    """The lines of the header block as the email package's feedparser reads it: lines end
    at CRLF, CR or LF, and the first line that is neither a field, a continuation nor an
    mbox "From " line ends the block (a blank line, or the body's first line when the
    separator is missing). An MTA ends the header there too."""
    lines: list[bytes] = []
    pos = 0
    while pos < len(raw):
        found = _LINE.match(raw, pos)
        line = found.group(0) if found else b""
        if not line or not _FIELD_LINE.match(line):
            break
        lines.append(line)
        pos += len(line)
    return lines


def _header_block(raw: bytes) -> bytes:
    """The bytes of the header block (see _header_lines), without the separator line."""
    return raw[: sum(len(line) for line in _header_lines(raw))]


def _header_fields(raw: bytes) -> list[tuple[str, bytes]]:
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


def _first_values(fields: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """Field name -> its first value, as the email package's msg.get answers."""
    out: dict[str, bytes] = {}
    for name, value in fields:
        out.setdefault(name, value)
    return out


def _as_sent(fields: list[tuple[str, bytes]]) -> Iterator[tuple[str, str]]:
    """Every field as text, encoded-words left encoded (raw 8-bit bytes decoded)."""
    for name, value in fields:
        yield _clean(name), _clean(_decode_8bit(value[:MAX_HEADER_VALUE]))


def _decode_8bit(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("cp1252", errors="replace")


def _decode_text(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part in its declared charset; unknown or wrong charsets fall back.

    Pure 7-bit bytes are decoded with the declared charset, leniently: stateful 7-bit
    charsets (ISO-2022-JP, UTF-7, HZ) must be decoded, and for ASCII-compatible ones it
    changes nothing. 8-bit bytes are tried as declared, then as UTF-8, then as cp1252
    (the usual truth behind a missing or wrong label).
    """
    codec = _codec(charset)
    if payload.isascii():
        return payload.decode(codec or "ascii", "replace")
    for candidate in (codec, "utf-8"):
        if candidate:
            try:
                return payload.decode(candidate)
            except (UnicodeError, ValueError):
                pass
    return payload.decode("cp1252", "replace")


def _codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset name, or None for an unknown one."""
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    try:
        info = codecs.lookup(name)
    except Exception:
        return None
    # Python also has bytes-to-bytes and str-to-str codecs (base64, zlib, rot13 ...), which
    # it marks as not text encodings; bytes.decode refuses them.
    return info.name if getattr(info, "_is_text_encoding", True) else None


def _header(first: dict[str, bytes], name: str) -> str:
    """A header as text: encoded-words decoded; raw 8-bit bytes decoded as UTF-8 or cp1252."""
    return _clean(_decode_words(_undecoded(first, name)))


def _undecoded(first: dict[str, bytes], name: str) -> str:
    """A header as text with its encoded-words still encoded (raw 8-bit bytes decoded)."""
    value = first.get(name.lower())
    return "" if value is None else _decode_8bit(value[:MAX_HEADER_VALUE])


def _decode_words(value: str) -> str:
    """A header value with its encoded-words decoded; words in unknown charsets too."""
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        pass
    try:
        chunks = decode_header(value)
    except Exception:
        return value
    return "".join(c if isinstance(c, str) else _decode_text(c, charset) for c, charset in chunks)


def _mailboxes(first: dict[str, bytes], name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, addresses lower-cased.

    The header is read as an MTA reads it (see maildesk.mail.address): split into
    mailboxes before any encoded-word is decoded, the angle address taken as the address
    whatever the phrase before it says, and an encoded-word never read as an address.
    """
    out = []
    for display, addr in _safe(lambda: mailbox_list(_undecoded(first, name)), []):
        addr = _clean(addr).strip().lower()
        if "@" in addr and len(addr) <= MAX_ADDRESS and not _WS.search(addr):
            name_text = _clean(_WS.sub(" ", _decode_words(display)).strip())
            out.append((name_text[:MAX_NAME], addr))
            if len(out) >= MAX_ADDRESSES:
                break
    return out


def _addresses(first: dict[str, bytes], name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(addr for _, addr in _mailboxes(first, name)))


def _first_id(value: str) -> str | None:
    found = _MSGID.search(value)
    if found:
        return found.group(0)
    bare = value.strip()
    return f"<{bare}>" if bare and " " not in bare and "@" in bare else None


def _ids(value: str) -> tuple[str, ...]:
    return tuple(i for i in _MSGID.findall(value) if _fits_id(i))


def _fits_id(message_id: str) -> bool:
    return len(message_id.encode("utf-8", "replace")) <= MAX_MESSAGE_ID


# --- bodies and attachments -----------------------------------------------------------------


def _bodies(mp: Any, parts: list[_Part]) -> tuple[str, str]:
    """Text and HTML bodies. Our walk decodes every charset (mail-parser leaves 7-bit ones
    such as ISO-2022-JP and UTF-7 undecoded); mail-parser's own reading and any text left in
    the tree are the fallbacks, so a body is only empty when the message has no text."""
    text, html = _walked_bodies(parts)
    if not text and not html:
        text = "\n".join(_safe(lambda: [str(t) for t in mp.text_plain], None) or []).strip()
        html = "\n".join(_safe(lambda: [str(t) for t in mp.text_html], None) or []).strip()
    if not text and not html:
        # A multipart without boundaries, text/* parts of unknown kinds: keep their text.
        text = _leftover_text(parts)
    if not text and html:
        text = _safe(lambda: html_to_text(html), "")
    return text.replace("\r\n", "\n"), html


def _walked_bodies(parts: list[_Part]) -> tuple[str, str]:
    """The text/plain and text/html parts that are not attachments, each decoded."""
    plain: list[str] = []
    html: list[str] = []
    for p in parts:
        if p.container or _is_attachment(p.part):
            continue
        ctype = _safe(lambda p=p: p.part.get_content_type(), "text/plain")
        if ctype in ("text/plain", "text/html"):
            (plain if ctype == "text/plain" else html).append(_part_text(p.part))
    return "\n".join(t for t in plain if t).strip(), "\n".join(t for t in html if t).strip()


def _leftover_text(parts: list[_Part]) -> str:
    texts = []
    for p in parts:
        ctype = _safe(lambda p=p: p.part.get_content_type(), "text/plain")
        maintype, _, subtype = ctype.partition("/")
        readable = maintype in ("text", "multipart") or subtype == "plain"
        if not p.container and readable and not _is_attachment(p.part):
            texts.append(_part_text(p.part))
    return "\n".join(t for t in texts if t.strip()).strip()


def _part_text(part: Message) -> str:
    payload = _safe(lambda: part.get_payload(decode=True), None)
    if not isinstance(payload, bytes):
        raw = _safe(lambda: part.get_payload(), "")
        return raw if isinstance(raw, str) else ""
    charset = _safe(lambda: part.get_content_charset(), None)
    return _decode_text(payload, charset).strip()


def _is_attachment(part: Message) -> bool:
    disposition = _safe(lambda: part.get_content_disposition(), None)
    return disposition == "attachment" or bool(_filename(part))


def _filename(part: Message) -> str:
    name = _safe(lambda: part.get_filename(), None) or _safe(lambda: part.get_param("name"), None)
    if isinstance(name, tuple):  # an RFC 2231 value get_param did not collapse
        name = _safe(lambda: email.utils.collapse_rfc2231_value(name), "")
    return _decode_words(str(name)) if name else ""


def _attachments(parts: list[_Part], mp: Any, raw: bytes) -> list[ParsedAttachment]:
    """Our walk's attachments, plus any mail-parser recovered from a broken tree (it reads
    parts lost in an epilogue, for one) that the walk did not see at all."""
    found = list(_walked_attachments(parts))
    if mp is None:  # a well-formed tree: the walk saw every part
        return found
    seen = {hashlib.sha256(a.content).digest() for a in found}
    seen |= {_wire_key(p.part) for p in parts}
    for att in _safe(lambda: list(mp.attachments), None) or []:
        content = _safe(lambda att=att: _mailparser_content(att), b"")
        wire = _squeeze(str(att.get("payload") or "").encode("utf-8", "replace"))
        if not content or wire in seen or hashlib.sha256(content).digest() in seen:
            continue
        ctype = _clean(str(att.get("mail_content_type") or "application/octet-stream"))
        name = _clean(str(att.get("filename") or ""))
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
    payload = _safe(lambda: part.get_payload(), None)
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
        return _safe(lambda: base64.b64decode(payload), None) or str(payload).encode()
    return str(payload).encode(att.get("charset") or "utf-8", errors="replace")


def _walked_attachments(parts: list[_Part]) -> Iterator[ParsedAttachment]:
    """Every part that is not body text, in document order. A forwarded message is kept
    whole as an .eml, and its own attachments are listed too; a forward inside a forward is
    not kept again (it is in the outer .eml), so nesting cannot multiply what is stored."""
    index = 0
    forward_end = 0  # parts before this index are inside a forwarded message
    for i, p in enumerate(parts):
        ctype = _safe(lambda p=p: p.part.get_content_type(), "application/octet-stream")
        if ctype == "message/rfc822" and i > 0:
            if i >= forward_end:
                forward_end = _subtree_end(parts, i)
                index += 1
                yield _forwarded(p.part, index)
            continue
        if p.container:
            continue
        maintype = ctype.partition("/")[0]
        body_text = ctype in ("text/plain", "text/html") or maintype == "multipart"
        if body_text and not _is_attachment(p.part):
            continue
        index += 1
        content = _safe(lambda p=p: p.part.get_payload(decode=True), None)
        if not isinstance(content, bytes):
            content = _safe(lambda p=p: str(p.part.get_payload()).encode("utf-8", "replace"), b"")
        cid = _clean(_safe(lambda p=p: str(p.part.get("Content-ID") or ""), "")).strip()
        yield ParsedAttachment(
            filename=sanitise_filename(_filename(p.part), ctype, index),
            content_type=_clean(ctype)[:MAX_CONTENT_TYPE],
            content=content,
            content_id=cid[:MAX_CONTENT_ID] or None,
        )


def _subtree_end(parts: list[_Part], start: int) -> int:
    depth = parts[start].depth
    end = start + 1
    while end < len(parts) and parts[end].depth > depth:
        end += 1
    return end


def _forwarded(part: Message, index: int) -> ParsedAttachment:
    """A message/rfc822 part as an .eml file named after its subject."""
    payload = _safe(lambda: part.get_payload(), None)
    inner = payload[0] if isinstance(payload, list) and payload else None
    content = b""
    if isinstance(inner, Message):
        content = _safe(lambda: inner.as_bytes(), None) or _safe(
            lambda: inner.as_string().encode("utf-8", "surrogateescape"), b""
        )
    name = _filename(part)
    if not name and isinstance(inner, Message):
        subject = _clean(_decode_words(_safe(lambda: str(inner.get("Subject") or ""), "")))
        name = f"{_WS.sub(' ', subject).strip()[:120]}.eml" if subject.strip() else ""
    return ParsedAttachment(
        filename=sanitise_filename(name or f"forwarded-{index}.eml", "message/rfc822", index),
        content_type="message/rfc822",
        content=content,
    )


def _charsets(parts: list[_Part]) -> tuple[str, ...]:
    found = (
        _safe(lambda p=p: p.part.get_content_charset(), None)
        for p in parts
        if _safe(lambda p=p: p.part.get_content_maintype(), "") == "text" and not _filename(p.part)
    )
    return tuple(dict.fromkeys(c.lower() for c in found if isinstance(c, str) and c))


def _defects(parts: list[_Part]) -> list[str]:
    """What the email package noticed was wrong, per part: "content/type: DefectName"."""
    out: list[str] = []
    for p in parts:
        for defect in _safe(lambda p=p: list(p.part.defects), []):
            ctype = _safe(lambda p=p: p.part.get_content_type(), "?")
            out.append(f"{ctype}: {type(defect).__name__}")
    return out
