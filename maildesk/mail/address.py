"""Address headers read as an MTA reads them (RFC 5322 section 3.4). Pure functions.

Python's own parsers do not: `email.policy.default` decodes encoded-words inside an
address (`=?utf-8?q?agent?=@example.com` becomes agent@example.com) and takes the phrase
of `agent@example.com <attacker@evil.example>` for the address; `getaddresses` splits that
one mailbox into two. An MTA, and the mail client the reader sees the mail in, take the
angle address, and treat an encoded-word as the literal atom it is (RFC 2047 section 5:
it may appear in a phrase or a comment, never in an address). So does this module:

- the header is split into mailboxes at commas outside angle brackets, quoted strings,
  comments and encoded-words (each an opaque word, whatever it holds); a group's name
  (`Team: a@x, b@y;`) is dropped and its members kept;
- a mailbox with an angle address is that address; its phrase is the display name;
- without one, the mailbox is an addr-spec (`local@domain`, one `@`, one local word and
  one domain), its comment the display name; anything else names no address.

Display names are returned as sent (encoded-words still encoded) for the caller to decode.

The desk's plus-addresses (support+TOKEN@example.com: replies to it thread into a ticket)
are split, joined and recognised here too, for every place that reads or writes them.

Internationalised addresses (RFC 6531, 6532): an address has one spelling for storage and
comparison (normalise_address: NFC, lower-cased, the domain in Unicode), and an ASCII form
for mail servers that do not offer SMTPUTF8 (ascii_address: the domain's IDNA A-labels),
which only an address with an ASCII local part has.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

Kind = Literal["ws", "comment", "quoted", "literal", "special", "atom"]

# Atoms here include dots (dot-atoms and phrases such as "J. R. Smith" stay one token);
# everything else RFC 5322 calls a special is a token of its own.
_ATOM = re.compile(r'[^\s()<>\[\]:;@\\,"]+')
_WS = re.compile(r"\s+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


@dataclass(frozen=True)
class _Token:
    kind: Kind
    text: str  # for quoted strings and comments: the content, quoted pairs undone


def _tokens(value: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch.isspace():
            j = _WS.match(value, i)
            i = j.end() if j else i + 1
            out.append(_Token("ws", " "))
        elif ch == '"':
            text, i = _delimited(value, i + 1, '"')
            out.append(_Token("quoted", text))
        elif ch == "(":
            text, i = _delimited(value, i + 1, ")", "(")
            out.append(_Token("comment", text))
        elif ch == "[":
            end = value.find("]", i)
            end = n if end < 0 else end + 1
            out.append(_Token("literal", value[i:end]))
            i = end
        elif ch in "<>:;@,\\)]":
            out.append(_Token("special", ch))
            i += 1
        elif word := _ENCODED_WORD.match(value, i):
            # One opaque word, whatever it holds: "=?utf-8?q?Team_<a@b>?=" is display
            # text (as the email package and mail clients show it), never an address.
            out.append(_Token("atom", word.group(0)))
            i = word.end()
        else:
            atom = _ATOM.match(value, i)
            assert atom is not None  # every other character starts an atom
            out.append(_Token("atom", atom.group(0)))
            i = atom.end()
    return out


def _delimited(value: str, i: int, close: str, opens: str = "") -> tuple[str, int]:
    """The content up to an unescaped `close` (or the end), and the index after it; with
    `opens` (comments), nested pairs are counted and kept as text."""
    text: list[str] = []
    depth = 1
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            text.append(value[i + 1])
            i += 2
            continue
        i += 1
        if opens and ch == opens:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                break
        text.append(ch)
    return "".join(text), i


def mailbox_list(value: str) -> list[tuple[str, str]]:
    """(display name as sent, address) for each mailbox of an address header, in order;
    mailboxes that name no well-formed address are left out."""
    out: list[tuple[str, str]] = []
    current: list[_Token] = []
    in_angle = False
    for token in _tokens(value):
        if token.kind == "special" and not in_angle:
            if token.text in ",;":
                found = _mailbox(current)
                if found is not None:
                    out.append(found)
                current = []
                continue
            if token.text == ":":  # a group: what came before is its name
                current = []
                continue
        if token.kind == "special" and token.text in "<>":
            in_angle = token.text == "<"
        current.append(token)
    found = _mailbox(current)  # the last mailbox (an unclosed angle address included)
    return [*out, found] if found is not None else out


def _mailbox(tokens: list[_Token]) -> tuple[str, str] | None:
    opening = next((i for i, t in enumerate(tokens) if t.kind == "special" and t.text == "<"), -1)
    if opening < 0:
        addr = _addr_spec(tokens)
        comment = next((t.text for t in tokens if t.kind == "comment"), "")
        return (_WS.sub(" ", comment).strip(), addr) if addr else None
    rest = tokens[opening + 1 :]
    closing = next(
        (i for i, t in enumerate(rest) if t.kind == "special" and t.text == ">"), len(rest)
    )
    inner = rest[:closing]
    colons = [i for i, t in enumerate(inner) if t.kind == "special" and t.text == ":"]
    if colons:  # an obsolete source route, <@relay:local@domain>
        inner = inner[colons[-1] + 1 :]
    addr = _addr_spec(inner)
    return (_phrase(tokens[:opening]), addr) if addr else None


def _addr_spec(tokens: list[_Token]) -> str | None:
    """local@domain from one local word and one domain, or None."""
    words = [t for t in tokens if t.kind not in ("ws", "comment")]
    if len(words) != 3 or words[1] != _Token("special", "@"):
        return None
    local, domain = words[0], words[2]
    if local.kind == "atom":
        local_text = local.text
    elif local.kind == "quoted":
        local_text = '"' + local.text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        return None
    if domain.kind not in ("atom", "literal") or not local_text:
        return None
    return f"{local_text}@{domain.text}"


def _phrase(tokens: list[_Token]) -> str:
    """A display name as written: words and specials as sent, quotes removed, comments
    dropped, whitespace collapsed."""
    text = "".join(" " if t.kind == "ws" else t.text for t in tokens if t.kind != "comment")
    return _WS.sub(" ", text).strip()


# --- plus-addresses ---------------------------------------------------------------------------
# The domain starts after the last "@" (a quoted local part may hold one, a domain never);
# the token after the first "+" of the local part.


def split_plus(address: str) -> tuple[str, str]:
    """support+TOKEN@example.com -> ("support@example.com", "TOKEN"); no "+": token ""."""
    local, _, domain = address.rpartition("@")
    base, _, token = local.partition("+")
    return f"{base}@{domain}", token


def plus_address(address: str, token: str) -> str:
    """support@example.com + token -> support+token@example.com."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{token}@{domain}"


