"""The LMTP listener (`[lmtp] listen`, RFC 2033): how a local MTA such as Postfix hands mail
to the desk without a queue of its own in between.

It is the SMTP listener's handler, limits and group commit (smtp.py) with LMTP's dialogue
(aiosmtpd's LMTP: LHLO instead of HELO/EHLO): `[smtp] accept` decides each RCPT (550 for
the others), back-pressure defers DATA with one 451 4.3.2 before it is read, and once the
message is committed (stored once, with every accepted recipient in its envelope) each
recipient gets its own reply line, 250 or (the store failed) 451, as LMTP asks; so does
mail over the size limit (552). It listens on TCP or on a unix socket; a socket is made
mode 0666 (anyone who can reach its directory may connect, as anyone on the host may reach
127.0.0.1): keep it in a directory only the MTA can enter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from maildesk.config import LmtpConfig, SmtpConfig
from maildesk.ingest.smtp import IngestHandler, config_limits, session_factory
from maildesk.ingest.smtp_limits import Listener

__all__ = ["LmtpHandler", "LmtpListener", "start_lmtp_server", "stop_lmtp_server"]

log = logging.getLogger(__name__)

SOCKET_MODE = 0o666


class LmtpListener(Listener, LMTP):
    """maildesk's limits on an LMTP session: LHLO (from aiosmtpd's LMTP), no HELO or EHLO,
    and every answer at the end of DATA given once for each recipient."""

    def too_much_data(self, recipients: list[str]) -> str:
        return "\r\n".join(f"552 5.3.4 <{rcpt}> Message too big" for rcpt in recipients)


class LmtpHandler(IngestHandler):
    """The SMTP handler, answering DATA once for each accepted recipient."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients = list(envelope.rcpt_tos)
        status = await super().handle_DATA(server, session, envelope)
        code, _, text = status.partition(" ")
        enhanced, _, rest = text.partition(" ")
        return "\r\n".join(f"{code} {enhanced} <{rcpt}> {rest}" for rcpt in recipients)


async def start_lmtp_server(
    handler: LmtpHandler, lmtp: LmtpConfig, smtp: SmtpConfig, *, hostname: str
) -> asyncio.Server:
    """Start the LMTP listener in the running event loop, where `[lmtp] listen` says, held
    to `[smtp]`'s limits."""
    factory = session_factory(handler, LmtpListener, hostname=hostname, **config_limits(smtp))
    loop = asyncio.get_running_loop()
    if lmtp.path is None:
        return await loop.create_server(factory, host=lmtp.host, port=lmtp.port, reuse_address=True)
    # asyncio replaces a socket file left by a daemon that died; any other file stays.
    server = await loop.create_unix_server(factory, path=str(lmtp.path))
    os.chmod(lmtp.path, SOCKET_MODE)
    return server


async def stop_lmtp_server(server: asyncio.Server, path: Path | None) -> None:
    """Stop taking connections, wait for the sessions to end, remove the socket file."""
    server.close()
    await server.wait_closed()
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
