"""Clean text from whatever arrives: every read of a broken part guarded, bytes decoded in
their declared charset with fallbacks, NUL characters and lone surrogates removed.

Charset labels are read as mail programs write them and mapped, as the WHATWG Encoding
Standard maps them, to the superset those programs really send (GBK bytes under "gb2312",
cp949 under "euc-kr", Windows-1252 under "iso-8859-1" and "us-ascii"). Bytes are decoded in
the declared charset, with a few replacement characters when a few bytes are invalid in it;
only bytes that are plainly something else fall back to UTF-8, to the other charsets the
message declares, and last to Windows-1252. Bytes that are valid UTF-8 are UTF-8 even under
a single-byte label, which any bytes satisfy (the usual mislabelling).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from functools import lru_cache
from itertools import islice
from typing import Any

WS = re.compile(r"\s+")
_UNCLEAN = re.compile("[\x00\ud800-\udfff]")

# Labels Python does not know (or reads as a narrower charset), by the codec to use.
_LABELS = {
    "gb18030": "gb_2312 gb_2312-80 csgb2312 windows-936",
    "cp949": "cseuckr csksc56011987 iso-ir-149 ks_c_5601-1989 ksc_5601 windows-949",
    "cp932": "windows-31j ms-cp932",
    "big5hkscs": "cn-big5 x-x-big5",
    "euc_jp": "cseucpkdfmtjapanese",
    "iso8859-8": "iso-8859-8-i iso-8859-8-e csiso88598i csiso88598e logical visual",
    "windows-874": "windows-874 dos-874",
    "mac-roman": "csmacintosh mac",
    "mac-cyrillic": "mac-ukrainian",
    "koi8-r": "koi koi8",
    "koi8-u": "koi8-ru",
    "utf-8": "unicode11utf8 unicode20utf8 unicode-1-1-utf-8 unicode-2-0-utf-8 utf8mb4",
    "utf-7": "unicode-2-0-utf-7 csunicode11utf7",
    "utf-16": "ucs-2 iso-10646-ucs-2 csunicode unicode unicodefeff",
    "utf-16-be": "unicodefffe",
}
_ALIASES = {label: name for name, labels in _LABELS.items() for label in labels.split()}
# Python's name for a charset -> the superset mailers that use the label really write.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "ascii": "windows-1252",
    "iso8859-1": "windows-1252",
    "cp1252": "windows-1252",
    "iso8859-9": "windows-1254",
    "cp1254": "windows-1254",
    "iso8859-11": "windows-874",
    "tis-620": "windows-874",
    "cp874": "windows-874",
}
# Codecs that decode more than their label says, tried after it.
_VARIANTS = {
    "iso2022_jp": ("iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004"),
    "cp932": ("shift_jis_2004",),
    "euc_jp": ("euc_jis_2004",),
}
# Text codecs Python has that no mail is written in (a label naming one is unknown).
_NOT_MAIL = {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode"}
_ISO8859 = re.compile(r"iso[-_ ]?8859[-_ ]?(\d{1,2})")
_CODEPAGE = re.compile(r"(?:cp|win|windows|ms|ibm)[-_ ]?(\d{3,5})")


def _windows(base: str, codepage: str) -> dict[int, str]:
    """The Windows code page's characters for bytes 0x80-0x9F, read on top of `base`
    (ISO-8859-x has control characters there; bytes the code page leaves undefined stay
    control characters, as in the WHATWG decoders)."""
    table = {}
    for byte in range(0x80, 0xA0):
        char = bytes([byte]).decode(codepage, "ignore")
        if char:
            table[ord(bytes([byte]).decode(base))] = char
    return table


# WHATWG's windows-1252, -1254 and -874: an ISO-8859 base with the code page's 0x80-0x9F.
_WINDOWS = {
    "windows-1252": ("iso8859-1", _windows("iso8859-1", "cp1252")),
    "windows-1254": ("iso8859-9", _windows("iso8859-9", "cp1254")),
    "windows-874": ("iso8859-11", _windows("iso8859-11", "cp874")),
}
# Hints tried at most (the first ones: the charsets of the parts, then of the headers).
_MAX_HINTS = 16
# A replaced character must be outweighed by this many characters decoded outside ASCII
# before replacement characters are better than another charset.
_FEW = 3


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


def decode_8bit(value: bytes, hints: Iterable[str] = ()) -> str:
    """Bytes without a declared charset (raw 8-bit header bytes): UTF-8, else the message's
    charsets (`hints`: those its parts and encoded-words declare), else Windows-1252."""
    return decode_text(value, None, hints)


def decode_text(payload: bytes, charset: str | None, hints: Iterable[str] = ()) -> str:
    """Bytes of a text part in its declared charset; unknown or wrong charsets fall back.

    Bytes are tried strictly, then with replacement characters where few are needed, in
    three rounds: the declared charset (and the codecs that extend it) with UTF-8 (first
    when the label is a single-byte charset, which any bytes satisfy); then the multi-byte
    charsets among `hints`; then the single-byte ones. What no round decodes is read as
    Windows-1252. Pure 7-bit bytes in an ASCII-compatible charset are ASCII; stateful
    7-bit charsets (ISO-2022-JP, UTF-7, HZ) are decoded.
    """
    declared = codec(charset)
    if payload.isascii() and (declared is None or _ascii_compatible(declared)):
        return payload.decode("ascii")
    first = (declared, *_VARIANTS.get(declared, ())) if declared else ()
    first = ("utf-8", *first) if declared and _single_byte(declared) else (*first, "utf-8")
    labels = islice(dict.fromkeys(hints), _MAX_HINTS)
    others = [n for n in dict.fromkeys(codec(h) for h in labels) if n and n not in first]
    multi = tuple(n for n in others if not _single_byte(n))
    single = tuple(n for n in others if _single_byte(n))
    for names in (first, multi, single):
        text = _strict(payload, names)
        if text is None:
            text = _lenient(payload, names)
        if text is not None:
            return text
    return _decode(payload, "windows-1252", "replace")


@lru_cache(maxsize=512)
def codec(charset: str | None) -> str | None:
    """The codec for a MIME charset label (see the module docstring), or None for an
    unknown one. The names are Python's, and windows-1252, -1254 and -874 (see _decode)."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").strip().lower().partition("*")[0]  # RFC 2231 *lang
    for candidate in (label, label.removeprefix("x-")):
        name = _ALIASES.get(candidate) or _lookup(candidate) or _respelled(candidate)
        if name is not None:
            return _SUPERSETS.get(name, name)
    return None


