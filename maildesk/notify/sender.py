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
from maildesk.terms import OutboxStatus

log = logging.getLogger(__name__)

# A claimed entry is not claimed again for at least this long (by another sender, or
# after a crash), and longer when a batch could take longer to send.
LEASE = timedelta(minutes=1)
RECORD_EVERY = 10  # outcomes recorded together
BATCH = 10  # entries claimed at once


def lease_for(cfg: OutboundConfig, limit: int = BATCH) -> timedelta:
    """How long claimed entries stay claimed: a whole batch may take the SMTP timeout each."""
    return max(LEASE, timedelta(seconds=cfg.timeout * limit))


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


class SmtpTransport:
    """Hand messages to an SMTP server (smarthost), with optional STARTTLS and login.

    One connection serves a whole batch of the outbox (no TCP, TLS and login per message);
    a kept connection the server has meanwhile dropped is opened again once.
    """

    def __init__(self, cfg: OutboundConfig) -> None:
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
    limit: int = BATCH,
) -> SendReport:
    """Send every due entry once; failures are rescheduled or marked failed.

    The outcomes are recorded together, one transaction per RECORD_EVERY messages, not
    one per message: a crash in between only means those few are sent again, with the
    same Message-ID (at-least-once, as the outbox promises).
    """
    report = SendReport()
    # Claimed entries are not claimed again (by another daemon) while this batch may still
    # be sending them: every one of them could take the full SMTP timeout.
    lease = lease_for(cfg, limit)
    with transaction(sessions) as session:
        claimed = repo.due_outbox(session, now(), limit)
        for entry in claimed:
            entry.attempts += 1
            entry.next_attempt_at = now() + lease
        batch = [(e.id, e.sender, list(e.recipients), e.raw, e.attempts) for e in claimed]
    done: list[tuple[int, int, DeliveryError | None]] = []
    try:
        for entry_id, sender, recipients, raw, attempts in batch:
            try:
                transport.send(sender, recipients, raw)
            except Exception as exc:
                if not isinstance(exc, DeliveryError):  # a bug or an odd transport: retry
                    log.exception("outbox %s: unexpected error while sending", entry_id)
                    exc = DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False)
                done.append((entry_id, attempts, exc))
            else:
                done.append((entry_id, attempts, None))
                log.info("sent outbox %s to %s", entry_id, ", ".join(recipients))
            if len(done) >= RECORD_EVERY:
                _record(sessions, done, cfg, now(), report)
                done = []
    finally:
        transport.close()
        if done:
            _record(sessions, done, cfg, now(), report)
    return report


def _record(
    sessions: sessionmaker[Session],
    done: list[tuple[int, int, DeliveryError | None]],
    cfg: OutboundConfig,
    now: datetime,
    report: SendReport,
) -> None:
    """Mark entries sent, or reschedule or fail them, in one transaction."""
    with transaction(sessions) as session:
        entries = repo.outbox_entries(session, [entry_id for entry_id, _, _ in done])
        for entry_id, attempts, exc in done:
            entry = entries[entry_id]
            if exc is None:
                entry.status, entry.sent_at, entry.last_error = OutboxStatus.SENT, now, None
                report.sent += 1
                continue
            entry.last_error = str(exc)[:2000]
            if exc.permanent or attempts >= cfg.max_attempts:
                entry.status = OutboxStatus.FAILED
                report.failed += 1
                log.error("outbox %s failed after %d attempt(s): %s", entry_id, attempts, exc)
                continue
            entry.next_attempt_at = now + backoff_delay(attempts, cfg)
            report.retrying += 1
            log.warning(
                "outbox %s attempt %d failed, retry at %s: %s",
                entry_id,
                attempts,
                entry.next_attempt_at.isoformat(),
                exc,
            )


def retry_entry(session: Session, entry_id: int, now: datetime) -> OutboxEntry | None:
    """Put a failed (or queued) entry back in line for immediate delivery."""
    entry = repo.outbox_entries(session, [entry_id]).get(entry_id)
    if entry is None:
        return None
    entry.status, entry.next_attempt_at, entry.attempts = OutboxStatus.QUEUED, now, 0
    return entry
