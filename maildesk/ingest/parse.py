"""Turn raw RFC 5322 bytes into a ParsedMessage. The only module that touches mail-parser.

Parsing is defensive: Python's email package raises on first access to some broken headers
and parts, so every field is read through a guard and falls back to something sensible.
A message that still cannot be read raises, and the pipeline quarantines it with the reason.
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import logging
import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from typing import Any

import mailparser
from bs4 import BeautifulSoup

from maildesk.errors import NotMail

log = logging.getLogger(__name__)

_HEADER_LINE = re.compile(rb"^(From |[\x21-\x39\x3b-\x7e]+:)")
_MSGID = re.compile(r"<[^<>\s]+>")
_WS = re.compile(r"\s+")
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


@dataclass(frozen=True, kw_only=True)
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, kw_only=True)
class ParsedMessage:
    message_id: str
    message_id_minted: bool
    subject: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    body_text: str
    body_html: str
    attachments: tuple[ParsedAttachment, ...]
    headers: tuple[tuple[str, str], ...]  # (lower-cased name, decoded value), in order
    content_type: str
    defects: tuple[str, ...] = ()
    size: int = 0  # bytes of the raw message
    charsets: tuple[str, ...] = ()  # declared charsets of the text parts, lower-cased

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k == wanted), None)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this message answers, nearest first (In-Reply-To, then References)."""
        seen: dict[str, None] = dict.fromkeys(self.in_reply_to)
        seen.update(dict.fromkeys(reversed(self.references)))
        return tuple(seen)


MINTED_ID_DOMAIN = "no-message-id.maildesk.invalid"


def minted_message_id(raw: bytes) -> str:
    """A stable Message-ID for a message that has none: the same bytes give the same id."""
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@{MINTED_ID_DOMAIN}>"


def looks_like_mail(raw: bytes) -> bool:
    """True when the bytes start with a header line (or an mbox 'From ' line)."""
    return bool(raw.strip()) and bool(_HEADER_LINE.match(raw.lstrip(b"\r\n")))


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw bytes; raise NotMail for input that has no header block at all."""
    if not looks_like_mail(raw):
        raise NotMail("input has no header block: not an email message")
    mp = mailparser.parse_from_bytes(raw)
    msg: Message = mp.message
    raw_headers = _raw_header_block(raw)

    message_id = _first_id(_header(msg, "Message-ID", raw_headers))
    from_name, from_addr = next(iter(_mailboxes(msg, "From", raw_headers)), ("", ""))
    text, html = _bodies(mp, msg)
    return ParsedMessage(
        message_id=message_id or minted_message_id(raw),
        message_id_minted=message_id is None,
        subject=_WS.sub(" ", _header(msg, "Subject", raw_headers)).strip(),
        from_addr=from_addr,
        from_name=from_name,
        to=_addresses(msg, "To", raw_headers),
        cc=_addresses(msg, "Cc", raw_headers),
        reply_to=_addresses(msg, "Reply-To", raw_headers),
        in_reply_to=tuple(_MSGID.findall(_header(msg, "In-Reply-To", raw_headers))),
        references=tuple(_MSGID.findall(_header(msg, "References", raw_headers))),
        body_text=text,
        body_html=html,
        attachments=tuple(_attachments(mp)),
        headers=tuple(_all_headers(raw)),
        content_type=_safe(lambda: msg.get_content_type(), "text/plain"),
        defects=tuple(_defects(mp)),
        size=len(raw),
        charsets=tuple(_safe(lambda: _charsets(msg), ())),
    )


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: scripts and styles dropped, blocks on their own lines."""
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
    """A filename safe to show and to write anywhere: no paths, controls or reserved chars."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = _UNSAFE_FILENAME.sub("_", base).strip(" .")
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


def _raw_header_lines(raw: bytes) -> list[tuple[str, bytes]]:
    """(name lower-cased, raw unfolded value) for every header line, in order."""
    end = re.search(rb"\r?\n\r?\n", raw)
    block = raw[: end.start()] if end else raw
    out: list[tuple[str, bytes]] = []
    for line in re.split(rb"\r?\n(?![ \t])", block):
        name, sep, value = line.partition(b":")
        if sep and name and b" " not in name.strip():
            unfolded = re.sub(rb"\r?\n(?=[ \t])", b"", value).strip()
            out.append((name.strip().lower().decode("ascii", "replace"), unfolded))
    return out


def _raw_header_block(raw: bytes) -> dict[str, bytes]:
    """Header name (lower) -> its first raw value, for recovering raw 8-bit header values."""
    out: dict[str, bytes] = {}
    for name, value in _raw_header_lines(raw):
        out.setdefault(name, value)
    return out


def _decode_8bit(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("cp1252", errors="replace")


def _header(msg: Message, name: str, raw_headers: dict[str, bytes]) -> str:
    """A header as text: encoded-words decoded; raw 8-bit bytes decoded as UTF-8 or cp1252."""
    return _decode_words(_undecoded(msg, name, raw_headers))


def _undecoded(msg: Message, name: str, raw_headers: dict[str, bytes]) -> str:
    """A header as text with its encoded-words still encoded (raw 8-bit bytes decoded)."""
    raw_value = raw_headers.get(name.lower())
    if raw_value is not None and any(b > 0x7F for b in raw_value):
        return _decode_8bit(raw_value)
    value = _safe(lambda: msg.get(name), None)
    return "" if value is None else str(value)


def _decode_words(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


def _mailboxes(msg: Message, name: str, raw_headers: dict[str, bytes]) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, addresses lower-cased.

    The header is split into addresses *before* encoded-words are decoded, so a display
    name like =?utf-8?q?M=C3=BCller=2C_J=C3=BCrgen?= or one that spells out an address
    can never change which address the header names.
    """
    value = _undecoded(msg, name, raw_headers)
    pairs = _safe(lambda: _modern_addresses(name, value), None)
    if pairs is None:
        pairs = _safe(lambda: getaddresses([value]), [])
    out = []
    for display, addr in pairs:
        addr = addr.strip().lower()
        if "@" in addr:
            out.append((_WS.sub(" ", _decode_words(display)).strip(), addr))
    return out


