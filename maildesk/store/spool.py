"""The spool: on SQLite, mail accepted over SMTP is committed to a database file of its own
(`maildesk.db` -> `maildesk-spool.db`), so the 250 waits for that file's commit and disk
sync only, never for the ticket database's one write lock, which the pipeline and the
outbox sender hold in turn.

The pipeline takes spooled rows into the ticket database (`admit`, in the transaction that
processes them) and then forgets them here. The two files commit separately, so a crash
may fall between the two commits: each raw message taken from the spool records the spool
row's key (`raw_messages.spool_key`, unique), and a spool row whose key the ticket database
already has is forgotten, not taken twice. The key carries the spool's generation (made
with the file), so a spool file removed and made again never reuses a key.

PostgreSQL has no spool: its row locks already let the SMTP commit and the pipeline write
at the same time.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from maildesk.store.db import create_db_engine, session_factory, transaction
from maildesk.store.models import RawBody, RawMessage, UtcDateTime
from maildesk.terms import RawStatus

log = logging.getLogger(__name__)

metadata = MetaData()
SPOOLED = Table(
    "spooled",
    metadata,
    Column("id", Integer, primary_key=True),  # AUTOINCREMENT: an id is never used twice
    Column("received_at", UtcDateTime(), nullable=False),
    Column("origin", String(32), nullable=False),
    Column("envelope_from", String(512)),
    Column("envelope_to", JSON, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    sqlite_autoincrement=True,
)
GENERATION = Table("spool_generation", metadata, Column("generation", String(32), nullable=False))


@dataclass(frozen=True)
class Arrival:
    """A message to spool, as an ingest edge received it."""

    raw: bytes
    origin: str
    envelope_from: str | None = None
    envelope_to: Sequence[str] = ()


@dataclass(frozen=True)
class Spooled:
    """A spooled message waiting for the pipeline."""

    id: int
    key: str  # what the ticket database records of it (raw_messages.spool_key)
    received_at: datetime
    origin: str
    envelope_from: str | None
    envelope_to: list[str]
    raw: bytes


def spool_path(database_url: str) -> Path | None:
    """The spool file beside a SQLite database file (None: no spool for this URL)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    db = Path(url.database)
    return db.with_name(f"{db.stem}-spool{db.suffix or '.db'}")


def open_spool(database_url: str, *, busy_timeout: float = 10.0) -> Spool | None:
    """The spool for this database (None on PostgreSQL or an in-memory SQLite)."""
    path = spool_path(database_url)
    if path is None:
        return None
    engine = create_db_engine(f"sqlite:///{path}", busy_timeout=busy_timeout)

    @event.listens_for(engine, "connect")
    def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
        # The commit that crosses SQLite's checkpoint threshold would copy the log into the
        # file (two more disk syncs) while an SMTP client waits for its 250: forget()
        # checkpoints instead, off the ingest path.
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    return Spool(path, engine, session_factory(engine))


CHECKPOINT_BYTES = 2 << 20  # forget() checkpoints after forgetting this much mail


