"""Clean text from whatever arrives: every read of a broken part guarded, bytes decoded in
their declared charset with fallbacks, NUL characters and lone surrogates removed."""

from __future__ import annotations

import codecs
import re
from typing import Any

WS = re.compile(r"\s+")
_UNCLEAN = re.compile("[\x00\ud800-\udfff]")


def safe(fn: Any, default: Any) -> Any:
    """fn(), or `default` when it raises."""
    try:
        return fn()
    except Exception:  # the email package raises many kinds on broken input
        return default


def clean(text: str) -> str:
    """Text the store and every UTF-8 sink accept: no NUL, lone surrogates replaced."""
    if not isinstance(text, str):
        text = str(text)
    return _UNCLEAN.sub(lambda m: "" if m.group(0) == "\x00" else "\ufffd", text)


def decode_8bit(value: bytes) -> str:
    """Bytes without a declared charset (raw 8-bit header bytes): UTF-8, else cp1252."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("cp1252", errors="replace")


def decode_text(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part in its declared charset; unknown or wrong charsets fall back.

    Pure 7-bit bytes are decoded with the declared charset, leniently: stateful 7-bit
    charsets (ISO-2022-JP, UTF-7, HZ) must be decoded, and for ASCII-compatible ones it
    changes nothing. 8-bit bytes are tried as declared, then as UTF-8, then as cp1252
    (the usual truth behind a missing or wrong label).
    """
    name = codec(charset)
    if payload.isascii():
        return payload.decode(name or "ascii", "replace")
    for candidate in (name, "utf-8"):
        if candidate:
            try:
                return payload.decode(candidate)
            except (UnicodeError, ValueError):
                pass
    return payload.decode("cp1252", "replace")


def codec(charset: str | None) -> str | None:
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
