"""What `maildesk status` reports: the backlog, quarantine and outbox from the store, and
each running daemon's heartbeat.

A daemon's supervisor writes one heartbeat row (in `settings`, key `heartbeat:HOST:PID`)
every few seconds and whenever a worker changes state: its workers' states and restart
counts, as JSON. It deletes the row when it stops; a row not refreshed for a while is a
daemon that died without stopping (its age tells since when).

Several daemons on one database: each one's mailbox leases and the pending mail its
pipeline has claimed are read here too (`daemon_shares`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from maildesk.store.leases import mailboxes_held
from maildesk.store.models import OutboxEntry, RawMessage, Setting
from maildesk.store.spool import Spool
from maildesk.terms import OUTBOX_STATUSES, RawStatus

HEARTBEAT_PREFIX = "heartbeat:"
HEARTBEAT_INTERVAL = 5.0  # seconds between a daemon's heartbeats
STALE_AFTER = 30.0  # a heartbeat older than this: that daemon is gone or stuck


def heartbeat_key(host: str, pid: int) -> str:
    suffix = f":{pid}"
    return f"{HEARTBEAT_PREFIX}{host[: 64 - len(HEARTBEAT_PREFIX) - len(suffix)]}{suffix}"


def write_heartbeat(session: Session, key: str, state: dict[str, Any]) -> None:
    """Insert or replace this daemon's heartbeat row."""
    value = json.dumps(state, sort_keys=True)
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value


def drop_heartbeat(session: Session, key: str) -> None:
    session.execute(delete(Setting).where(Setting.key == key))


def heartbeats(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Setting).where(Setting.key.startswith(HEARTBEAT_PREFIX)).order_by(Setting.key)
    )
    beats = []
    for row in rows:
        try:
            beat = json.loads(row.value)
        except ValueError:
            continue
        if isinstance(beat, dict):
            beats.append(beat)
    return beats


def daemon_shares(session: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """By daemon id (HOST:PID): the mailboxes it holds and how much pending mail it has
    claimed (its claim not run out)."""
    claimed = session.execute(
        select(RawMessage.claimed_by, func.count())
        .where(
            RawMessage.status == RawStatus.PENDING,
            RawMessage.claimed_by.is_not(None),
            RawMessage.claimed_until > now,
        )
        .group_by(RawMessage.claimed_by)
    )
    shares: dict[str, dict[str, Any]] = {}
    for holder, count in claimed:
        shares.setdefault(str(holder), {"mailboxes": [], "claimed": 0})["claimed"] = int(count)
    for holder, boxes in mailboxes_held(session, now).items():
        shares.setdefault(holder, {"mailboxes": [], "claimed": 0})["mailboxes"] = boxes
    return shares


def store_status(session: Session, now: datetime, spool: Spool | None = None) -> dict[str, Any]:
    """Pending backlog (the spool's included), its oldest message's age, quarantined
    count, outbox by status."""
    pending, oldest = session.execute(
        select(func.count(), func.min(RawMessage.received_at)).where(
            RawMessage.status == RawStatus.PENDING
        )
    ).one()
    if spool is not None:
        spooled, spooled_oldest = spool.backlog()
        pending += spooled
        if spooled_oldest is not None and (oldest is None or _utc(spooled_oldest) < _utc(oldest)):
            oldest = spooled_oldest
    quarantined = session.scalar(
        select(func.count())
        .select_from(RawMessage)
        .where(RawMessage.status == RawStatus.QUARANTINED)
    )
    outbox: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)
        )
    }
    oldest_at = _utc(oldest) if oldest is not None else None
    return {
        "pending": int(pending),
        "oldest_pending_seconds": (
            round((now - oldest_at).total_seconds(), 1) if oldest_at is not None else None
        ),
        "quarantined": int(quarantined or 0),
        "outbox": {status: int(outbox.get(status, 0)) for status in OUTBOX_STATUSES},
    }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
