"""Deliver outbox entries: SMTP or Maildir transports, retries with exponential backoff.

Delivery is at-least-once: an entry is leased before sending, so a crash mid-send means a
resend after the lease with the same Message-ID, which receivers can recognise.
"""

from __future__ import annotations

import logging
import mailbox
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from maildesk.config import OutboundConfig
from maildesk.store import repo
from maildesk.store.db import transaction
from maildesk.store.models import OutboxEntry

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)


class DeliveryError(Exception):
    """A failed delivery; `permanent` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        """Deliver one message or raise DeliveryError."""


class SmtpTransport:
    """Hand messages to an SMTP server (smarthost), with optional STARTTLS and login."""

    def __init__(self, cfg: OutboundConfig) -> None:
        self.cfg = cfg

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        cfg = self.cfg
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout) as smtp:
                if cfg.starttls:
                    cafile = str(cfg.ca_file) if cfg.ca_file else None
                    smtp.starttls(context=ssl.create_default_context(cafile=cafile))
                if cfg.username and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password)
                refused = smtp.sendmail(sender, recipients, raw)
        except smtplib.SMTPAuthenticationError as exc:
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
            raise DeliveryError(f"{exc.smtp_code} {text}", permanent=exc.smtp_code >= 500) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
        if refused:
            # Some recipients were refused; the rest got it. Record, do not resend to all.
            log.warning("SMTP server refused some recipients: %s", refused)


class MaildirTransport:
    """Write messages into a Maildir (for demos and `make run` without a mail server)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        try:
            mailbox.Maildir(self.path, create=True).add(raw)
        except OSError as exc:
            raise DeliveryError(f"cannot write to {self.path}: {exc}", permanent=False) from exc


def transport_for(cfg: OutboundConfig) -> Transport:
    if cfg.transport == "maildir" and cfg.path is not None:
        return MaildirTransport(cfg.path)
    return SmtpTransport(cfg)


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


def backoff_delay(attempts: int, cfg: OutboundConfig) -> timedelta:
    """Exponential backoff after `attempts` failed tries, capped at max_backoff."""
    doublings = min(max(0, attempts - 1), 32)
    return min(cfg.backoff * (1 << doublings), cfg.max_backoff)


def send_due(
    sessions: sessionmaker[Session],
    transport: Transport,
    cfg: OutboundConfig,
    now: Callable[[], datetime],
    *,
    limit: int = 50,
) -> SendReport:
    """Send every due entry once; failures are rescheduled or marked failed."""
    report = SendReport()
    with transaction(sessions) as session:
        claimed = repo.due_outbox(session, now(), limit)
        for entry in claimed:
            entry.attempts += 1
            entry.next_attempt_at = now() + LEASE
        batch = [(e.id, e.sender, list(e.recipients), e.raw, e.attempts) for e in claimed]
    for entry_id, sender, recipients, raw, attempts in batch:
        try:
            transport.send(sender, recipients, raw)
        except Exception as exc:
            if not isinstance(exc, DeliveryError):  # a bug or an odd transport: retry later
                log.exception("outbox %s: unexpected error while sending", entry_id)
                exc = DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False)
            outcome = _record_failure(sessions, entry_id, attempts, exc, cfg, now())
            setattr(report, outcome, getattr(report, outcome) + 1)
        else:
            with transaction(sessions) as session:
                entry = session.get_one(OutboxEntry, entry_id)
                entry.status, entry.sent_at, entry.last_error = "sent", now(), None
            report.sent += 1
            log.info("sent outbox %s to %s", entry_id, ", ".join(recipients))
    return report


def _record_failure(
    sessions: sessionmaker[Session],
    entry_id: int,
    attempts: int,
    exc: DeliveryError,
    cfg: OutboundConfig,
    now: datetime,
) -> str:
    with transaction(sessions) as session:
        entry = session.get_one(OutboxEntry, entry_id)
        entry.last_error = str(exc)[:2000]
        if exc.permanent or attempts >= cfg.max_attempts:
            entry.status = "failed"
            log.error("outbox %s failed after %d attempt(s): %s", entry_id, attempts, exc)
            return "failed"
        entry.next_attempt_at = now + backoff_delay(attempts, cfg)
        log.warning(
            "outbox %s attempt %d failed, retry at %s: %s",
            entry_id,
            attempts,
            entry.next_attempt_at.isoformat(),
            exc,
        )
        return "retrying"


def retry_entry(session: Session, entry_id: int, now: datetime) -> OutboxEntry | None:
    """Put a failed (or queued) entry back in line for immediate delivery."""
    entry = session.get(OutboxEntry, entry_id)
    if entry is None:
        return None
    entry.status, entry.next_attempt_at, entry.attempts = "queued", now, 0
    return entry
