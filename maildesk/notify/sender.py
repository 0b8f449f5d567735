"""Drain the outbox: send due entries through a transport (mail/transport.py), retrying
failures with exponential backoff.

Delivery is at-least-once: an entry is leased before sending, so a crash mid-send means a
resend after the lease with the same Message-ID, which receivers can recognise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from maildesk.config import OutboundConfig
from maildesk.mail.transport import DeliveryError, Transport
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
