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
from sqlalchemy import create_engine, inspect, select, text

from maildesk import pipeline
from maildesk.store.db import create_db_engine, head_revision, upgrade
from maildesk.store.models import RawMessage
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
    """Hold the lock a commit of raw messages needs, from another connection."""
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
