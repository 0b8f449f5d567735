"""Engine, sessions and schema upgrades. The only module that knows database specifics."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Select, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.errors import MaildeskError, StoreUnavailable
from maildesk.store.blobs import stream_blobs

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])


# PostgreSQL links that go quiet: TCP keepalives notice a dead peer when idle, and
# tcp_user_timeout a peer that stops acknowledging what was sent, so a blocked call fails
# (StoreUnavailable) instead of waiting for the kernel's retransmissions (15+ minutes).
PG_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}
MIGRATION_LOCK = 0x6D61696C6465736B  # pg_advisory_lock key for schema upgrades ("maildesk")


def create_db_engine(
    url: str, *, busy_timeout: float = 10.0, connect_timeout: float = 10.0
) -> Engine:
    """An engine for url; SQLite gets WAL, full fsync on commit and a busy timeout;
    PostgreSQL a connect timeout, TCP keepalives and a lock timeout of busy_timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            connect_args = {
                "connect_timeout": max(1, round(connect_timeout)),
                **PG_KEEPALIVES,
                "options": f"-c lock_timeout={int(busy_timeout * 1000)}",
            }
        try:
            return create_engine(
                url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args
            )
        except (ImportError, NoSuchModuleError) as exc:
            raise StoreUnavailable(_missing_driver(parsed, exc)) from None
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (documented recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before SMTP answers 250, even across power loss.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers queue instead of
        # deadlocking; a read-only transaction takes no lock (WAL readers never wait).
        options = conn.get_execution_options()
        readonly = options.get(READONLY, False)
        if not readonly:
            _sqlite_sync(conn, durable=options.get(DURABLE, True))
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _sqlite_sync(conn: Any, *, durable: bool) -> None:
    """FULL (the commit is on disk when it returns) unless the write need not be: then
    NORMAL, which in WAL mode writes the commit without a disk sync. Such a commit survives
    a crash of the process; only a power loss before the next durable commit (whose sync
    covers everything written before it) can take it back, so it is for writes that are
    redone safely (a spool row marked taken, a notification marked sent)."""
    info = conn.connection.info
    level = "FULL" if durable else "NORMAL"
    if info.get("synchronous", "FULL") != level:  # the connect pragma set FULL
        conn.exec_driver_sql(f"PRAGMA synchronous={level}")
        info["synchronous"] = level


def _missing_driver(url: URL, exc: Exception) -> str:
    """What to install for a database URL whose driver cannot be loaded."""
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        return f"the PostgreSQL driver is not installed ({exc}): install maildesk[postgres]"
    if url.get_backend_name() == "postgresql":
        return (
            f"the driver {url.get_driver_name()!r} is not installed ({exc}): "
            "write the URL as postgresql+psycopg://... and install maildesk[postgres]"
        )
    return f"no database driver for {url.drivername!r} ({exc})"


# PREBUILT: a statement run for every message is built once, at import, with bindparam()
# for what changes. Building a select() and working out its cache key each time cost about
# 0.25 ms of SQLAlchemy's time per call, several times what SQLite takes to answer it
# (bench/README.md, 2026-12-03).


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def for_update(stmt: S, session: Session, *, skip_locked: bool = False, of: Any = None) -> S:
    """stmt locking the rows it selects on PostgreSQL (FOR UPDATE, with SKIP LOCKED so that
    several daemons share the work); unchanged on SQLite, which serialises writers anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return stmt
    return stmt.with_for_update(skip_locked=skip_locked, of=of)


class WriteGate:
    """One SQLite writer at a time within this process: urgent ones first, the others in
    the order they came, each woken the moment the gate is free.

    SQLite has one write lock, and a writer that finds it taken sleeps and polls (its busy
    handler backs off up to 100 ms), so a steady writer such as the pipeline starves the
    others. Writers of one process queue here instead; storing mail that an SMTP client is
    waiting for is urgent and goes before the pipeline's next batch. The others take turns:
    a writer that lets go and comes straight back (the pipeline, batch after batch) goes
    behind whoever waited meanwhile (the outbox sender), however soon its thread runs again.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._urgent_waiting = 0
        self._queue: deque[int] = deque()  # the others waiting, in order

    @property
    def urgent_waiting(self) -> bool:
        """Someone urgent waits: a long writer should end its transaction soon."""
        return self._urgent_waiting > 0

    @contextmanager
    def hold(self, *, urgent: bool = False) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:  # nested: the database itself will say it is busy
            yield
            return
        with self._cond:
            self._wait_turn(me, urgent)
            self._owner = me
        try:
            yield
        finally:
            with self._cond:
                self._owner = None
                self._cond.notify_all()

    def _wait_turn(self, me: int, urgent: bool) -> None:
        """Wait (holding the condition) until the gate is this writer's."""
        if urgent:
            self._urgent_waiting += 1
        else:
            self._queue.append(me)
        try:
            while self._owner is not None or not (
                urgent or (not self._urgent_waiting and self._queue[0] == me)
            ):
                self._cond.wait()
        except BaseException:
            self._cond.notify_all()  # the next in line may be waiting for this one
            raise
        finally:
            if urgent:
                self._urgent_waiting -= 1
            else:
                self._queue.remove(me)


def write_gate(sessions: sessionmaker[Session]) -> WriteGate | None:
    gate = sessions.kw.get("info", {}).get("write_gate")
    return gate if isinstance(gate, WriteGate) else None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    info = {"write_gate": WriteGate()} if is_sqlite(engine) else {}
    factory = sessionmaker(engine, expire_on_commit=False, info=info)
    if is_sqlite(engine):
        stream_blobs(factory)
    return factory


READONLY = "maildesk_readonly"
DURABLE = "maildesk_durable"


@contextmanager
def transaction(
    sessions: sessionmaker[Session],
    *,
    readonly: bool = False,
    urgent: bool = False,
    durable: bool = True,
) -> Iterator[Session]:
    """One unit of work; database-unavailable errors surface as StoreUnavailable.

    `readonly`: the work only reads, so on SQLite it takes no write lock and waits for no
    writer (mail being accepted over SMTP never waits for a listing or a due-time check).
    `urgent`: someone is waiting for this write (an SMTP client): on SQLite it goes first.
    `durable` False: the commit makes no disk sync of its own (SQLite: see _sqlite_sync;
    PostgreSQL: synchronous_commit off); only for writes safe to redo after a power loss.
    """
    gate = None if readonly else write_gate(sessions)
    try:
        with gate.hold(urgent=urgent) if gate else nullcontext(), sessions.begin() as session:
            if readonly:
                session.connection(execution_options={READONLY: True})
            elif not durable:
                conn = session.connection(execution_options={DURABLE: False})
                if conn.dialect.name == "postgresql":  # the commit returns before its flush
                    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield session
    except OperationalError as exc:
        raise StoreUnavailable(str(exc.orig or exc).strip()) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(str(exc.orig or exc).strip()) from exc
        raise


def run_in_transaction(sessions: sessionmaker[Session], fn: Callable[[Session], T]) -> T:
    with transaction(sessions) as session:
        return fn(session)


def alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "maildesk.store:migrations")
    return cfg


