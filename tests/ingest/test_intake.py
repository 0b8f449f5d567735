"""Intake keeps going whatever clients and the database do.

A client that resets its connection while its DATA waits for the group commit, a database
that hangs instead of refusing, two daemons migrating an empty database at once: the
daemon keeps answering (250 or, in time, 451) and nothing it answered 250 for is lost.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import smtplib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from maildesk import pipeline
from maildesk.ingest import inbox
from maildesk.store.db import head_revision, upgrade
from maildesk.store.models import RawMessage
from maildesk.store.spool import open_spool
from tests.conftest import Desk, Sink, mail, run_cli, running_desk, wait_until


def _big_message(size: int = 200_000) -> bytes:
    body = ("x" * 76 + "\r\n") * (size // 78)
    return (
        f"From: Carol <carol@example.org>\r\nTo: support@example.com\r\n"
        f"Subject: big {uuid.uuid4().hex}\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        f"\r\n{body}"
    ).encode()


def _expect(sock: socket.socket, code: bytes) -> bytes:
    """Read one (possibly multi-line) SMTP reply; it must start with code."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed, waiting for {code!r} (got {data!r})"
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and any(len(line) > 3 and line[3:4] == b" " for line in lines[:-1]):
            break
    assert data.startswith(code), data
    return data