def _respelled(label: str) -> str | None:
    """The codec for "iso88591", "x-cp1250", "win-1251", "ibm-850" and the like."""
    iso = _ISO8859.fullmatch(label)
    if iso:
        return _lookup(f"iso8859-{iso.group(1)}")
    page = _CODEPAGE.fullmatch(label)
    return _lookup(f"cp{page.group(1)}") if page else None


def _lookup(label: str) -> str | None:
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    # Python also has bytes-to-bytes and str-to-str codecs (base64, zlib, rot13 ...), which
    # it marks as not text encodings; bytes.decode refuses them.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_MAIL:
        return None
    return info.name


def _decode(payload: bytes, name: str, errors: str) -> str:
    if name in _WINDOWS:
        base, table = _WINDOWS[name]
        return payload.decode(base, errors).translate(table)
    return payload.decode(name, errors)


def _strict(payload: bytes, names: tuple[str, ...]) -> str | None:
    """The bytes in the first of `names` that decodes them without an error."""
    for name in names:
        try:
            return _decode(payload, name, "strict")
        except (UnicodeError, LookupError, ValueError):
            continue
    return None


def _lenient(payload: bytes, names: tuple[str, ...]) -> str | None:
    """The bytes with replacement characters in the one of `names` that needs the fewest
    per character decoded, when that is few (see _FEW); None when each needs many.

    An incomplete character at the very end (a line or header cut short) is replaced but
    not counted: the bytes before it are the evidence."""
    best: tuple[float, str] | None = None
    for name in names:
        try:
            text, bad = _replaced(payload, name)
        except (UnicodeError, LookupError, ValueError):
            continue
        good = sum(1 for ch in text if ch > "\x7f") - text.count("\ufffd")
        if good > 0 and bad * _FEW <= good and (best is None or bad / good < best[0]):
            best = (bad / good, text)
    return best[1] if best else None


def _replaced(payload: bytes, name: str) -> tuple[str, int]:
    """The bytes decoded with replacement characters, and how many were needed before an
    incomplete last character."""
    if name in _WINDOWS:
        text = _decode(payload, name, "replace")
        return text, text.count("\ufffd")
    decoder = codecs.getincrementaldecoder(name)("replace")
    head = decoder.decode(payload, final=False)
    return head + decoder.decode(b"", final=True), head.count("\ufffd")


@lru_cache(maxsize=256)
def _single_byte(name: str) -> bool:
    """True for a charset with one character per byte, defined for most bytes: any bytes
    decode in it, so decoding proves nothing about them."""
    try:
        text = _decode(bytes(range(0x80, 0x100)), name, "replace")
    except (UnicodeError, LookupError, ValueError):
        return False
    return len(text) == 0x80 and text.count("\ufffd") < 0x40


@lru_cache(maxsize=256)
def _ascii_compatible(name: str) -> bool:
    """True when the codec reads 7-bit bytes as ASCII: not one that shifts state on 7-bit
    sequences (ISO-2022 escapes, UTF-7's "+", HZ's "~{") or reads bytes in pairs (UTF-16)."""
    probe = bytes(range(0x80)) + b"\x1b$BF|\x1b(B \x1b$)C\x0e!!\x0f +AGE- ~{!!~}"
    try:
        return _decode(probe, name, "strict") == probe.decode("ascii")
    except (UnicodeError, LookupError, ValueError):
        return False
