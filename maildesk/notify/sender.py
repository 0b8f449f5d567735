"""Drain the outbox: send due entries through a transport (mail/transport.py), retrying
failures with exponential backoff.

Delivery is at-least-once: an entry is leased before sending, so a crash mid-send means a
resend after the lease with the same Message-ID, which receivers can recognise.

Several daemons (`renew`, from `[fleet] lease_ttl`): the lease is short and renewed while
the batch is sent, so a daemon that dies leaves its entries to the others within about
lease_ttl instead of after the long lease a whole batch's SMTP timeouts would need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
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
BATCH = 10  # entries claimed at once, and their outcomes recorded together
# A daemon's sender renews its lease while it sends (`renew`), so it claims more at once:
# on SQLite each claim and each record waits for the pipeline's transaction in hand (up
# to its 100 ms), and 10 at a time sent 40 notifications a second while the pipeline
# queued twice that.
RENEWED_BATCH = 50

# DURABILITY: the sender's claims and outcomes commit without a disk sync of their own (on
# SQLite; the next durable commit's sync covers them). A power loss can only take back such
# a write, and then the entry is sent again with the same Message-ID: at-least-once, as a
# crash mid-send already allows. A crash of the process loses nothing.


def lease_for(cfg: OutboundConfig, limit: int = BATCH) -> timedelta:
    """How long claimed entries stay claimed: a whole batch may take the SMTP timeout each."""
    return max(LEASE, timedelta(seconds=cfg.timeout * limit))


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # sent, by notification kind


def next_due_wait(
    sessions: sessionmaker[Session], now: Callable[[], datetime], longest: float
) -> float:
    """Seconds until the next outbox entry is due (at least 0.05, at most `longest`)."""
    with transaction(sessions, readonly=True) as session:
        due = repo.next_outbox_due(session)
    if due is None:
        return longest
    wait = (due - now()) / timedelta(seconds=1)
    return max(0.05, min(wait, longest))


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
    renew: timedelta | None = None,
) -> SendReport:
    """Send every due entry once; failures are rescheduled or marked failed.

    The outcomes are recorded together, one transaction per batch, not one per message,
    once the transport has closed (made them durable): a crash in between only means those
    few are sent again, with the same Message-ID (at-least-once, as the outbox promises).
    """
    report = SendReport()
    # Claimed entries are not claimed again (by another daemon) while this batch may still
    # be sending them: every one of them could take the full SMTP timeout.
    lease = lease_for(cfg, limit)
    if renew is not None:  # renewed while sending: one send's timeout, twice, is enough
        lease = max(renew, timedelta(seconds=cfg.timeout * 2))
    with transaction(sessions, durable=False) as session:  # see DURABILITY
        claimed = repo.due_outbox(session, now(), limit)
        for entry in claimed:
            entry.attempts += 1
            entry.next_attempt_at = now() + lease
        batch = [
            (e.id, e.sender, list(e.recipients), e.raw, e.attempts, e.last_error) for e in claimed
        ]
    done: list[tuple[int, int, DeliveryError | None]] = []
    leased = now()
    try:
        for n, (entry_id, sender, recipients, raw, attempts, last_error) in enumerate(batch):
            if renew is not None and now() - leased >= lease / 3:
                leased = now()
                _extend(sessions, [e[0] for e in batch[n:]], leased + lease)
            error = _send_one(transport, entry_id, sender, recipients, raw, last_error)
            done.append((entry_id, attempts, error))
    finally:
        transport.close()  # a Maildir's files are durable from here: now they count as sent
        if done:
            _record(sessions, done, cfg, now(), report)
    return report


def _extend(sessions: sessionmaker[Session], ids: list[int], until: datetime) -> None:
    """Renew the lease on the entries of a batch still to be sent."""
    with transaction(sessions) as session:
        for entry in repo.outbox_entries(session, ids).values():
            if entry.status == OutboxStatus.QUEUED:
                entry.next_attempt_at = until


def _send_one(
    transport: Transport,
    entry_id: int,
    sender: str,
    recipients: list[str],
    raw: bytes,
    last_error: str | None,
) -> DeliveryError | None:
    """Send one entry; what went wrong, as a DeliveryError (None: sent).

    Whatever fails stays this entry's: an error that is not a DeliveryError (a bug, an odd
    transport) is retried with backoff, its traceback logged when it is new for the entry
    (not at every retry), and the transport's connection is let go so the next entry
    starts on a clean one."""
    try:
        transport.send(sender, recipients, raw)
    except DeliveryError as exc:
        return exc
    except Exception as exc:
        error = DeliveryError(_error_text(f"{type(exc).__name__}: {exc}"), permanent=False)
        if str(error) != last_error:
            log.exception("outbox %s: unexpected error while sending", entry_id)
        try:
            transport.close()
        except Exception:
            log.exception("outbox %s: closing the transport after the error failed", entry_id)
        return error
    log.info("sent outbox %s to %s", entry_id, ", ".join(recipients))
    return None


def _error_text(text: str) -> str:
    """An error as the store keeps it: at most 2000 characters, no NUL (PostgreSQL text
    takes none), no lone surrogates."""
    text = text.replace("\x00", "")[:2000]
    return text.encode("utf-8", "replace").decode("utf-8")


def _record(
    sessions: sessionmaker[Session],
    done: list[tuple[int, int, DeliveryError | None]],
    cfg: OutboundConfig,
    now: datetime,
    report: SendReport,
) -> None:
    """Mark entries sent, or reschedule or fail them, in one transaction."""
    with transaction(sessions, durable=False) as session:  # see DURABILITY
        entries = repo.outbox_entries(session, [entry_id for entry_id, _, _ in done])
        for entry_id, attempts, exc in done:
            entry = entries[entry_id]
            if exc is None:
                entry.status, entry.sent_at, entry.last_error = OutboxStatus.SENT, now, None
                report.sent += 1
                report.kinds[entry.kind] = report.kinds.get(entry.kind, 0) + 1
                continue
            entry.last_error = _error_text(str(exc))
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
