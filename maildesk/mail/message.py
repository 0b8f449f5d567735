"""A received message as data: ParsedMessage and its attachments, and the ids minted for
mail that came without a Message-ID. What the parser produces and every later step reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MINTED_ID_DOMAIN = "no-message-id.maildesk.invalid"


@dataclass(frozen=True, kw_only=True)
class ParsedAttachment:
    """A part kept as a file: its safe name, type and decoded bytes."""

    filename: str
    content_type: str
    content: bytes
    content_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, kw_only=True)
class ParsedMessage:
    """A received message as parsed: every text field clean and bounded for the store."""

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
    # (lower-cased name, value as sent: unfolded, encoded-words left encoded), in order;
    # what trace headers such as Authentication-Results must be read from.
    raw_headers: tuple[tuple[str, str], ...] = ()

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


def is_minted(message_id: str) -> bool:
    """Is this a Message-ID maildesk minted (the mail had none)? Nobody else knows it."""
    return message_id.rstrip(">").endswith(f"@{MINTED_ID_DOMAIN}")


def minted_message_id(raw: bytes) -> str:
    """A stable Message-ID for a message that has none: the same bytes give the same id."""
    return f"<{hashlib.sha256(raw).hexdigest()[:32]}@{MINTED_ID_DOMAIN}>"
