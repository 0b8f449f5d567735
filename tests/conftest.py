"""Shared fixtures: databases (SQLite and PostgreSQL), a real SMTP sink, a running desk.

Store tests run on SQLite always and on PostgreSQL when it is reachable
($MAILDESK_TEST_PG_URL, default the local server). Tests that need an outside server or
tool skip with the reason when it is missing; with MAILDESK_CI=1 (set by .ci/run) a
missing one fails the run instead, so CI never skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import math
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import jinja2
import jinja2.bccache
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from maildesk import cli
from maildesk.app import App
from maildesk.config import Config, load_config
from maildesk.daemon import workers as daemon_workers
from maildesk.daemon.serve import Daemon
from maildesk.ingest import imap as imap_module
from maildesk.mail.compiled import bucket_key

T = TypeVar("T")

PG_URL = os.environ.get(
    "MAILDESK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
STRICT = os.environ.get("MAILDESK_CI") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip a test whose outside dependency is missing; under CI, fail instead."""
    if STRICT:
        pytest.fail(f"MAILDESK_CI=1 but {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """The path of a command-line tool a test needs (installed by .ci/run)."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed (apt-get install {name})")
    assert path is not None
    return path


# --- markers: `make test-quick` runs the fast, in-process tests on SQLite ---------------------
#
# slow: needs real servers or processes. Set here for tests/e2e and for tests that use a
# fixture starting one; a test that starts one itself carries @pytest.mark.slow, and
# serve_process refuses to run in a test without it.
# postgresql: the PostgreSQL case of a test on both databases (set here).

SLOW_DIRS = {"e2e"}
SLOW_FIXTURES = {"dovecot", "served", "private_postgres", "postfix"}
_current: list[pytest.Item] = []  # the test being run in this process


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        where = item.path.relative_to(here).parts
        if where[0] in SLOW_DIRS or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgresql)


def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[:] = [item]


def require_slow(what: str) -> None:
    """Fail a test that starts `what` (a process, a server) but is not marked slow."""
    if _current and _current[0].get_closest_marker("slow") is None:
        pytest.fail(f"{_current[0].nodeid} starts {what}: mark it @pytest.mark.slow")


# With MAILDESK_CI=1 nothing may skip, whatever skipped it: the run fails.
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if STRICT and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STRICT and _skipped:
        terminalreporter.write_line(
            f"MAILDESK_CI=1 but {len(_skipped)} test(s) skipped: " + ", ".join(_skipped[:10]),
            red=True,
        )


class Clock:
    """An App's clock that the test moves (`App.build(config, clock=clock)`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def pid_gone(pid: int) -> bool:
    """Whether no process has this pid (any more)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll fn until it returns something truthy; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)
        value = fn()
    return value


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    return _pg_available()


# --- databases: a migrated copy per test, cheaply ----------------------------------------------
#
# Migrating an empty database takes most of a second, and on PostgreSQL DROP DATABASE forces
# a checkpoint. So each session migrates one template per backend; a test gets a copy of the
# SQLite file, or on PostgreSQL the database the previous test had, emptied (a test that
# changed its schema gets a fresh copy of the template instead). A test marked
# `empty_database` gets a database with no schema at all, made and dropped as before.

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")

# What a test may change in a schema: tables, columns, constraints, indexes, functions,
# triggers, types, schemas, extensions, per-database settings, the migration revision.
_SCHEMA_FINGERPRINT = """
SELECT string_agg(item, E'\n' ORDER BY item) FROM (
    SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%'
    UNION ALL SELECT 'col ' || a.attrelid::regclass || '.' || a.attname || ' '
            || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' '
            || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL SELECT 'con ' || conrelid::regclass || ' ' || conname || ' '
            || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT 'fn ' || p.oid::regprocedure::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'trg ' || tgrelid::regclass || ' ' || tgname || ' ' || tgenabled
        FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
    UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
    UNION ALL SELECT 'ext ' || extname FROM pg_extension
    UNION ALL SELECT 'set ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL SELECT 'rev ' || version_num FROM alembic_version
) AS schema(item)
"""

# Every row goes (foreign keys are not checked while replicating) and every sequence starts
# again, so ids and refs come out as in a new database. The migrations store no rows.
_EMPTY_TABLES = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT quote_ident(tablename) FROM pg_tables
                WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
        EXECUTE 'DELETE FROM ' || name;
    END LOOP;
    PERFORM setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s;