def is_desk_address(address: str, desk_addresses: Collection[str]) -> bool:
    """True for one of the desk's addresses or its plus form (support+TOKEN@example.com).

    Compared as given: both sides normalised (normalise_address), as the parser and the
    config give them.
    """
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain}" in desk_addresses or split_plus(address)[0] in desk_addresses


# --- internationalised addresses ---------------------------------------------------------------
# Labels are converted one by one with the standard library's Punycode (RFC 3492), after
# NFC and lower-casing as IDNA 2008 wants them: the stdlib's "idna" codec is IDNA 2003,
# whose nameprep maps "ß" to "ss" (another domain under IDNA 2008).

_ACE = "xn--"
_DOTS = str.maketrans("\u3002\uff0e\uff61", "...")  # ideographic and fullwidth full stops
MAX_LABEL = 63  # RFC 1035 2.3.4
MAX_DOMAIN = 253


def normalise_address(address: str) -> str:
    """The one spelling of a mailbox, for storage and comparison: NFC, lower-cased, and the
    domain in Unicode (jöran@xn--exmple-cua.se is stored as jöran@exämple.se)."""
    text = unicodedata.normalize("NFC", address.lower())
    local, at, domain = text.rpartition("@")
    return f"{local}@{normalise_domain(domain)}" if at else text


def normalise_domain(domain: str) -> str:
    """A domain as normalise_address writes it: NFC, lower-cased, A-labels decoded
    (xn--exmple-cua.se -> exämple.se); an address literal ([192.0.2.1]) as it is."""
    text = unicodedata.normalize("NFC", domain.lower())
    if text.startswith("["):
        return text
    return ".".join(_unicode_label(label) for label in text.translate(_DOTS).split("."))


def _unicode_label(label: str) -> str:
    """A canonical A-label decoded (xn--exmple-cua -> exämple); any other label as given."""
    if not label.startswith(_ACE):
        return label
    try:
        decoded = label[len(_ACE) :].encode("ascii").decode("punycode")
    except UnicodeError:
        return label
    canonical = unicodedata.normalize("NFC", decoded.lower())
    letters = all(c == "-" or unicodedata.category(c)[0] in "LMN" for c in decoded)
    if decoded != canonical or decoded.isascii() or not letters or _ascii_label(decoded) != label:
        return label  # not a label encoding gives (controls, capitals, ASCII): keep it as sent
    return decoded


def ascii_address(address: str) -> str | None:
    """The address as ASCII for a server without SMTPUTF8, the domain in IDNA A-labels
    (jöran@exämple.se has none: its local part is not ASCII; info@exämple.se is
    info@xn--exmple-cua.se); None when there is no such form."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at or not local.isascii() or domain.startswith("["):
        return None
    labels = [_ascii_label(label) for label in domain.translate(_DOTS).split(".")]
    ascii_domain = ".".join(label for label in labels if label is not None)
    if None in labels or len(ascii_domain) > MAX_DOMAIN:
        return None
    return f"{local}@{ascii_domain}"


def _ascii_label(label: str) -> str | None:
    """The label's A-label (exämple -> xn--exmple-cua), an ASCII label as it is; None for
    a label DNS cannot carry."""
    if label.isascii():
        ace = label
    else:
        try:
            ace = _ACE + unicodedata.normalize("NFC", label.lower()).encode("punycode").decode()
        except UnicodeError:
            return None
    return ace if 0 < len(ace) <= MAX_LABEL else None
