"""Leases: what one daemon of several does at a time, held in the `leases` table.

A lease has a name ("mailbox:support", "job:sla"), a holder (the daemon's id, HOST:PID) and
an expiry. Its holder renews it while it works; when the holder dies, the lease runs out and
another daemon takes it. Taking and renewing is one statement (an upsert that only replaces
a row held by the same holder or expired), so two daemons can never both hold a name.

A scheduled job's firing is a lease too: the daemon that fires first takes "job:NAME" for
most of the job's interval; the others, firing within it, find it held and skip that
firing, so each firing runs on one daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from maildesk.store.models import Lease, RawMessage
from maildesk.terms import RawStatus

MAILBOX = "mailbox:"
JOB = "job:"


_holder: str | None = None  # a pipeline worker process: its daemon's id and "/wN"


def daemon_id() -> str:
    """This process as a lease holder and claimer of mail: HOST:PID (as in its heartbeat),
    or, in a pipeline worker process of `serve --workers`, the id use_holder gave it."""
    if _holder is not None:
        return _holder
    suffix = f":{os.getpid()}"
    return socket.gethostname()[: 128 - len(suffix)] + suffix


def worker_holder(daemon: str, index: int) -> str:
    """The holder id of a daemon's pipeline worker process: HOST:PID/wN."""
    return f"{daemon}/w{index}"


def use_holder(holder: str | None) -> None:
    """This process claims mail as `holder` from now on (a pipeline worker process; None:
    as itself again)."""
    global _holder
    _holder = holder


def release_claims(session: Session, holder: str) -> int:
    """Give back the pending mail `holder` has claimed (a worker process that died), so
    that another takes it at once; how many messages."""
    return _give_back(session, [holder])


def _give_back(session: Session, holders: list[str]) -> int:
    """Clear the claims these holders have on mail still pending (what they finished keeps
    saying who did it); how many messages."""
    result = session.execute(
        update(RawMessage)
        .where(RawMessage.claimed_by.in_(holders), RawMessage.status == RawStatus.PENDING)
        .values(claimed_by=None, claimed_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def take_lease(
    session: Session,
    name: str,
    holder: str,
    now: datetime,
    until: datetime,
    *,
    renew: bool = True,
) -> bool:
    """Take or renew `name` for `holder` until `until`; False if another holder has it.

    The lease is free once it expired (expires_at <= now). A holder renewing its own lease
    keeps its acquired_at; with renew False it cannot renew, only take a free one."""
    values = {"name": name, "holder": holder, "acquired_at": now, "expires_at": until}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt: Any = insert(Lease).values(**values)
    table = Lease.__table__.c
    renewal = table.holder == stmt.excluded.holder
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.name],
        set_={
            "holder": stmt.excluded.holder,
            "acquired_at": case((renewal, table.acquired_at), else_=stmt.excluded.acquired_at),
            "expires_at": stmt.excluded.expires_at,
        },
        where=(renewal | (table.expires_at <= now)) if renew else table.expires_at <= now,
    ).returning(table.holder)
    return session.execute(stmt).first() is not None


def take_mailbox(
    session: Session, mailbox: str, holder: str, now: datetime, ttl: timedelta
) -> bool:
    """Take or renew the lease on an IMAP mailbox for ttl; False if another daemon holds it."""
    return take_lease(session, MAILBOX + mailbox, holder, now, now + ttl)


def take_firing(session: Session, job: str, holder: str, now: datetime, every: timedelta) -> bool:
    """Claim this firing of a scheduled job (run every `every`) for holder: True unless
    another firing, on any daemon, was claimed less than 90% of `every` ago. The 10% spare
    absorbs a scheduler firing late; the same daemon firing twice in a row runs twice."""
    until = now + every * 0.9
    return take_lease(session, JOB + job, holder, now, until, renew=False)


def release_lease(session: Session, name: str, holder: str) -> None:
    """Give up a lease (at stop), if holder still has it."""
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def release_mailbox(session: Session, mailbox: str, holder: str) -> None:
    release_lease(session, MAILBOX + mailbox, holder)


def lease_holder(session: Session, name: str, now: datetime) -> str | None:
    """Who holds the lease now (None: nobody, or it expired)."""
    stmt = select(Lease.holder).where(Lease.name == name, Lease.expires_at > now)
    return session.scalar(stmt)


def mailboxes_held(session: Session, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The mailbox leases in force, by holder: name, since when, until when."""
    stmt = (
        select(Lease)
        .where(Lease.name.startswith(MAILBOX), Lease.expires_at > now)
        .order_by(Lease.name)
    )
    held: dict[str, list[dict[str, Any]]] = {}
    for lease in session.scalars(stmt):
        held.setdefault(lease.holder, []).append(
            {
                "mailbox": lease.name.removeprefix(MAILBOX),
                "since": lease.acquired_at.isoformat(),
                "until": lease.expires_at.isoformat(),
            }
        )
    return held


def release_dead_here(session: Session, host: str, alive: Callable[[int], bool]) -> list[str]:
    """Give back the leases and pending mail claims of daemons on this host whose process
    is gone (a daemon killed and started again has a new pid: it need not wait out the old
    one's lease_ttl); mail they finished keeps saying who did it. Returns the holders
    released."""
    prefix = f"{host}:"
    holders = set(session.scalars(select(Lease.holder).where(Lease.holder.startswith(prefix))))
    holders |= set(
        session.scalars(
            select(RawMessage.claimed_by)
            .where(RawMessage.claimed_by.startswith(prefix), RawMessage.status == RawStatus.PENDING)
            .distinct()
        )
    )
    dead = sorted(h for h in holders if _dead(h[len(prefix) :], alive))
    if dead:
        session.execute(delete(Lease).where(Lease.holder.in_(dead)))
        _give_back(session, dead)
    return dead


def _dead(rest: str, alive: Callable[[int], bool]) -> bool:
    """Whether the holder PID (or PID/wN: one of its worker processes) is gone."""
    pid = rest.split("/", 1)[0]
    return pid.isdigit() and not alive(int(pid))