@dataclass
class Spool:
    """One spool file: add() for the ingest edge, waiting()/forget() for the pipeline."""

    path: Path
    engine: Engine
    sessions: sessionmaker[Session]
    _generation: str | None = field(default=None, repr=False)
    _logged: int = field(default=0, repr=False)

    def add(self, arrivals: Sequence[Arrival], now: datetime) -> list[int]:
        """Commit messages to the spool (one transaction, one disk sync); their spool ids.
        Someone waits for each (an SMTP client): this write goes ahead of the others."""
        self.ready()
        rows = [_row(item, now) for item in arrivals]
        with transaction(self.sessions, urgent=True) as session:
            stmt = insert(SPOOLED).returning(SPOOLED.c.id, sort_by_parameter_order=True)
            return [int(i) for i in session.scalars(stmt, rows)]

    def waiting(self, limit: int = 100) -> list[Spooled]:
        """Spooled messages, oldest first (some may be in the ticket database already)."""
        if not self._exists():
            return []
        generation = self.ready()
        stmt = select(SPOOLED).order_by(SPOOLED.c.id).limit(limit)
        with transaction(self.sessions, readonly=True) as session:
            return [_spooled(generation, row) for row in session.execute(stmt)]

    def forget(self, spooled: Sequence[Spooled]) -> None:
        """Remove rows the ticket database has taken. No disk sync of its own: a row that
        comes back after a power loss is recognised by its key and forgotten again."""
        if not spooled:
            return
        with transaction(self.sessions, durable=False) as session:
            session.execute(delete(SPOOLED).where(SPOOLED.c.id.in_([s.id for s in spooled])))
        # What went through the log since the last checkpoint, about: rows in, rows out.
        self._logged += sum(len(s.raw) for s in spooled)
        if self._logged >= CHECKPOINT_BYTES:
            self._logged = 0
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the log into the file, so that it is reused from its start once a checkpoint
        catches up (the spool never checkpoints by itself, see open_spool). PASSIVE takes no
        lock that the ingest's commit would wait for; RESTART would. On the driver's own
        connection, outside any transaction: in one (SQLAlchemy begins one for any
        statement) SQLite refuses ("database table is locked"). A checkpoint that fails
        only leaves the log longer until the next."""
        conn = self.engine.raw_connection()
        try:
            conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            log.warning("spool: checkpoint failed (tried again later): %s", exc)
        finally:
            conn.close()

    def backlog(self) -> tuple[int, datetime | None]:
        """How many messages the spool holds, and when the oldest was received."""
        if not self._exists():
            return 0, None
        self.ready()
        stmt = select(func.count(), func.min(SPOOLED.c.received_at))
        with transaction(self.sessions, readonly=True) as session:
            count, oldest = session.execute(stmt).one()
        return int(count), oldest

    def close(self) -> None:
        self.engine.dispose()

    def _exists(self) -> bool:
        return self._generation is not None or self.path.exists()

    def ready(self) -> str:
        """Create the spool's tables (once per file) and return its generation."""
        if self._generation is None:
            with transaction(self.sessions, readonly=True) as session:  # made already?
                if inspect(session.connection()).has_table(GENERATION.name):
                    self._generation = session.scalar(select(GENERATION.c.generation))
        if self._generation is None:
            with transaction(self.sessions) as session:
                metadata.create_all(session.connection())
                generation = session.scalar(select(GENERATION.c.generation))
                if generation is None:
                    generation = secrets.token_hex(8)
                    session.execute(insert(GENERATION).values(generation=generation))
            self._generation = generation
        return self._generation


def _row(item: Arrival, now: datetime) -> dict[str, Any]:
    return {
        "received_at": now,
        "origin": item.origin,
        "envelope_from": item.envelope_from,
        "envelope_to": list(item.envelope_to),
        "raw": item.raw,
    }


def _spooled(generation: str, row: Any) -> Spooled:
    return Spooled(
        id=int(row.id),
        key=f"{generation}.{row.id}",
        received_at=row.received_at,
        origin=row.origin,
        envelope_from=row.envelope_from,
        envelope_to=list(row.envelope_to or []),
        raw=bytes(row.raw),
    )


def admit(session: Session, spooled: Sequence[Spooled]) -> dict[int, int]:
    """Take spooled messages into the ticket database (status pending), in the caller's
    transaction: spool id -> new raw message id. One whose key is there already (taken
    before a crash, or by another process) is left out."""
    if not spooled:
        return {}
    keys = [s.key for s in spooled]
    taken = set(session.scalars(select(RawMessage.spool_key).where(RawMessage.spool_key.in_(keys))))
    fresh = [s for s in spooled if s.key not in taken]
    if not fresh:
        return {}
    stmt = insert(RawMessage).returning(RawMessage.id, sort_by_parameter_order=True)
    ids = session.scalars(stmt, [_raw_row(s) for s in fresh]).all()
    bodies = [{"raw_id": raw_id, "raw": s.raw} for s, raw_id in zip(fresh, ids, strict=True)]
    session.execute(insert(RawBody), bodies)
    return {s.id: int(raw_id) for s, raw_id in zip(fresh, ids, strict=True)}


def _raw_row(s: Spooled) -> dict[str, Any]:
    return {
        "received_at": s.received_at,
        "origin": s.origin,
        "envelope_from": s.envelope_from,
        "envelope_to": s.envelope_to,
        "size": len(s.raw),
        "sha256": hashlib.sha256(s.raw).hexdigest(),
        "status": RawStatus.PENDING,
        "spool_key": s.key,
    }
