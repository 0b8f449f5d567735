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
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from maildesk import cli
from maildesk.app import App
from maildesk.config import Config, load_config
from maildesk.daemon import Daemon

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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_reason: str | None) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'maildesk.db'}"
        return
    if pg_reason:
        skip_or_fail(pg_reason)
    name = f"maildesk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink(port=free_port())
    controller = Controller(_SinkHandler(s), hostname="127.0.0.1", port=s.port)
    controller.start()
    try:
        yield s
    finally:
        controller.stop()


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
        return run_cli(*args, "--config", str(self.config_path))

    def json(self, *args: str) -> Any:
        code, out = self.cli(*args, "--json")
        assert code == 0, out
        return json.loads(out)

    def tickets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json("tickets")
        return result

    def ticket(self, ref: str | int) -> dict[str, Any]:
        result: dict[str, Any] = self.json("ticket", "show", str(ref))
        return result

    def wait_tickets(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return wait_until(lambda: _at_least(self.tickets(), count), timeout)

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


def run_cli(*args: str) -> tuple[int, str]:
    """Run the maildesk command in-process; return (exit code, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


@contextlib.contextmanager
def running_desk(config_path: Path, sink: Sink, **app_kwargs: Any) -> Iterator[Desk]:
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


@contextlib.contextmanager
def serve_process(config: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`maildesk serve` as a real process, ready to take mail; killed if a test leaves it."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maildesk", "serve", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: b"listening on" in log_path.read_bytes() or proc.poll() is not None)
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
