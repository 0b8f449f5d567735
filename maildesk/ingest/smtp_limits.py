"""The SMTP listener's limits: no client locks the others out.

- past MAX_CONNECTIONS open connections, or MAX_CONNECTIONS_PER_CLIENT from one address
  (the local MTA's own addresses excepted), a new one gets 421 and is closed;
- a session that makes no progress (no sender, new recipient or message accepted) for
  TIMEOUT seconds gets 421 and is closed, however many NOOPs it sends; after
  MAX_JUNK_COMMANDS commands without progress (the count restarts with each message
  accepted) it gets 421 too;
- command lines are read at most COMMAND_LINE_LIMIT bytes at a time (longer ones get 500
  without being held in memory); only DATA takes long lines, up to the message size;
- DATA is read in blocks and yields to the event loop, so millions of short lines from one
  client do not hold up the others; it must be done within TIMEOUT plus the bytes
  received at MIN_DATA_RATE bytes a second, else 421 and close: slow links deliver, a
  trickle does not hold a connection for ever.

`Listener` is aiosmtpd's SMTP session with these limits; `Connections` counts the open
connections of one listener. The handler's own answers (RCPT, DATA) are in smtp.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, syntax

if TYPE_CHECKING:
    from maildesk.ingest.smtp import IngestHandler

log = logging.getLogger(__name__)

# Defaults for the listener's limits (RFC 5321 4.5.3.2 asks for a 5-minute command timeout).
TIMEOUT = 300.0
MAX_CONNECTIONS = 100
# A sending MTA opens up to 20 connections to one destination (Postfix's
# default_destination_concurrency_limit); Postfix as a server allows 50 of its 100.
MAX_CONNECTIONS_PER_CLIENT = 20
# A local MTA relaying to the desk connects from these; it is not held to the per-client
# limit (as Postfix exempts $mynetworks).
PER_CLIENT_EXCEPTIONS = ("127.0.0.1", "::1")
MAX_JUNK_COMMANDS = 100  # Postfix's smtpd_junk_command_limit
MIN_DATA_RATE = 1000  # bytes a second (Postfix's smtpd_min_data_rate is 500)
# RFC 5321 4.5.3.1.4 says 512 for a command line; Postfix reads up to 2048 (line_length_limit).
COMMAND_LINE_LIMIT = 2048
_YIELD_EVERY = 256  # DATA blocks read between turns given to the other clients

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(peer: object) -> Address | None:
    """The client's IP address from a peername (IPv4-mapped IPv6 as IPv4), if it has one."""
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass
class Connections:
    """Open connections of one listener, in all and per client address; logs limits hit."""

    limit: int
    per_client: int
    exceptions: tuple[Network, ...]
    open: int = 0
    by_client: Counter[Address] = field(default_factory=Counter)
    refusing: bool = False
    refusing_clients: set[Address] = field(default_factory=set)

    def admit(self, client: Address | None) -> str | None:
        """Count a new connection in and return None, or return the 421 that refuses it."""
        if self.open >= self.limit:
            if not self.refusing:
                log.warning(
                    "%d SMTP connections open: refusing new ones with 421 until some close",
                    self.open,
                )
                self.refusing = True
            return "421 4.7.0 Too many connections, try again later"
        if (
            client is not None
            and self.by_client[client] >= self.per_client
            and not any(client in network for network in self.exceptions)
        ):
            if client not in self.refusing_clients:
                log.warning(
                    "%d SMTP connections open from %s: refusing more from it with 421",
                    self.by_client[client],
                    client,
                )
                self.refusing_clients.add(client)
            return "421 4.7.0 Too many connections from your address, try again later"
        self.open += 1
        if client is not None:
            self.by_client[client] += 1
        return None

    def release(self, client: Address | None) -> None:
        """Count a closed connection out."""
        self.open -= 1
        if self.refusing and self.open < self.limit:
            log.warning("SMTP connections below the limit again: accepting")
            self.refusing = False
        if client is None:
            return
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]
        if client in self.refusing_clients and self.by_client[client] < self.per_client:
            log.warning("SMTP connections from %s below the limit again: accepting", client)
            self.refusing_clients.discard(client)


@dataclass(frozen=True, kw_only=True)
class SessionLimits:
    """What each session of one listener is held to (from `[smtp]`)."""

    timeout: float
    max_junk_commands: int
    min_data_rate: int


