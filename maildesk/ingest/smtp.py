"""The SMTP/LMTP-style listener: an aiosmtpd handler. SMTP reply codes live only here.

RCPT: recipients outside `[smtp] accept` (and their plus forms) get 550, whatever the
envelope; past MAX_RECIPIENTS a transaction gets 452 (the client sends the rest later).
DATA: the raw bytes are committed before 250; a store that cannot take them gets 451 so
the sending MTA retries. Oversize mail is refused by aiosmtpd itself with 552.
A client silent for TIMEOUT seconds is disconnected; past MAX_CONNECTIONS open connections
a new one gets 421 and is closed, so a flood of clients cannot exhaust the daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from maildesk.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Defaults for the listener's limits (RFC 5321 4.5.3.1.8 asks for at least 100 recipients;
# 4.5.3.2 for a 5-minute command timeout).
MAX_RECIPIENTS = 100
TIMEOUT = 300.0
MAX_CONNECTIONS = 100

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
        *,
        max_recipients: int = MAX_RECIPIENTS,
    ) -> None:
        self.store = store
        self.accept = accept
        self.on_stored = on_stored
        self.max_recipients = max_recipients

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not accepts(address, self.accept()):
            log.info("refused recipient %s from %s", address, session.peer)
            return f"550 5.1.1 <{address}>: recipient not accepted here"
        if address.lower() in (r.lower() for r in envelope.rcpt_tos):
            return "250 2.1.5 OK (duplicate recipient)"
        if len(envelope.rcpt_tos) >= self.max_recipients:
            log.info(
                "recipient %s from %s over the limit of %d",
                address,
                session.peer,
                self.max_recipients,
            )
            return f"452 4.5.3 Too many recipients (at most {self.max_recipients} per message)"
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


@dataclass
class _Connections:
    """Open connections of one listener, and whether the limit is being hit (for logging)."""

    limit: int
    open: int = 0
    refusing: bool = False


async def start_smtp_server(
    handler: IngestHandler,
    host: str,
    port: int,
    *,
    max_message_size: int,
    hostname: str,
    timeout: float = TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> asyncio.Server:
    """Start the listener in the running event loop (not aiosmtpd's threaded Controller)."""
    loop = asyncio.get_running_loop()
    connections = _Connections(max_connections)

    class Listener(SMTP):
        # aiosmtpd ends a line only at CRLF, so a message sent with bare LF line ends (as
        # scripts and some old clients do) is one "line" and would get 500 Line too long.
        # Mail servers accept it; so do we, up to the message size limit.
        line_length_limit = max_message_size + 1024
        _counted = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if self._counted or self.transport is not None:  # STARTTLS: same connection
                super().connection_made(transport)
                return
            if connections.open >= connections.limit:
                if not connections.refusing:
                    log.warning(
                        "%d SMTP connections open: refusing new ones with 421 until some close",
                        connections.open,
                    )
                    connections.refusing = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
                transport.close()
                return
            connections.open += 1
            self._counted = True
            super().connection_made(transport)

        def connection_lost(self, error: Exception | None) -> None:
            if not self._counted:
                return  # refused in connection_made: nothing was set up
            self._counted = False
            connections.open -= 1
            if connections.refusing and connections.open < connections.limit:
                log.warning("SMTP connections below the limit again: accepting")
                connections.refusing = False
            super().connection_lost(error)

        def eof_received(self) -> bool | None:
            if self.session is None:
                return False
            result: bool | None = super().eof_received()
            return result

    def factory() -> Any:
        return Listener(
            handler,
            data_size_limit=max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="maildesk ESMTP",
            timeout=timeout,
            loop=loop,
        )

    return await loop.create_server(factory, host=host, port=port, reuse_address=True)
