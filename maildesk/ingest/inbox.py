"""The one way raw mail enters the store, for every ingest edge.

SMTP (through the group commit), `maildesk deliver`, IMAP and `maildesk import` hand the
bytes they received to a function here, which adds them with status pending; the edge
answers its peer (250, exit 0, the mailbox checkpoint) once that has committed. Turning
them into ticket changes is the pipeline's business, not the edges'. On SQLite, SMTP mail
goes to the spool (store/spool.py) first; the other edges store in the ticket database.

The inbox needs three things of the App, its session factory, its spool and its clock
(`Storage`): an edge that stores mail depends on nothing else of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from maildesk.store import repo
from maildesk.store.db import transaction
from maildesk.store.models import RawMessage
from maildesk.store.spool import Arrival, Spool


class Storage(Protocol):
    """Where raw mail goes: a session factory, the spool if there is one, and a clock (the
    App is one)."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def spool(self) -> Spool | None: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True)
class Incoming:
    """A message as an ingest edge received it."""

    raw: bytes
    origin: str
    envelope_from: str | None = None
    envelope_to: Sequence[str] = ()


def store_raws(storage: Storage, items: Sequence[Incoming]) -> list[int]:
    """Commit several messages' raw bytes in one transaction (status pending); their ids
    (spool ids, where there is a spool). Raises StoreUnavailable.

    Someone waits for each of these (an SMTP client, for its 250). On SQLite they go to
    the spool (store/spool.py), whose write lock nobody holds for long; the pipeline takes
    them from there. Without a spool (PostgreSQL) they are raw messages at once.
    """
    if storage.spool is not None:
        arrivals = [Arrival(i.raw, i.origin, i.envelope_from, i.envelope_to) for i in items]
        return storage.spool.add(arrivals, storage.now())
    with transaction(storage.sessions, urgent=True) as session:
        now = storage.now()
        rows = [_add(session, item, now, flush=False) for item in items]
        session.flush()
        return [row.id for row in rows]


def store_raw(
    storage: Storage,
    raw: bytes,
    *,
    origin: str,
    envelope_from: str | None = None,
    envelope_to: Sequence[str] = (),
) -> int:
    """Commit one message's raw bytes (status pending) in the ticket database and return
    its raw message id: for an edge that runs the pipeline on it next (`deliver`, an
    alert posted over HTTP). Someone waits for it: on SQLite it goes first."""
    with transaction(storage.sessions, urgent=True) as session:
        item = Incoming(raw, origin, envelope_from, tuple(envelope_to))
        return _add(session, item, storage.now()).id


def pending_count(storage: Storage, cap: int) -> int:
    """Stored messages still pending (the pipeline's backlog: the spool's and the ticket
    database's), counted up to `cap`. Raises StoreUnavailable."""
    spooled = storage.spool.backlog()[0] if storage.spool is not None else 0
    if spooled >= cap:
        return spooled
    with transaction(storage.sessions, readonly=True) as session:
        return spooled + repo.count_pending(session, cap - spooled)


def save_raw(session: Session, raw: bytes, origin: str, now: datetime) -> RawMessage:
    """Add one message's raw bytes in the caller's transaction and return its row.

    For `maildesk import`, which stores each message in the same transaction that runs it
    through the pipeline (and keeps the row meanwhile: a session holds a clean row only
    while someone else does, and the pipeline then takes it without reading it back).
    """
    return _add(session, Incoming(raw, origin), now)


# --- a mailbox read with a checkpoint (IMAP) ------------------------------------------------


@dataclass(frozen=True)
class Resume:
    """Where reading a mailbox goes on: after `last_uid`; `changed_from` is the old
    UIDVALIDITY when the folder's changed (its checkpoint is then back at 0)."""

    last_uid: int
    changed_from: int | None = None


def resume(storage: Storage, mailbox: str, uidvalidity: int) -> Resume:
    """The mailbox's checkpoint under uidvalidity; a new UIDVALIDITY starts it over."""
    with transaction(storage.sessions) as session:
        mark = repo.checkpoint(session, mailbox)
        if mark is None:
            return Resume(0)
        if mark.uidvalidity == uidvalidity:
            return Resume(mark.last_uid)
        repo.advance_checkpoint(session, mailbox, uidvalidity, 0, storage.now())
        return Resume(0, changed_from=mark.uidvalidity)


def store_fetched(
    storage: Storage, mailbox: str, uidvalidity: int, uid: int, item: Incoming | None
) -> int | None:
    """Store a message fetched from a mailbox (None: one passed over) and move the
    mailbox's checkpoint past its UID, in one transaction: both happen or neither.
    The stored message's id, if any."""
    with transaction(storage.sessions) as session:
        raw_id = None if item is None else _add(session, item, storage.now()).id
        repo.advance_checkpoint(session, mailbox, uidvalidity, uid, storage.now())
    return raw_id


def _add(session: Session, item: Incoming, now: datetime, *, flush: bool = True) -> RawMessage:
    return repo.save_raw(
        session,
        item.raw,
        origin=item.origin,
        now=now,
        envelope_from=item.envelope_from,
        envelope_to=item.envelope_to,
        flush=flush,
    )
