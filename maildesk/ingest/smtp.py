"""The SMTP/LMTP-style listener: an aiosmtpd handler. SMTP reply codes live only here
and in the session's limits (smtp_limits.py).

MAIL and RCPT take internationalised addresses (RFC 6531: the listener offers SMTPUTF8);
an address that is not valid UTF-8 gets 553, as no store can keep it.
RCPT: recipients outside `[smtp] accept` (and their plus forms) get 550, whatever the
envelope; past MAX_RECIPIENTS a transaction gets 452 (the client sends the rest later).
DATA: past `[smtp] max_backlog` stored messages still pending, DATA itself gets 451 4.3.2
before any of the message is read (backlog.py). Else the raw bytes are committed before 250;
a store that cannot take them gets 451 so the sending MTA retries. Oversize mail gets 552
once all of it has been read (and dropped). The LMTP listener (lmtp.py) is this handler
with one reply per recipient.

No client locks the others out: connection counts, deadlines, junk commands and the pace
of DATA are limited as smtp_limits.py says; the defaults are importable from here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from maildesk.config import SmtpConfig
from maildesk.errors import StoreUnavailable
from maildesk.ingest.backlog import Backlog
from maildesk.ingest.smtp_limits import (
    COMMAND_LINE_LIMIT,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_CLIENT,
    MAX_JUNK_COMMANDS,
    MIN_DATA_RATE,
    PER_CLIENT_EXCEPTIONS,
    TIMEOUT,
    Connections,
    Listener,
    SessionLimits,
)
from maildesk.mail.address import is_desk_address, normalise_address
from maildesk.metrics import Metrics

# The SMTP edge as the daemon and the tests see it (the limits' defaults included).
__all__ = [
    "COMMAND_LINE_LIMIT",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_CLIENT",
    "MAX_JUNK_COMMANDS",
    "MAX_RECIPIENTS",
    "MIN_DATA_RATE",
    "PER_CLIENT_EXCEPTIONS",
    "TIMEOUT",
    "IngestHandler",
    "StoreFn",
    "accepts",
    "config_limits",
    "session_factory",
    "start_smtp_server",
]

log = logging.getLogger(__name__)

# RFC 5321 4.5.3.1.8 asks for at least 100 recipients.
MAX_RECIPIENTS = 100

# store(raw, envelope_from, envelope_to) -> raw id; runs off the event loop.
StoreFn = Callable[[bytes, str | None, list[str]], Awaitable[int]]


def accepts(recipient: str, accept: frozenset[str]) -> bool:
    """True for an accepted address or its plus form (support+TOKEN@example.com)."""
    return is_desk_address(normalise_address(recipient.strip().strip("<>")), accept)


def _valid_utf8(address: str) -> bool:
    """False for an address with bytes that were not UTF-8 (the listener decodes commands
    as UTF-8 with surrogate escapes)."""
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class IngestHandler:
    """aiosmtpd handler: validate recipients, store the message durably, then answer."""

    def __init__(
        self,
        store: StoreFn,
        accept: Callable[[], frozenset[str]],
        on_stored: Callable[[int], None] = lambda _id: None,
        *,
        max_recipients: int = MAX_RECIPIENTS,
        metrics: Metrics | None = None,
        backlog: Backlog | None = None,
        source: str = "smtp",
    ) -> None:
        self.store = store
        self.accept = accept
        self.on_stored = on_stored
        self.max_recipients = max_recipients
        self.metrics = metrics
        self.backlog = backlog
        self.source = source  # the edge, for the metrics: smtp or lmtp

    def refused(self, code: str) -> None:
        """Count a 4xx or 5xx reply (the listener calls this for every one)."""
        if self.metrics is not None:
            self.metrics.refused(code, self.source)

    def data_refusal(self) -> str | None:
        """The reply that defers a DATA before it is read (the backlog is full), or None."""
        return None if self.backlog is None else self.backlog.refusal(self.source)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not _valid_utf8(address):
            log.info("sender address from %s is not valid UTF-8: 553", session.peer)
            return "553 5.1.7 Sender address is not valid UTF-8"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not _valid_utf8(address):
            log.info("recipient address from %s is not valid UTF-8: 553", session.peer)
            return "553 5.1.3 Recipient address is not valid UTF-8"
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
        if self.metrics is not None:
            self.metrics.accepted(self.source)
        if self.backlog is not None:
            self.backlog.stored()
        self.on_stored(raw_id)
        return f"250 2.0.0 OK: queued as {raw_id}"


async def start_smtp_server(
    handler: IngestHandler, host: str, port: int, *, hostname: str, **limits: Any
) -> asyncio.Server:
    """Start the listener in the running event loop (not aiosmtpd's threaded Controller);
    `limits` are session_factory's (config_limits gives them from `[smtp]`)."""
    factory = session_factory(handler, Listener, hostname=hostname, **limits)
    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host=host, port=port, reuse_address=True)


def config_limits(smtp: SmtpConfig) -> dict[str, Any]:
    """`[smtp]`'s session limits, as session_factory's keyword arguments (SMTP and LMTP)."""
    return {
        "max_message_size": smtp.max_message_size,
        "timeout": smtp.timeout,
        "max_connections": smtp.max_connections,
        "max_connections_per_client": smtp.max_connections_per_client,
        "per_client_exceptions": smtp.per_client_exceptions,
        "max_junk_commands": smtp.max_junk_commands,
        "min_data_rate": smtp.min_data_rate,
    }


def session_factory(
    handler: IngestHandler,
    session_class: type[Listener],
    *,
    max_message_size: int,
    hostname: str,
    timeout: float = TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT,
    per_client_exceptions: Iterable[str] = PER_CLIENT_EXCEPTIONS,
    max_junk_commands: int = MAX_JUNK_COMMANDS,
    min_data_rate: int = MIN_DATA_RATE,
) -> Callable[[], Any]:
    """The protocol factory of one listener: its sessions share one count of connections."""
    loop = asyncio.get_running_loop()
    connections = Connections(
        max_connections,
        max_connections_per_client,
        tuple(ipaddress.ip_network(n, strict=False) for n in per_client_exceptions),
    )
    limits = SessionLimits(
        timeout=timeout, max_junk_commands=max_junk_commands, min_data_rate=min_data_rate
    )

    def factory() -> Any:
        return session_class(
            handler,
            connections=connections,
            limits=limits,
            max_message_size=max_message_size,
            hostname=hostname,
            loop=loop,
        )

    return factory