END $$
"""


def _migrate(url: str) -> None:
    from maildesk.store.db import create_db_engine, upgrade

    engine = create_db_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


class PgDatabases:
    """The PostgreSQL databases of one test session (one xdist worker): a migrated template,
    and the database handed from test to test."""

    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.prefix = f"maildesk_test_{WORKER}_{uuid.uuid4().hex[:8]}"
        self.template = f"{self.prefix}_template"
        self.spare: str | None = None
        self._serial = 0
        self._create(self.template)
        _migrate(self.url(self.template))
        self.fingerprint = self._fingerprint(self.template)

    def url(self, name: str) -> str:
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def migrated(self) -> str:
        """A database at the newest schema with no rows in it."""
        name, self.spare = self.spare, None
        if name is None:
            self._serial += 1
            name = f"{self.prefix}_{self._serial}"
            self._create(name, template=self.template)
        return name

    def empty(self) -> str:
        self._serial += 1
        name = f"{self.prefix}_{self._serial}"
        self._create(name)
        return name

    def give_back(self, name: str) -> None:
        """Keep a migrated database for the next test if its schema is as migrated."""
        self._disconnect(name)
        if self.spare is None and self._fingerprint(name) == self.fingerprint:
            engine = create_engine(self.url(name), poolclass=NullPool)
            try:
                with engine.begin() as conn:
                    conn.execute(text("SET LOCAL session_replication_role = replica"))
                    conn.execute(text(_EMPTY_TABLES))
                self.spare = name
            except DBAPIError:  # not allowed to empty it (not a superuser): a new one next
                pass
            finally:
                engine.dispose()
        if self.spare != name:
            self.drop(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        for name in (self.spare, self.template):
            if name is not None:
                self.drop(name)
        self.admin.dispose()

    def _create(self, name: str, *, template: str | None = None) -> None:
        copy = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))

    def _disconnect(self, name: str) -> None:
        """End the sessions a test left open, and wait until they are gone (as
        DROP DATABASE ... WITH (FORCE) does)."""
        others = "FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
        with self.admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) {others}"), {"name": name})
            wait_until(
                lambda: conn.execute(text(f"SELECT count(*) = 0 {others}"), {"name": name}).scalar()
            )

    def _fingerprint(self, name: str) -> str | None:
        engine = create_engine(self.url(name), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return conn.execute(text(_SCHEMA_FINGERPRINT)).scalar()
        except DBAPIError:  # no alembic_version table any more, say: not as migrated
            return None
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def pg_databases(pg_reason: str | None) -> Iterator[PgDatabases | None]:
    if pg_reason:
        yield None
        return
    databases = PgDatabases(PG_URL)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file at the newest schema, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "maildesk.db"
    _migrate(f"sqlite:///{path}")
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the template is not one closed file: {leftovers}"
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    pg_reason: str | None,
    sqlite_template: Path,
) -> Iterator[str]:
    """A database on each backend, migrated to the newest schema and holding no rows (with
    the marker `empty_database`: no schema at all)."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if request.param == "sqlite":
        path = tmp_path / "maildesk.db"
        if not empty:
            shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    if pg_reason:
        skip_or_fail(pg_reason)
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    name = databases.empty() if empty else databases.migrated()
    try:
        yield databases.url(name)
    finally:
        if empty:
            databases.drop(name)
        else:
            databases.give_back(name)


# --- compiled mail templates, kept for the test process ---------------------------------------