def head_revision() -> str:
    """The newest migration's revision id (files are named after it: 0005_sla.py)."""
    versions = Path(__file__).parent / "migrations" / "versions"
    return max(p.name.partition("_")[0] for p in versions.glob("[0-9]*_*.py"))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to date (idempotent). A database already at the newest revision
    is recognised with one query, without loading Alembic (every CLI run does this)."""
    try:
        if revision == "head" and _stored_revision(engine) == head_revision():
            return
        from alembic import command

        cfg = alembic_config()
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                _upgrade_sqlite(conn, cfg, revision)
                return
            with conn.begin():
                # Two daemons (or `maildesk init`s) starting on an empty database would both
                # create the tables; the second waits here, then finds them in place.
                # Released at commit; SQLite's BEGIN IMMEDIATE already serialises this.
                conn.execute(text("SET LOCAL lock_timeout = 0"))  # migrations wait their turn
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                if revision == "head" and _revision_in(conn) == head_revision():
                    return
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise StoreUnavailable(str(exc.orig or exc).strip()) from exc


def _upgrade_sqlite(conn: Connection, cfg: Any, revision: str) -> None:
    """SQLite changes a table by copying it (Alembic's batch mode) and dropping the old one,
    which foreign keys from other tables' rows forbid: so the migrations run with foreign
    keys off (a pragma that only takes effect outside a transaction), and the whole result is
    checked before it commits. A violation rolls everything back."""
    from alembic import command

    driver = conn.connection.driver_connection
    assert driver is not None  # a live connection: the pragma goes outside any transaction
    pragma = driver.execute
    pragma("PRAGMA foreign_keys=OFF")
    try:
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise MaildeskError(f"schema upgrade would break foreign keys: {broken[:5]}")
    finally:
        pragma("PRAGMA foreign_keys=ON")


def _stored_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision_in(conn)


def _revision_in(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
