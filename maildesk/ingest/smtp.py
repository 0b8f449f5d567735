"""The SMTP/LMTP-style listener: an aiosmtpd handler. SMTP reply codes live only here.

RCPT: recipients outside `[smtp] accept` (and their plus forms) get 550.
DATA: the raw bytes are committed before 250; a store that cannot take them gets 451 so
the sending MTA retries. Oversize mail is refused by aiosmtpd itself with 552.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from maildesk.errors import StoreUnavailable

log = logging.getLogger(__name__)

# store(raw, envelope_from, envelope_to) -> raw id; runs off the event loop.
StoreFn = Callable[[bytes, str | None, list[str]], Awaitable[int]]


def accepts(recipient: str, accept: frozenset[str]) -> bool:
    """True for an accepted address or its plus form (support+TOKEN@example.com)."""
    local, _, domain = recipient.strip().strip("<>").lower().rpartition("@")
    return f"{local}@{domain}" in accept or f"{local.partition('+')[0]}@{domain}" in accept


class IngestHandler:
    """aiosmtpd handler: validate recipients, store the message durably, then answer."""

    def __init__(
        self,
        store: StoreFn,
        accept: Callable[[], frozenset[str]],
        on_stored: Callable[[int], None] = lambda _id: None,
    ) -> None:
        self.store = store
        self.accept = accept
        self.on_stored = on_stored

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not accepts(address, self.accept()):
            log.info("refused recipient %s from %s", address, session.peer)
            return f"550 5.1.1 <{address}>: recipient not accepted here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", "surrogateescape")
        try:
            raw_id = await self.store(raw, envelope.mail_from, list(envelope.rcpt_tos))
        except StoreUnavailable as exc:
            log.error("store unavailable, answered 451: %s", exc)
            return "451 4.3.0 Local storage unavailable, please try again later"
        except Exception:
            log.exception("unexpected error storing a message, answered 451")
            return "451 4.3.0 Local error in processing, please try again later"
        self.on_stored(raw_id)
        return f"250 2.0.0 OK: queued as {raw_id}"


async def start_smtp_server(
    handler: IngestHandler, host: str, port: int, *, max_message_size: int, hostname: str
) -> asyncio.Server:
    """Start the listener in the running event loop (not aiosmtpd's threaded Controller)."""
    loop = asyncio.get_running_loop()

    class Listener(SMTP):
        # aiosmtpd ends a line only at CRLF, so a message sent with bare LF line ends (as
        # scripts and some old clients do) is one "line" and would get 500 Line too long.
        # Mail servers accept it; so do we, up to the message size limit.
        line_length_limit = max_message_size + 1024

    def factory() -> Any:
        return Listener(
            handler,
            data_size_limit=max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="maildesk ESMTP",
            loop=loop,
        )

    return await loop.create_server(factory, host=host, port=port, reuse_address=True)
