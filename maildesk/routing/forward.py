"""Is a message a forward, of what, and whose mail does it forward? Pure functions.

A forward says so in its subject (`Fwd:`, `FW:`, `WG:`, `TR:`, `RV:`, `Enc:`, `Doorst:`,
`VB:`, `VL:`, `PD:` first in the prefix chain) or in its body: the marker line a mail
client writes above the forwarded mail (Gmail's `---------- Forwarded message ---------`,
Thunderbird's `-------- Forwarded Message --------`, Apple Mail's `Begin forwarded
message:`, each in several languages). The forwarded mail's sender is the `From:` line of
the header block below that marker, or of Outlook's `From:`/`Sent:` block when the subject
says forward (the same block also heads the quote of a reply), or else the `From` of an
attached message (message/rfc822, kept as an .eml file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import parseaddr

from maildesk.mail.address import mailbox_list, normalise_address, normalise_domain
from maildesk.mail.message import ParsedMessage

_PREFIX = re.compile(r"^\s*([^\W\d_]{1,10})\s*(\[\d+\])?\s*:", re.UNICODE)
FORWARD_PREFIXES = frozenset({"fwd", "fw", "wg", "tr", "rv", "enc", "doorst", "vb", "vl", "pd"})
_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht"
    r"|message transf.r.|mensaje reenviado|mensagem encaminhada|messaggio inoltrato"
    r"|doorgestuurd bericht|vidarebefordrat meddelande|videresendt meddelelse"
    r"|wiadomo.. przekazana dalej|välitetty viesti)\s*-{2,}"
    r"|begin forwarded message:|anfang der weitergeleiteten nachricht:"
    r"|d.but du message r.exp.di. :?|inicio del mensaje reenviado:"
    r"|begin doorgestuurd bericht:)[ \t]*$",
    re.I | re.M,
)
_OUTLOOK_RULE = re.compile(r"^[ \t]*(?:_{10,}|-{5}\s*original message\s*-{5})[ \t]*$", re.I)
# The names of a forwarded header block's fields, as the clients write them (lower-cased).
FROM_NAMES = frozenset({"from", "von", "de", "da", "van", "från", "fra", "od", "lähettäjä"})
_FIELD_NAMES = FROM_NAMES | frozenset(
    {
        "date", "sent", "to", "cc", "subject", "reply-to", "datum", "gesendet", "an",
        "betreff", "envoyé", "à", "objet", "enviado", "para", "asunto", "assunto", "data",
        "inviato", "a", "oggetto", "verzonden", "aan", "onderwerp", "skickat", "till",
        "ämne", "sendt", "til", "emne", "wysłano", "do", "temat", "kopie", "fecha",
    }
)  # fmt: skip
_FIELD = re.compile(r"^[ \t>]*\*?([^\W\d_][\w -]{0,20}?)\s*:\*?[ \t]*(.*)$", re.UNICODE)
_MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.I)
_MAX_ATTACHED_HEAD = 64 * 1024


@dataclass(frozen=True)
class Forward:
    """What a forward carries: the forwarder's own note above it, the forwarded mail's
    sender (address and name, "" when unknown) and its text."""

    via: str  # "subject", "body" (a marker line) or "attachment"
    note: str = ""
    original_from: str = ""
    original_name: str = ""
    original_text: str = ""


def forward_subject(subject: str) -> bool:
    """Does the subject's first prefix say forward (`Fwd:`, `FW:`, `WG:`, `TR:`, ...)?"""
    found = _PREFIX.match(subject)
    return found is not None and found.group(1).lower() in FORWARD_PREFIXES


def body_marker(text: str) -> bool:
    """Does the text carry a mail client's forward marker line?"""
    return _MARKER.search(text) is not None


def is_forward(msg: ParsedMessage) -> bool:
    """A forward by its subject prefix or by a forward marker line in its body."""
    return forward_subject(msg.subject) or body_marker(msg.body_text)


def forwarded(msg: ParsedMessage) -> Forward | None:
    """What the message forwards, or None if it is not a forward.

    The sender is read from the header block below the marker line (or, in a mail whose
    subject says forward, below Outlook's rule or straight from its `From:`/`Sent:` block),
    else from an attached message; the note is the text above, the original text below.
    """
    by_subject = forward_subject(msg.subject)
    text = msg.body_text.replace("\r\n", "\n")
    lines = text.split("\n")
    start = _block_start(lines, outlook=by_subject)
    if start is None:
        if not (by_subject or body_marker(text)):
            return None
        name, address = _attached_sender(msg)
        via = "body" if body_marker(text) else "subject"
        return Forward(via, original_from=address, original_name=name, original_text=text.strip())
    marker, block = start
    fields, end = _header_block(lines, block)
    name, address = _address(fields.get("from", ""))
    if not address:
        name, address = _attached_sender(msg)
    return Forward(
        "body" if body_marker(text) else "subject",
        note="\n".join(lines[:marker]).strip(),
        original_from=address,
        original_name=name,
        original_text="\n".join(_unquote(lines[end:])).strip(),
    )