def _reset_after_dot(
    port: int, raw: bytes, *, mid_data: bool = False, patience: float = 0.0
) -> None:
    """Send a message, then reset the connection (RST) right after the final dot, or
    after waiting `patience` seconds for a reply that must not have come yet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        _expect(sock, b"220")
        sock.sendall(b"EHLO reset.example.org\r\n")
        _expect(sock, b"250")
        sock.sendall(b"MAIL FROM:<carol@example.org>\r\n")
        _expect(sock, b"250")
        sock.sendall(b"RCPT TO:<support@example.com>\r\n")
        _expect(sock, b"250")
        sock.sendall(b"DATA\r\n")
        _expect(sock, b"354")
        sock.sendall(raw[: len(raw) // 2] if mid_data else raw + b"\r\n.\r\n")
        if patience:
            sock.settimeout(patience)
            with pytest.raises(TimeoutError):
                sock.recv(4096)  # the store is held up: no answer yet
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _send(port: int, timeout: float = 30) -> tuple[int, bytes, float]:
    """One normal client: the DATA reply code and text, and how long it took."""
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as smtp:
        smtp.ehlo()
        smtp.mail("carol@example.org")
        smtp.rcpt("support@example.com")
        code, reply = smtp.data(mail(subject=f"normal {uuid.uuid4().hex}").as_bytes())
    return code, reply, time.monotonic() - started


@contextlib.contextmanager
def _write_lock(url: str) -> Iterator[None]:
    """Hold the lock a commit of raw messages needs, from another connection: on SQLite
    the spool's (SMTP mail is committed there), on PostgreSQL the raw_messages table's."""
    spool = open_spool(url)
    if spool is not None:
        spool.ready()
        spool.close()
        url = f"sqlite:///{spool.path}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")
                conn.exec_driver_sql("LOCK TABLE raw_messages IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                conn.exec_driver_sql("ROLLBACK")
    finally:
        engine.dispose()


def test_clients_resetting_after_the_dot_do_not_stop_intake(desk: Desk) -> None:
    for _ in range(4):
        _reset_after_dot(desk.port, _big_message())
        _reset_after_dot(desk.port, _big_message(), mid_data=True)
    # Impatient clients: their DATA waits for the group commit (held up by a lock), and
    # they reset the connection before the answer comes.
    with _write_lock(desk.config.database.url):
        for _ in range(3):
            _reset_after_dot(desk.port, _big_message(), patience=0.3)
    code, reply, _ = _send(desk.port, timeout=15)
    assert code == 250, reply
    # Whatever a reset client's message became, it was stored whole and processed, or not
    # stored at all: nothing is left pending.
    statuses = desk.wait_processed(1)
    assert set(statuses) <= {"processed"}, statuses


def _with_smtp(config: Path, line: str) -> Path:
    """Add a line to the [smtp] section of a config written by write_config."""
    text_ = config.read_text(encoding="utf-8")
    config.write_text(text_.replace("[smtp]\n", f"[smtp]\n{line}\n", 1), encoding="utf-8")
    return config


def _status(config: Path) -> dict[str, object]:
    code, out = run_cli("status", "--json", "--config", str(config))
    assert code == 0, out
    result: dict[str, object] = json.loads(out)
    return result


def test_a_lock_held_past_the_deadline_gets_451_in_time_then_250(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = _with_smtp(write_config(db_url, sink.port), 'commit_timeout = "2s"')
    with running_desk(config, sink) as desk:
        with _write_lock(db_url):
            code, reply, took = _send(desk.port)
            assert code == 451, reply
            assert took < 5, f"451 after {took:.1f}s, the deadline is 2s"
        code, reply, _ = _send(desk.port)
        assert code == 250, reply
        # The first message may have been committed once the lock went (its sender would
        # send it again: a duplicate); either way nothing stays pending.
        statuses = desk.wait_processed(1)
        assert "pending" not in statuses


class FreezingProxy:
    """A loopback TCP proxy to a server; freeze() stops forwarding (sockets stay open and
    nothing more is read or passed on), thaw() lets everything through again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self.flowing.wait()
                data = src.recv(65536)
                if not data or self.closed:
                    break
                self.flowing.wait()  # frozen while reading: hold the data back
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy() -> Iterator[FreezingProxy]:
    p = FreezingProxy(("127.0.0.1", 5432))
    try:
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_frozen_database_link_gets_451_in_time_then_250(
    db_url: str, sink: Sink, write_config: Callable[..., Path], proxy: FreezingProxy
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    assert (url.host, url.port or 5432) == ("127.0.0.1", 5432), db_url
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    config = _with_smtp(write_config(proxied, sink.port), 'commit_timeout = "2s"')
    with running_desk(config, sink) as desk:
        code, reply, _ = _send(desk.port)
        assert code == 250, reply
        desk.wait_processed(1)
        proxy.freeze()
        code, reply, took = _send(desk.port)
        assert code == 451, reply
        assert took < 5, f"451 after {took:.1f}s, the deadline is 2s"
        proxy.thaw()
        code, reply, _ = _send(desk.port)
        assert code == 250, reply
        statuses = desk.wait_processed(2, timeout=20)
        assert "pending" not in statuses


class WorkerKilled(BaseException):
    """Something no `except Exception` catches: the worker task dies of it."""


def test_a_dead_worker_is_restarted_logged_and_counted(
    db_url: str,
    sink: Sink,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = pipeline.process_pending
    kills = [WorkerKilled("killed by the test")]

    def dies_once(*args: object, **kwargs: object) -> object:
        if kills:
            raise kills.pop()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "process_pending", dies_once)
    config = write_config(db_url, sink.port)
    with running_desk(config, sink) as desk:
        desk.send(mail())
        desk.wait_processed(1)

        def restarted() -> bool:
            daemons = _status(config)["daemons"]
            assert isinstance(daemons, list)
            return any(d["workers"]["pipeline"]["restarts"] == 1 for d in daemons)

        wait_until(restarted)
        assert any(
            "worker pipeline died" in r.getMessage() and r.exc_info is not None
            for r in caplog.records
        )
    assert _status(config)["daemons"] == []  # a stopped daemon removes its heartbeat


def test_a_stopped_group_commit_writer_is_restarted(desk: Desk) -> None:
    writer = desk.daemon.writer
    assert writer is not None and writer.alive
    writer.close()  # the writer thread ends, as if it had died
    # The supervisor starts it again (it may have done so already); mail is then committed.
    wait_until(lambda: desk.daemon.workers["ingest-writer"].restarts == 1 and writer.alive)
    code, reply, _ = _send(desk.port, timeout=15)
    assert code == 250, reply
    assert desk.daemon.workers["ingest-writer"].restarts == 1


def test_status_reports_backlog_quarantine_and_outbox(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    from maildesk.app import App
    from maildesk.config import load_config

    config = write_config(db_url)
    code, out = run_cli("status", "--config", str(config))
    assert code == 0, out
    assert "0 pending" in out and "none running" in out
    app = App.build(load_config(config))
    try:
        first = inbox.store_raw(app, mail().as_bytes(), origin="smtp")
        inbox.store_raw(app, mail().as_bytes(), origin="smtp")
        with app.sessions.begin() as session:
            row = session.get_one(RawMessage, first)
            row.status, row.reason = "quarantined", "test"
    finally:
        app.close()
    report = _status(config)
    assert report["pending"] == 1
    assert report["quarantined"] == 1
    assert isinstance(report["oldest_pending_seconds"], float)
    assert report["outbox"] == {"queued": 0, "sent": 0, "failed": 0}


def _init_after(barrier: object, config: str) -> None:
    import sys

    from maildesk import cli

    barrier.wait()  # type: ignore[attr-defined]
    sys.exit(cli.main(["init", "--config", config]))


@pytest.mark.slow
@pytest.mark.empty_database
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_daemons_starting_together_on_an_empty_database_both_migrate(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    config = str(write_config(db_url))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_init_after, args=(barrier, config)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert inspect(conn).has_table("tickets")
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(head_revision(),)]
        upgrade(engine)  # and a later start finds it at head
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("section", "line", "place"),
    [
        ("[smtp]", 'commit_timeout = "0s"', "[smtp] key 'commit_timeout'"),
        ("[database]", 'connect_timeout = "soon"', "[database] key 'connect_timeout'"),
    ],
)
def test_timeouts_are_checked(
    tmp_path: Path, write_config: Callable[..., Path], section: str, line: str, place: str
) -> None:
    from maildesk.config import load_config
    from maildesk.errors import ConfigError

    config = write_config(f"sqlite:///{tmp_path / 'm.db'}")
    body = config.read_text(encoding="utf-8")
    config.write_text(body.replace(f"{section}\n", f"{section}\n{line}\n", 1), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(config) in str(caught.value) and place in str(caught.value)