class CompiledTemplates(jinja2.BytecodeCache):
    """Jinja's compiled code for each template source, kept in memory for the session.

    Every App compiles all mail templates to check them, and every in-process CLI run and
    every desk builds an App: compiled code kept in memory is faster still than the desk's
    own cache on disk (maildesk/mail/compiled.py, tested on its own), and its key is the same
    (template and environment options) plus the source: a changed template is compiled anew,
    and every check still renders every template."""

    def __init__(self) -> None:
        self._code: dict[str, Any] = {}

    def get_bucket(
        self, environment: jinja2.Environment, name: str, filename: str | None, source: str
    ) -> jinja2.bccache.Bucket:
        key = bucket_key(environment, name, filename) + self.get_source_checksum(source)
        bucket = jinja2.bccache.Bucket(environment, key, "")
        bucket.code = self._code.get(key)
        return bucket

    def set_bucket(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.code


@pytest.fixture(scope="session", autouse=True)
def compiled_templates() -> Iterator[CompiledTemplates]:
    """Every Jinja environment the tests make shares one CompiledTemplates (in place of
    the desk's cache on disk)."""
    cache = CompiledTemplates()
    original = jinja2.Environment.__init__

    def init(self: jinja2.Environment, *args: Any, **kwargs: Any) -> None:
        kwargs["bytecode_cache"] = cache
        original(self, *args, **kwargs)

    with mock.patch.object(jinja2.Environment, "__init__", init):
        yield cache


# --- a real SMTP server that catches what maildesk sends ------------------------------------


@dataclass
class Sink:
    """Messages received by the sink; `replies` maps RCPT addresses to forced answers."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)  # consumed one per DATA, then 250
    lock: threading.Lock = field(default_factory=threading.Lock)

    def parsed(self) -> list[EmailMessage]:
        with self.lock:
            return [
                message_from_bytes(raw, policy=policy.default)  # type: ignore[misc]
                for _, _, raw in self.messages
            ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        wait_until(lambda: len(self.messages) >= count, timeout)
        return self.parsed()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.parsed() if address in str(m["To"])]


class _SinkHandler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink.lock:
            if self.sink.data_replies:
                return self.sink.data_replies.pop(0)
            self.sink.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sink_server() -> Iterator[Sink]:
    """A real SMTP server on a free loopback port, keeping what it receives."""
    s = Sink(port=free_port())
    controller = Controller(_SinkHandler(s), hostname="127.0.0.1", port=s.port)
    controller.start()
    try:
        yield s
    finally:
        controller.stop()


@pytest.fixture
def sink() -> Iterator[Sink]:
    with sink_server() as s:
        yield s


# --- configs and a running desk ---------------------------------------------------------------

BASE_CONFIG = """
[desk]
name = "Test Desk"
ref_prefix = "MD"
address = "support@example.com"
reopen_window = "{reopen_window}"

[database]
url = "{db_url}"
busy_timeout = "{busy_timeout}"

[smtp]
listen = "127.0.0.1:0"
accept = ["support@example.com", "helpdesk@example.com"]
max_message_size = "{max_size}"

[outbound]
transport = "smtp"
host = "127.0.0.1"
port = {sink_port}
backoff = "1s"
max_attempts = 3

[[agents]]
email = "alice@example.com"
name = "Alice"
queues = ["it"]

[[agents]]
email = "bob@example.com"
name = "Bob"
queues = ["infra"]

[[queues]]
name = "it"
default = true

[[queues]]
name = "infra"

[[rules]]
name = "outages are P1 for infra"
match = {{ subject = "(?i)outage|down" }}
set = {{ queue = "infra", priority = "P1", type = "incident" }}
"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(
        db_url: str,
        sink_port: int = 1,
        *,
        extra: str = "",
        reopen_window: str = "14d",
        max_size: str = "1MB",
        busy_timeout: str = "10s",
    ) -> Path:
        path = tmp_path / "maildesk.toml"
        body = BASE_CONFIG.format(
            db_url=db_url,
            sink_port=sink_port,
            reopen_window=reopen_window,
            max_size=max_size,
            busy_timeout=busy_timeout,
        )
        path.write_text(body + textwrap.dedent(extra), encoding="utf-8")
        return path

    return write