class Listener(SMTP):
    """aiosmtpd's SMTP session with maildesk's limits (see the module docstring)."""

    # The stream's limit: command lines longer than this are read and dropped in pieces of
    # this size (aiosmtpd answers 500). DATA reads blocks of its own (see _read_data).
    line_length_limit = COMMAND_LINE_LIMIT

    def __init__(
        self,
        handler: IngestHandler,
        *,
        connections: Connections,
        limits: SessionLimits,
        max_message_size: int,
        hostname: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._connections = connections
        self._limits = limits
        self._client: Address | None = None
        self._counted = False
        # Deadlines (event loop time): the last progress, and the start of DATA.
        self._idle_since = loop.time()
        self._data_since: float | None = None
        self._data_bytes = 0
        # Progress as of the last reply: (have a sender, recipients, messages accepted).
        self._seen = (False, 0, 0)
        self._delivered = 0
        self._junk = 0
        self._greeted = False
        super().__init__(
            handler,
            data_size_limit=max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="maildesk ESMTP",
            timeout=limits.timeout,
            loop=loop,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._counted or self.transport is not None:  # STARTTLS: same connection
            super().connection_made(transport)
            return
        self._client = client_address(transport.get_extra_info("peername"))
        refusal = self._connections.admit(self._client)
        if refusal is not None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal.encode("ascii") + b"\r\n")
            transport.close()
            self.event_handler.refused(refusal[:3])
            return
        self._counted = True
        self._idle_since = self.loop.time()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._counted:
            return  # refused in connection_made: nothing was set up
        self._counted = False
        self._connections.release(self._client)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if self._data_since is not None:
            self._data_bytes += len(data)  # moves the DATA deadline as the bytes arrive
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if self.session is None:
            return False
        result: bool | None = super().eof_received()
        return result

    # --- deadlines: aiosmtpd arms its timer on connect and before every command ----------

    def _deadline(self) -> float:
        if self._data_since is None:
            return self._idle_since + self._limits.timeout
        counted = self._data_bytes
        if self.data_size_limit:  # past the limit the rest is only drained: no more time
            counted = min(counted, self.data_size_limit)
        return self._data_since + self._limits.timeout + counted / self._limits.min_data_rate

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Arm the timer for the current deadline, which only progress moves (see push)."""
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._timeout_handle = self.loop.call_at(self._deadline(), self._timeout_cb)

    def _timeout_cb(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline():  # data came in since the timer was set
            self._reset_timeout()
            return
        assert self.session is not None
        if self._data_since is None:
            log.info(
                "SMTP client %s made no progress in %ss: 421",
                self.session.peer,
                self._limits.timeout,
            )
        else:
            log.info(
                "SMTP client %s too slow in DATA (%d bytes in %.0fs): 421",
                self.session.peer,
                self._data_bytes,
                self.loop.time() - self._data_since,
            )
        self._close_with("421 4.4.2 Timeout, closing connection")

    def _close_with(self, reply: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # already on its way out
        self._writer.write(reply.encode("ascii") + b"\r\n")
        self.transport.close()
        self.event_handler.refused(reply[:3])

    # --- progress and junk: every final reply ends one command (RFC 5321 4.2) ------------

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        if text[3:4] == "-" or text.startswith("3"):  # a continuation line, or 354 go ahead
            return
        for line in text.split("\r\n"):  # LMTP answers DATA with one line per recipient
            if line[:1] in ("4", "5"):
                self.event_handler.refused(line[:3])
        if not self._greeted:
            self._greeted = True  # the 220 greeting answers no command
            return
        self._command_done()

    def _command_done(self) -> None:
        envelope = self.envelope
        assert envelope is not None
        now = (envelope.mail_from is not None, len(envelope.rcpt_tos), self._delivered)
        before, self._seen = self._seen, now
        if now[2] > before[2]:
            self._junk = 0  # as Postfix: the junk count restarts with each message accepted
        if (now[0] and not before[0]) or now[1] > before[1] or now[2] > before[2]:
            self._idle_since = self.loop.time()
            self._reset_timeout()
            return
        self._junk += 1
        if self._junk == self._limits.max_junk_commands:
            assert self.session is not None
            log.info(
                "SMTP client %s sent %d commands without progress: 421",
                self.session.peer,
                self._junk,
            )
            self._close_with("421 4.7.0 Too many commands without mail, closing connection")

    # --- DATA ------------------------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (same checks and replies), reading through _read_data."""
        if await self.check_helo_needed():
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        refusal = self.event_handler.data_refusal()  # before a byte of it is read
        if refusal is not None:
            await self.push(refusal)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._data_since, self._data_bytes = self.loop.time(), 0
        self._reset_timeout()
        try:
            content = await self._read_data()
        finally:
            # Storing gets a whole timeout of its own.
            self._data_since, self._idle_since = None, self.loop.time()
            if self.transport is not None:
                self._reset_timeout()
        if content is None:
            log.info(
                "message from %s over the size limit of %s bytes: 552",
                self.session.peer,
                self.data_size_limit,
            )
            reply = self.too_much_data(self.envelope.rcpt_tos)
            self.envelope = self._create_envelope()  # aiosmtpd's post-DATA state
            await self.push(reply)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self.envelope = self._create_envelope()  # aiosmtpd's post-DATA state
        if isinstance(status, str) and "250" in (line[:3] for line in status.split("\r\n")):
            self._delivered += 1
        await self.push("250 OK" if status is MISSING else status)

    def too_much_data(self, recipients: list[str]) -> str:
        """The reply to a message over the size limit (LMTP: one per recipient)."""
        return "552 Error: Too much mail data"

    async def _read_data(self) -> bytes | None:
        """The data up to the lone dot, dot-unstuffed; None past the size limit (all read).

        As in aiosmtpd, lines end at CRLF only (mail with bare LF line ends is data like any
        other, in one piece). Reads block by block (up to the next ".\r\n", or what the
        stream holds), giving the other clients a turn every few blocks.
        """
        reader = self._reader
        limit = self.data_size_limit
        data = bytearray(b"\r\n")  # the CRLF that ended DATA: a lone dot may come first
        too_much = False
        blocks = 0
        while True:
            try:
                block = await reader.readuntil(b".\r\n")
                dot = True
            except asyncio.LimitOverrunError as exc:
                block = await reader.read(exc.consumed)  # leaves what may start ".\r\n"
                dot = False
            if dot:
                before = block[-5:-3] if len(block) >= 5 else (data[-2:] + block[:-3])[-2:]
                dot = before == b"\r\n"  # else a line that merely ends with a dot
            if dot:
                block = block[:-3]
            data += block
            if too_much or (limit and len(data) - 2 > limit):
                too_much = True
                del data[:-2]  # drop it at once; keep what may precede the lone dot
            if dot:
                break
            blocks += 1
            if blocks % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if too_much:
            return None
        return bytes(data).replace(b"\r\n.", b"\r\n")[2:]  # RFC 5321 4.5.2