def _modern_addresses(name: str, value: str) -> list[tuple[str, str]]:
    """The standard library's RFC 5322 address parser (encoded-words are atoms in it)."""
    header = email.policy.default.header_factory(name, value)
    return [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]


def _addresses(msg: Message, name: str, raw_headers: dict[str, bytes]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(addr for _, addr in _mailboxes(msg, name, raw_headers)))


def _first_id(value: str) -> str | None:
    found = _MSGID.search(value)
    if found:
        return found.group(0)
    bare = value.strip()
    return f"<{bare}>" if bare and " " not in bare and "@" in bare else None


def _all_headers(raw: bytes) -> list[tuple[str, str]]:
    """Every header, repeated ones included, in order, decoded."""
    return [(name, _decode_words(_decode_8bit(value))) for name, value in _raw_header_lines(raw)]


def _bodies(mp: Any, msg: Message) -> tuple[str, str]:
    text = "\n".join(_safe(lambda: mp.text_plain, [])).strip()
    html = "\n".join(_safe(lambda: mp.text_html, [])).strip()
    if "\ufffd" in text and not _safe(lambda: msg.is_multipart(), True):
        # An 8-bit body without a declared charset: retry as UTF-8, then cp1252.
        payload = _safe(lambda: msg.get_payload(decode=True), None)
        if isinstance(payload, bytes):
            text = _decode_8bit(payload).strip()
    if not text and html:
        text = _safe(lambda: html_to_text(html), "")
    return text.replace("\r\n", "\n"), html


def _attachments(mp: Any) -> list[ParsedAttachment]:
    out = []
    for i, att in enumerate(_safe(lambda: mp.attachments, []), start=1):
        content_type = str(att.get("mail_content_type") or "application/octet-stream").lower()
        payload = att.get("payload") or ""
        if att.get("binary"):
            content = _safe(lambda p=payload: base64.b64decode(p), b"")
        else:
            content = str(payload).encode(att.get("charset") or "utf-8", errors="replace")
        cid = (att.get("content-id") or "").strip() or None
        out.append(
            ParsedAttachment(
                filename=sanitise_filename(att.get("filename"), content_type, i),
                content_type=content_type,
                content=content,
                content_id=cid,
            )
        )
    return out


def _charsets(msg: Message) -> tuple[str, ...]:
    found = (
        part.get_content_charset()
        for part in msg.walk()
        if part.get_content_maintype() == "text" and not part.get_filename()
    )
    return tuple(dict.fromkeys(c.lower() for c in found if c))


def _defects(mp: Any) -> list[str]:
    out: list[str] = []
    for entry in _safe(lambda: mp.defects, []):
        if isinstance(entry, dict):
            for part, items in entry.items():
                out.extend(f"{part}: {item}" for item in items)
    return out