@dataclass
class Desk:
    """A running maildesk (daemon in a background thread) plus helpers to use it."""

    config_path: Path
    app: App
    daemon: Daemon
    sink: Sink

    @property
    def port(self) -> int:
        assert self.daemon.port is not None
        return self.daemon.port

    @property
    def config(self) -> Config:
        return self.app.config

    def send(
        self,
        msg: EmailMessage | bytes,
        *,
        to: list[str] | None = None,
        mail_from: str = "someone@example.org",
    ) -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            if isinstance(msg, bytes):
                return smtp.sendmail(mail_from, to or ["support@example.com"], msg)
            return smtp.send_message(msg, to_addrs=to)

    def cli(self, *args: str) -> tuple[int, str]:
        """A command against the desk; the desk runs in this process, and what its threads
        cached meanwhile (an IMAP watcher's OAuth2 token) stays."""
        return run_cli(*args, "--config", str(self.config_path), keep_caches=True)

    def json(self, *args: str) -> Any:
        code, out = self.cli(*args, "--json")
        assert code == 0, out
        return json.loads(out)

    def tickets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json("tickets", "--all")
        return result

    def ticket(self, ref: str | int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("ticket", "show", str(ref))
        return result

    def wait_tickets(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        # Wait on a look at the store (cheap), then take the list from the CLI.
        wait_until(lambda: self.count_of("tickets") >= count, timeout)
        return wait_until(lambda: _at_least(self.tickets(), count), timeout)

    def count_of(self, table: str, where: str = "") -> float:
        """Rows in a table of the desk's store, read without the CLI, for a cheap wait before
        the CLI is asked; infinity if the store cannot say (the CLI will)."""
        from sqlalchemy import text

        from maildesk.store.db import transaction

        try:
            with transaction(self.app.sessions, readonly=True) as s:
                return int(s.scalar(text(f"SELECT count(*) FROM {table} {where}")) or 0)
        except Exception:
            return math.inf

    def raw_statuses(self) -> list[str]:
        from sqlalchemy import select

        from maildesk.store.models import RawMessage

        with self.app.sessions() as s:
            return list(s.scalars(select(RawMessage.status).order_by(RawMessage.id)))

    def raw_of(self, message_id: str) -> bytes:
        """The raw bytes stored for an inbound message."""
        from sqlalchemy import select

        from maildesk.store.models import Message, RawMessage

        with self.app.sessions() as s:
            stmt = (
                select(RawMessage.raw)
                .select_from(RawMessage)
                .join(Message, Message.raw_id == RawMessage.id)
                .where(Message.message_id == message_id)
            )
            return bytes(s.scalars(stmt).one())

    def wait_processed(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until `count` raw messages have left 'pending'."""

        def done() -> list[str] | None:
            statuses = self.raw_statuses()
            return statuses if len(statuses) >= count and "pending" not in statuses else None

        return wait_until(done, timeout)


def _at_least(items: list[T], count: int) -> list[T] | None:
    return items if len(items) >= count else None


@dataclass
class Ran:
    """What a `maildesk` command did: its exit code and what it wrote (as a process's
    CompletedProcess says it, text=True)."""

    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes = b""  # stdout as written, for commands that write raw mail


# The loggers `maildesk.cli.main` sets levels on, and the signals a command may handle.
_CLI_LOGGERS = ("", "mail.log", "alembic", "apscheduler", "mailparser", "tnefparse")
_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGPIPE", "SIGUSR1")
)


class _OtherThreads(logging.Handler):
    """The root logger's handler while a command runs in-process: the lines of other
    threads (a desk running in the test) go on to the handlers the test process had."""

    def __init__(self, handlers: list[logging.Handler], caller: int) -> None:
        super().__init__()
        self.handlers, self.caller = handlers, caller

    def handle(self, record: logging.LogRecord) -> bool:
        if record.thread != self.caller:
            for handler in self.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
        return True


def _own_thread_logging(caller: int) -> Callable[..., None]:
    """logging.basicConfig as it acts in a new process, for a command run in-process: the
    command's handler (writing to its stderr) takes the lines of its own thread."""

    def basic_config(
        *, level: int = logging.WARNING, handlers: tuple[logging.Handler, ...] = (), **_: Any
    ) -> None:
        root = logging.getLogger()
        root.setLevel(level)
        for handler in handlers:
            handler.addFilter(lambda record: record.thread == caller)
            root.addHandler(handler)

    return basic_config


def run_maildesk(
    *args: str,
    stdin: bytes = b"",
    env: Mapping[str, str | None] | None = None,
    cwd: Path | str | None = None,
    keep_caches: bool = False,
) -> Ran:
    """Run `maildesk ARGS` in this process, through the entry point `maildesk.cli.main`, as
    the console script would: stdin from `stdin`, stdout and stderr captured (with their
    byte buffers), `env` on top of os.environ (a value of None unsets), in `cwd`. Whatever
    the command changed of the process is put back afterwards: logging's handlers and
    levels, signal handlers, os.environ, the working directory, the module-level caches
    (knowledge bases, OAuth2 tokens; `keep_caches`: those stay, as in one long-lived
    process). Exit code, stdout and stderr are what a process would
    give; a command that needs a process of its own (`serve`, an import made to fail) runs
    as one instead."""
    from maildesk.kb import index as kb_index
    from maildesk.mail import oauth2

    out, err = io.BytesIO(), io.BytesIO()
    streams = {
        "stdin": io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"),
        "stdout": io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        "stderr": io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    }
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in _CLI_LOGGERS}
    signals = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    caches = [
        (kb_index._cache, dict(kb_index._cache)),
        (oauth2._providers, dict(oauth2._providers)),
    ]
    if keep_caches:
        caches = []
    cwd_before = os.getcwd()
    caller = threading.get_ident()
    # A new list, never the old one changed in place: a desk thread logging meanwhile goes
    # on through the list it started with (changed under it, a line reached its handlers
    # twice, once directly and once through _OtherThreads).
    root.handlers = [_OtherThreads(handlers, caller)]
    try:
        with (
            mock.patch.dict(os.environ),
            mock.patch.multiple(sys, **streams),
            mock.patch.object(logging, "basicConfig", _own_thread_logging(caller)),
        ):
            for name, value in (env or {}).items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            if cwd is not None:
                os.chdir(cwd)
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse: usage errors, --help, --version
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os.chdir(cwd_before)
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for sig, handler in signals.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        for cache, before in caches:
            cache.clear()
            cache.update(before)
    written = out.getvalue()
    return Ran(
        code,
        written.decode("utf-8", "replace"),
        err.getvalue().decode("utf-8", "replace"),
        written,
    )


def run_cli(*args: str, keep_caches: bool = False) -> tuple[int, str]:
    """Run the maildesk command in-process (run_maildesk); return (exit code, stdout + stderr)."""
    ran = run_maildesk(*args, keep_caches=keep_caches)
    return ran.returncode, ran.stdout + ran.stderr


# How often an idle daemon looks for work it was not woken for: mail stored or retried by
# another process (`deliver`, `quarantine retry`), notifications queued by one (`ticket
# reply`, `outbox retry`), a database back after an outage, a changed config file; and the
# longest an IMAP watcher waits before it connects again. In production these are seconds
# (minutes) apart; a test waits for each, so its desk looks often.
QUICK_SWEEPS = {"IDLE_POLL": 0.1, "MAX_SEND_WAIT": 0.1, "STORE_RETRY": 0.2, "CONFIG_WATCH": 0.1}
QUICK_RECONNECT = {"MAX_BACKOFF": 1.0}


@contextlib.contextmanager
def running_desk(config_path: Path, sink: Sink, **app_kwargs: Any) -> Iterator[Desk]:
    with (
        mock.patch.multiple(daemon_workers, **QUICK_SWEEPS),
        mock.patch.multiple(imap_module, **QUICK_RECONNECT),
        _running_desk(config_path, sink, **app_kwargs) as desk,
    ):
        yield desk


@contextlib.contextmanager
def _running_desk(config_path: Path, sink: Sink, **app_kwargs: Any) -> Iterator[Desk]:
    app = App.build(load_config(config_path), **app_kwargs)
    daemon = Daemon(app)
    thread = threading.Thread(
        target=lambda: asyncio.run(daemon.run(install_signals=False)), daemon=True
    )
    thread.start()
    try:
        assert daemon.ready.wait(10), "daemon did not start"
        yield Desk(config_path, app, daemon, sink)
    finally:
        daemon.request_stop()
        thread.join(15)
        app.close()
        assert not thread.is_alive(), "daemon did not stop"


@pytest.fixture
def desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    """A running desk on each database backend, sending notifications to the sink."""
    with running_desk(write_config(db_url, sink.port), sink) as d:
        yield d


STARTUP_DEADLINE = 30.0


@contextlib.contextmanager
def serve_process(config: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`maildesk serve` as a real process, ready to take mail; killed if a test leaves it."""
    require_slow("`maildesk serve`")
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maildesk", "serve", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        # A process's start-up (imports, migrations check) is seconds on a busy machine; the
        # deadline only bounds a daemon that never comes up.
        wait_until(
            lambda: b"listening on" in log_path.read_bytes() or proc.poll() is not None,
            timeout=STARTUP_DEADLINE,
        )
        assert proc.poll() is None, log_path.read_text()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def mail(
    subject: str = "Printer on fire",
    body: str = "Help, it is burning.",
    *,
    sender: str = "Carol Customer <carol@example.org>",
    to: str = "support@example.com",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A plain message as a mail client would send it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@client.example.org>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


@contextlib.contextmanager
def listener_thread(
    handler_for: Callable[[asyncio.AbstractEventLoop], Any], **options: Any
) -> Iterator[int]:
    """maildesk's SMTP listener in an event loop of its own (in a thread); yields its port.

    `handler_for(loop)` builds the IngestHandler; `options` go to start_smtp_server."""
    from maildesk.ingest.smtp import start_smtp_server

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    options.setdefault("max_message_size", 1_000_000)
    server = asyncio.run_coroutine_threadsafe(
        start_smtp_server(handler_for(loop), "127.0.0.1", 0, hostname="test", **options), loop
    ).result(10)

    async def shutdown() -> None:
        server.close()
        await server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
