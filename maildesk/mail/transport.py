"""Transports: how a composed message leaves the desk (an SMTP smarthost, or a Maildir).

Data and I/O only: a transport knows nothing of the outbox or the database; the outbox
sender (notify/sender.py) decides what to send and what a failure means for the entry.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import os
import smtplib
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from maildesk.mail.address import ascii_address
from maildesk.mail.oauth2 import AccessToken, OAuth2Settings, TokenError, sasl_response, tokens_for

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A failed delivery; `permanent` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        """Deliver one message or raise DeliveryError."""

    def close(self) -> None:
        """Let go of any connection kept between messages, and make what was delivered
        durable where that is the transport's business (a Maildir)."""


class OutboundSettings(Protocol):
    """What the transports read of `[outbound]` (config's OutboundConfig is one)."""

    @property
    def transport(self) -> str: ...  # "smtp" or "maildir"
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def path(self) -> Path | None: ...
    @property
    def starttls(self) -> bool: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def oauth2(self) -> OAuth2Settings | None: ...  # set: AUTH XOAUTH2/OAUTHBEARER, not LOGIN
    @property
    def timeout(self) -> float: ...


class SmtpTransport:
    """Hand messages to an SMTP server (smarthost), with optional STARTTLS and login.

    One connection serves a whole batch of the outbox (no TCP, TLS and login per message);
    a kept connection the server has meanwhile dropped is opened again once. After any
    failure the session is reset (RSET), or closed when that fails or the failure leaves
    it unusable, so one bad message never affects the next.

    Addresses go out in ASCII (the domain in IDNA A-labels) unless the message needs
    SMTPUTF8 (RFC 6531: a local part that is not ASCII, raw UTF-8 in its headers); such a
    message goes with SMTPUTF8 to a server that offers it and fails permanently otherwise.
    """

    def __init__(self, cfg: OutboundSettings) -> None:
        self.cfg = cfg
        self._smtp: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        reused = self._smtp is not None
        try:
            try:
                refused = self._sendmail(sender, recipients, raw)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                if not reused:
                    raise
                self.close()  # a kept connection went stale: once more on a fresh one
                refused = self._sendmail(sender, recipients, raw)
        except Exception as exc:
            error, usable = _classify(exc, self.cfg)
            if usable:
                self._reset()
            else:
                self.close()
            if error is None:
                raise  # not a delivery problem (a bug): the caller logs it and retries
            raise error from exc
        if refused:
            # Some recipients were refused; the rest got it. Record, do not resend to all.
            log.warning("SMTP server refused some recipients: %s", refused)

    def _sendmail(
        self, sender: str, recipients: list[str], raw: bytes
    ) -> dict[str, tuple[int, bytes]]:
        if not recipients:
            raise DeliveryError("no recipients", permanent=True)
        smtp = self._session()
        smtp.ehlo_or_helo_if_needed()  # what the server offers (SMTPUTF8, 8BITMIME)
        addresses = [sender, *recipients]
        envelope = [ascii_address(a) for a in addresses]
        if raw.isascii() and all(envelope):
            return smtp.sendmail(str(envelope[0]), [str(a) for a in envelope[1:]], raw)
        if not smtp.has_extn("smtputf8"):
            roles = ["sender", *["recipient"] * len(recipients)]
            pairs = zip(roles, addresses, envelope, strict=True)
            needy = [f"{role} {a}" for role, a, form in pairs if form is None]
            what = needy[0] if needy else "a message with UTF-8 headers"
            raise DeliveryError(
                f"{what} needs SMTPUTF8, which {self.where} does not offer", permanent=True
            )
        options = ["SMTPUTF8", *(["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else [])]
        return smtp.sendmail(sender, recipients, raw, mail_options=options)

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        cfg = self.cfg
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            if cfg.starttls:
                cafile = str(cfg.ca_file) if cfg.ca_file else None
                smtp.starttls(context=ssl.create_default_context(cafile=cafile))
            if cfg.oauth2 is not None:
                _token_login(smtp, cfg, cfg.oauth2)
            elif cfg.username and cfg.password is not None:
                smtp.login(cfg.username, cfg.password)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _reset(self) -> None:
        """RSET the kept session, so the next message starts a clean transaction; close it
        when the server does not take that."""
        smtp = self._smtp
        if smtp is None:
            return
        try:
            code, _ = smtp.rset()
        except (smtplib.SMTPException, OSError, UnicodeError):
            code = -1
        if code != 250:
            self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _token_login(smtp: smtplib.SMTP, cfg: OutboundSettings, settings: OAuth2Settings) -> None:
    """AUTH with an OAuth2 token: the cached one, then once a fresh one if it is refused."""
    tokens = tokens_for(settings)
    token = tokens.token()
    try:
        _authenticate(smtp, cfg, settings, token)
    except smtplib.SMTPAuthenticationError:
        tokens.refused(token)
        _authenticate(smtp, cfg, settings, tokens.token())


def _authenticate(
    smtp: smtplib.SMTP, cfg: OutboundSettings, settings: OAuth2Settings, token: AccessToken
) -> None:
    initial = sasl_response(settings.mechanism, cfg.username or "", token.value)

    def respond(challenge: bytes | None = None) -> str:
        # After the initial response a challenge is the server's error report (RFC 7628
        # 3.2.2): answer it empty, and the server then says 535.
        return initial if challenge is None else ""

    smtp.ehlo_or_helo_if_needed()
    smtp.auth(settings.mechanism.upper(), respond, initial_response_ok=True)


def _classify(exc: Exception, cfg: OutboundSettings) -> tuple[DeliveryError | None, bool]:
    """What a failed send means: the DeliveryError to raise (None: not a delivery problem,
    raised as it is), and whether the session may go on after an RSET (else it is closed)."""
    if isinstance(exc, DeliveryError):
        return exc, True
    if isinstance(exc, TokenError):  # like a refused login: kept queued until it is fixed
        return DeliveryError(
            f"login to {cfg.host}:{cfg.port} as {cfg.username}: no OAuth2 token: {exc}",
            permanent=False,
        ), False
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # A configuration problem, not the message's: keep it queued (with backoff) so it
        # goes out once the credentials are fixed, instead of failing every message.
        return DeliveryError(
            f"login to {cfg.host}:{cfg.port} as {cfg.username} refused: "
            f"{exc.smtp_code} {_smtp_text(exc.smtp_error)}",
            permanent=False,
        ), False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{r}: {c} {_smtp_text(m)}" for r, (c, m) in exc.recipients.items())
        return DeliveryError(detail, permanent=all(c >= 500 for c in codes)), 421 not in codes
    if isinstance(exc, smtplib.SMTPResponseException):
        text = _smtp_text(exc.smtp_error)
        # 421 and 554: the server is closing or refused the session itself.
        usable = exc.smtp_code not in (421, 554) and exc.smtp_code >= 0
        return DeliveryError(f"{exc.smtp_code} {text}", permanent=exc.smtp_code >= 500), usable
    if isinstance(exc, UnicodeError):  # an address or command smtplib cannot encode
        text = f"cannot be sent to {cfg.host}:{cfg.port}: {exc}"
        return DeliveryError(text, permanent=True), True
    if isinstance(exc, (TimeoutError, smtplib.SMTPException, OSError)):
        return DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False), False
    return None, True


def _smtp_text(reply: bytes | str) -> str:
    """A server's reply text as it reads (smtplib hands it over as bytes)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


class MaildirTransport:
    """Write messages into a Maildir (for demos and `make run` without a mail server).

    Each message goes to tmp/ and is moved to new/ at once; close(), at the end of the
    sender's batch and before it marks the batch sent, makes them all durable with one
    sync of the file system (syncfs, on Linux; elsewhere one sync per file).
    """

    _serial = itertools.count()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._unsynced: list[Path] = []

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        try:
            # The folder's parents too (var/ on a fresh machine whose database is not a
            # file there), and tmp/new/cur in a folder that is already there.
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._unsynced.append(self._deliver(raw))
        except OSError as exc:
            raise DeliveryError(f"cannot write to {self.path}: {exc}", permanent=False) from exc

    def _deliver(self, raw: bytes) -> Path:
        now = time.time()
        host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(self._serial)}.{host}"
        tmp, dest = self.path / "tmp" / name, self.path / "new" / name
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(raw if raw.endswith(b"\n") else raw + b"\n")
        os.rename(tmp, dest)
        return dest

    def close(self) -> None:
        written, self._unsynced = self._unsynced, []
        if not written:
            return
        try:
            _sync_files(self.path / "new", written)
        except OSError as exc:  # the files are there; a power loss now could lose them
            log.error("cannot sync %d messages written to %s: %s", len(written), self.path, exc)


def _sync_files(folder: Path, files: list[Path]) -> None:
    """Make files (and their names in folder) durable: one syncfs where there is one."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        syncfs = _syncfs()
        if syncfs is not None and syncfs(fd) == 0:
            return
        for path in files:
            with path.open("rb") as f:
                os.fsync(f.fileno())
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """syncfs(2) from the C library (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return fn


def transport_for(cfg: OutboundSettings) -> Transport:
    """The transport `[outbound]` asks for."""
    if cfg.transport == "maildir" and cfg.path is not None:
        return MaildirTransport(cfg.path)
    return SmtpTransport(cfg)