def _block_start(lines: list[str], *, outlook: bool) -> tuple[int, int] | None:
    """(the marker line, the first line of the header block below it), or None."""
    for i, line in enumerate(lines):
        if _MARKER.match(line) or (outlook and _OUTLOOK_RULE.match(line)):
            j = i + 1
            while j < len(lines) and not lines[j].strip(" \t>"):
                j += 1
            return i, j
        if outlook and _field(line)[0] in FROM_NAMES and _has_fields(lines, i):
            return i, i  # Outlook without a rule: the block starts at its From: line
    return None


def _has_fields(lines: list[str], at: int) -> bool:
    """At least two known header fields from line `at` on (a From: line alone is text)."""
    fields, _ = _header_block(lines, at)
    return len(fields) >= 2


def _field(line: str) -> tuple[str, str]:
    found = _FIELD.match(line)
    if found is None:
        return "", ""
    name = found.group(1).strip().lower()
    return (name, found.group(2).strip()) if name in _FIELD_NAMES else ("", "")


def _header_block(lines: list[str], at: int) -> tuple[dict[str, str], int]:
    """The fields of the header block starting at line `at` (From under any of its names
    as "from"), and the line after the block."""
    fields: dict[str, str] = {}
    i = at
    while i < len(lines):
        name, value = _field(lines[i])
        if not name:
            break
        fields.setdefault("from" if name in FROM_NAMES else name, value)
        i += 1
    while i < len(lines) and not lines[i].strip(" \t>"):
        i += 1
    return fields, i


def _address(value: str) -> tuple[str, str]:
    """(name, address) of a forwarded From value: `Name <a@b>`, `Name [mailto:a@b]`, `a@b`."""
    mailto = _MAILTO.search(value)
    if mailto:
        return value[: mailto.start()].strip().strip('"*'), mailto.group(1).lower()
    name, address = parseaddr(value.replace("*", ""))
    address = address.strip().lower()
    return (name.strip(), address) if "@" in address and " " not in address else ("", "")


def _unquote(lines: list[str]) -> list[str]:
    """The forwarded text, without the "> " some clients put in front of every line."""
    if lines and all(line.startswith(">") or not line.strip() for line in lines):
        return [line[1:].removeprefix(" ") if line.startswith(">") else line for line in lines]
    return lines


def _attached_sender(msg: ParsedMessage) -> tuple[str, str]:
    """(name, address) of the first attached message's From, or ("", "")."""
    for attachment in msg.attachments:
        if attachment.content_type.lower() != "message/rfc822":
            continue
        head = attachment.content[:_MAX_ATTACHED_HEAD]
        try:
            parsed = BytesHeaderParser(policy=default_policy).parsebytes(head)
            name, address = parseaddr(str(parsed.get("From", "")))
        except Exception:  # a broken attached header names nobody
            continue
        if "@" in address:
            return name, address.lower()
    return "", ""


_REQUESTER = re.compile("^[ \t]*[#\uff03\u266f][ \t]*requester\\b[ \t:]*(.*?)[ \t]*$", re.I)


def requester_command(text: str) -> tuple[str | None, str]:
    """`#requester someone@example.org` as the first line of the text: (its argument, the
    text below it); (None, text) when the text does not start with it."""
    lines = text.replace("\r\n", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return None, text
    found = _REQUESTER.match(lines[first])
    if found is None:
        return None, text
    return found.group(1), "\n".join(lines[first + 1 :]).strip("\n")


def requester_address(value: str) -> str | None:
    """The one mail address a `#requester` argument names (`a@b`, `<a@b>`, `Name <a@b>`)."""
    found = mailbox_list(value)
    if len(found) != 1:
        return None
    address = normalise_address(found[0][1])
    local, _, domain = address.rpartition("@")
    return address if local and "." in domain and not domain.endswith(".") else None


def inside(address: str, domains: frozenset[str]) -> bool:
    """Is the address at one of these domains, or a subdomain of one?"""
    domain = normalise_domain(address.rpartition("@")[2])
    return any(domain == d or domain.endswith("." + d) for d in domains)
