"""Transports: how a composed message leaves the desk (an SMTP smarthost, or a Maildir).

Data and I/O only: a transport knows nothing of the outbox or the database; the outbox
sender (notify/sender.py) decides what to send and what a failure means for the entry.
"""

from __future__ import annotations

import logging
import mailbox
import smtplib
import ssl
from pathlib import Path
from typing import Protocol

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
        """Let go of any connection kept between messages."""


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
    def timeout(self) -> float: ...


class SmtpTransport:
    """Hand messages to an SMTP server (smarthost), with optional STARTTLS and login.

    One connection serves a whole batch of the outbox (no TCP, TLS and login per message);
    a kept connection the server has meanwhile dropped is opened again once.
    """

    def __init__(self, cfg: OutboundSettings) -> None:
        self.cfg = cfg
        self._smtp: smtplib.SMTP | None = None

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        cfg = self.cfg
        reused = self._smtp is not None
        try:
            try:
                refused = self._session().sendmail(sender, recipients, raw)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                if not reused:
                    raise
                self.close()  # a kept connection went stale: once more on a fresh one
                refused = self._session().sendmail(sender, recipients, raw)
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            # A configuration problem, not the message's: keep it queued (with backoff) so
            # it goes out once the credentials are fixed, instead of failing every message.
            raise DeliveryError(
                f"login to {cfg.host}:{cfg.port} as {cfg.username} refused: "
                f"{exc.smtp_code} {exc.smtp_error!r}",
                permanent=False,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{r}: {c} {m!r}" for r, (c, m) in exc.recipients.items())
            raise DeliveryError(detail, permanent=all(c >= 500 for c in codes)) from exc
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            if exc.smtp_code in (421, 554) or exc.smtp_code < 0:
                self.close()  # the server is closing or refused the session itself
            raise DeliveryError(f"{exc.smtp_code} {text}", permanent=exc.smtp_code >= 500) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
        if refused:
            # Some recipients were refused; the rest got it. Record, do not resend to all.
            log.warning("SMTP server refused some recipients: %s", refused)

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        cfg = self.cfg
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            if cfg.starttls:
                cafile = str(cfg.ca_file) if cfg.ca_file else None
                smtp.starttls(context=ssl.create_default_context(cafile=cafile))
            if cfg.username and cfg.password is not None:
                smtp.login(cfg.username, cfg.password)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


class MaildirTransport:
    """Write messages into a Maildir (for demos and `make run` without a mail server)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        try:
            mailbox.Maildir(self.path, create=True).add(raw)
        except OSError as exc:
            raise DeliveryError(f"cannot write to {self.path}: {exc}", permanent=False) from exc

    def close(self) -> None:
        pass


def transport_for(cfg: OutboundSettings) -> Transport:
    """The transport `[outbound]` asks for."""
    if cfg.transport == "maildir" and cfg.path is not None:
        return MaildirTransport(cfg.path)
    return SmtpTransport(cfg)
