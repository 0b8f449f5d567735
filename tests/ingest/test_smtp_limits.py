"""No SMTP client locks the others out: per-address connection limits, an idle limit that
NOOPs do not reset, a junk-command limit, short command lines, a DATA phase that yields to
the event loop, and a data deadline that grows with the bytes received.

Real parts only: clients are raw sockets or smtplib, bound to different loopback addresses
(127.0.0.2, 127.0.0.3, ...) to act as different hosts. The lockout and memory tests run a
real `maildesk serve` process with its default limits and measure it from outside; the
mechanism tests run the listener in-process with small limits.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from maildesk.config import load_config
from maildesk.errors import ConfigError
from maildesk.ingest import smtp as smtp_listener
from maildesk.ingest.smtp import IngestHandler
from tests.conftest import free_port, listener_thread, serve_process, wait_until

ACCEPT = frozenset({"support@example.com"})
MESSAGE = b"From: probe@example.org\r\nSubject: probe\r\n\r\nhello\r\n"


class RawClient:
    """An SMTP client on a bare socket from a chosen loopback address."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 15) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
        )
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """The next complete reply (the last line of a multi-line one)."""
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed by the server (left: {self.buffer!r})")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            if not (len(text) >= 4 and text[3] == "-"):
                return text

    def command(self, line: bytes) -> str:
        self.send(line + b"\r\n")
        return self.reply()

    def closed_by_server(self, timeout: float) -> bool:
        """True once the server has closed the connection (read to EOF, with a deadline)."""
        self.sock.settimeout(timeout)
        try:
            while chunk := self.sock.recv(65536):
                self.buffer += chunk
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def close(self) -> None:
        self.sock.close()


@contextmanager
def clients(port: int, count: int, source: str) -> Iterator[list[RawClient]]:
    opened: list[RawClient] = []
    try:
        for _ in range(count):
            opened.append(RawClient(port, source))
        yield opened
    finally:
        for client in opened:
            client.close()


def greets(port: int, source: str) -> bool:
    client = RawClient(port, source)
    try:
        return client.reply().startswith("220")
    finally:
        client.close()


def probe(port: int, source: str = "127.0.0.3", timeout: float = 10.0) -> float:
    """Seconds for one small message, EHLO to QUIT, from `source`."""
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout, source_address=(source, 0)) as smtp:
        smtp.sendmail("probe@example.org", ["support@example.com"], MESSAGE)
    return time.monotonic() - started


# --- the listener in-process, with small limits --------------------------------------------


class Stored:
    """What the in-process listener stored (raw bytes), in order."""

    def __init__(self) -> None:
        self.raws: list[bytes] = []

    async def store(self, raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
        self.raws.append(raw)
        return len(self.raws)


@contextmanager
def listener(**limits: Any) -> Iterator[tuple[int, Stored]]:
    """The maildesk SMTP listener in its own event loop (in a thread)."""
    stored = Stored()
    handler = IngestHandler(stored.store, accept=lambda: ACCEPT)
    with listener_thread(lambda _loop: handler, **limits) as port:
        yield port, stored


def start_transaction(client: RawClient) -> None:
    assert client.reply().startswith("220")
    assert client.command(b"EHLO client.example.org").startswith("250")
    assert client.command(b"MAIL FROM:<a@example.org>").startswith("250")
    assert client.command(b"RCPT TO:<support@example.com>").startswith("250")
    assert client.command(b"DATA").startswith("354")


def test_defaults() -> None:
    assert smtp_listener.MAX_CONNECTIONS_PER_CLIENT == 20
    assert smtp_listener.PER_CLIENT_EXCEPTIONS == ("127.0.0.1", "::1")
    assert smtp_listener.MAX_JUNK_COMMANDS == 100
    assert smtp_listener.MIN_DATA_RATE == 1000
    assert smtp_listener.COMMAND_LINE_LIMIT == 2048


def test_connections_per_client_address_are_limited() -> None:
    with listener() as (port, _):
        limit = 20  # the default (test_defaults)
        with clients(port, limit + 5, "127.0.0.2") as crowd:
            greetings = [c.reply() for c in crowd]
            assert sum(g.startswith("220") for g in greetings) == limit, greetings
            refused = [c for c, g in zip(crowd, greetings, strict=True) if g.startswith("421")]
            assert len(refused) == 5 and all(c.closed_by_server(5) for c in refused)
            # Another address is served; the local MTA's address is not held to the limit.
            assert probe(port, "127.0.0.3") < 5
            with clients(port, limit + 5, "127.0.0.1") as local:
                assert all(c.reply().startswith("220") for c in local)
            crowd[0].close()
            wait_until(lambda: greets(port, "127.0.0.2"), 10)


def test_per_client_limit_and_exceptions_are_settable() -> None:
    limits = {"max_connections_per_client": 2, "per_client_exceptions": ()}
    with listener(**limits) as (port, _), clients(port, 3, "127.0.0.1") as crowd:
        assert [c.reply()[:3] for c in crowd] == ["220", "220", "421"]


def test_noops_do_not_keep_an_idle_session_open() -> None:
    with listener(timeout=1.0) as (port, _):
        client = RawClient(port, "127.0.0.2")
        try:
            assert client.reply().startswith("220")
            started = time.monotonic()
            replies = []
            with pytest.raises(ConnectionError):
                while time.monotonic() - started < 6:
                    for command in (b"NOOP", b"RSET", b"HELP", b"VRFY <x@example.com>", b"EHLO x"):
                        replies.append(client.command(command))
                        time.sleep(0.1)  # pacing the client, not waiting for the server
            assert replies[-1].startswith("421"), replies[-3:]
            assert 0.9 < time.monotonic() - started < 3
        finally:
            client.close()


def test_a_session_that_makes_progress_outlives_the_timeout() -> None:
    with listener(timeout=1.0) as (port, stored):
        client = RawClient(port, "127.0.0.2")
        try:
            assert client.reply().startswith("220")
            assert client.command(b"HELO client").startswith("250")
            for _ in range(4):  # 2.8 s in all, never 1 s without progress
                time.sleep(0.35)
                assert client.command(b"MAIL FROM:<a@example.org>").startswith("250")
                time.sleep(0.35)
                assert client.command(b"RCPT TO:<support@example.com>").startswith("250")
                assert client.command(b"DATA").startswith("354")
                assert client.command(MESSAGE + b".").startswith("250")
            assert len(stored.raws) == 4
        finally:
            client.close()


def test_junk_commands_are_limited_and_delivery_resets_the_count() -> None:
    with listener() as (port, stored):
        limit = 100  # the default (test_defaults)
        client = RawClient(port, "127.0.0.2")
        try:
            assert client.reply().startswith("220")
            client.send(b"EHLO junk\r\n" + b"NOOP\r\n" * (limit - 11))
            assert all(client.reply().startswith("250") for _ in range(limit - 10))
            client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n")
            client.send(MESSAGE + b".\r\n")
            assert [client.reply()[:3] for _ in range(4)] == ["250", "250", "354", "250"]
            assert len(stored.raws) == 1
            client.send(b"RSET\r\n" * (limit + 5))
            answers = [client.reply() for _ in range(limit)]
            assert all(a.startswith("250") for a in answers)
            assert client.reply().startswith("421")
            assert client.closed_by_server(5)
        finally:
            client.close()


def test_a_slow_link_delivers_past_the_timeout() -> None:
    with listener(timeout=1.0) as (port, stored):
        client = RawClient(port, "127.0.0.2")
        try:
            start_transaction(client)
            client.send(b"Subject: slow\r\n\r\n")
            line = b"x" * 398 + b"\r\n"
            for _ in range(12):  # 4 KB/s for 2.4 s; the floor is 1 KB/s
                client.send(line * 2)
                time.sleep(0.2)  # pacing the client, not waiting for the server
            assert client.command(b".").startswith("250")
            assert stored.raws[0].endswith(line)
        finally:
            client.close()


def test_a_trickle_below_the_minimum_data_rate_is_cut_off_with_421() -> None:
    with listener(timeout=1.0, min_data_rate=1000) as (port, stored):
        client = RawClient(port, "127.0.0.2")
        try:
            start_transaction(client)
            started = time.monotonic()
            with pytest.raises(OSError):
                while time.monotonic() - started < 8:
                    client.send(b"y" * 100)  # 500 bytes/s: deadline 1 s + bytes/1000
                    time.sleep(0.2)
                    if client.closed_by_server(0.01):
                        raise ConnectionError("closed")
            assert 1.5 < time.monotonic() - started < 4
            assert client.buffer.startswith(b"421"), client.buffer
            assert stored.raws == []
        finally:
            client.close()


def test_long_command_lines_get_500_and_the_session_goes_on() -> None:
    with listener(max_message_size=10_000_000) as (port, _):
        client = RawClient(port, "127.0.0.2")
        try:
            assert client.reply().startswith("220")
            assert client.command(b"EHLO x").startswith("250")
            assert client.command(b"NOOP " + b"n" * 3_000_000).startswith("500")
            assert client.command(b"NOOP").startswith("250")
        finally:
            client.close()


# Data that the DATA phase must take apart exactly as aiosmtpd's own line reader does:
# dot-stuffing, a lone dot first, bare LF (which is not a line end for SMTP), and dots at
# every offset of chunk boundaries. Each ends with CRLF, as the client's data must.
TRANSPARENCY = {
    "empty": b"",
    "dot-first": b".leading dot\r\nbody\r\n",
    "stuffed": b"a\r\n..\r\n...x\r\n.y\r\nend.\r\n",
    "empty-lines": b"\r\n" * 5,
    "bare-lf": b"Subject: lf\n\n.not stuffed\nline.\n..\n\r\n",
    "bare-lf-end": b"a\n.\r\nstill data\r\n",
    "cr-dot": b"a\r.\r\nb\r\n",
    "big": b"".join(b"." * (n % 7) + b"line %d.\r\n" % n for n in range(40_000)),
    "one-long-line": b"h" * 700_000 + b"\r\n",
    "bare-lf-big": b"".join(b"bare %d.\n" % n for n in range(30_000)) + b"\r\n",
}


class _Reference(Controller):
    """Plain aiosmtpd, with lines as long as the message allowed (as maildesk takes them)."""

    def factory(self) -> SMTP:
        class Wide(SMTP):
            line_length_limit = 10_000_000

        return Wide(self.handler, hostname="reference")


class _Capture:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.contents.append(envelope.original_content)
        return "250 OK"


def _deliver(port: int, payloads: list[bytes]) -> list[str]:
    client = RawClient(port, "127.0.0.2")
    try:
        assert client.reply().startswith("220")
        client.command(b"EHLO x")
        replies = []
        for data in payloads:
            client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n")
            assert [client.reply()[:3] for _ in range(3)] == ["250", "250", "354"]
            replies.append(client.command(data + b"."))
        return replies
    finally:
        client.close()


def test_data_is_taken_apart_exactly_as_aiosmtpd_does() -> None:
    payloads = list(TRANSPARENCY.values())
    capture = _Capture()
    reference = _Reference(capture, hostname="127.0.0.1", port=free_port())
    reference.start()
    try:
        assert all(r.startswith("250") for r in _deliver(reference.port, payloads))
    finally:
        reference.stop()
    with listener() as (port, stored):
        assert all(r.startswith("250") for r in _deliver(port, payloads))
    for name, expected, got in zip(TRANSPARENCY, capture.contents, stored.raws, strict=True):
        assert got == expected, name


def test_data_over_the_size_limit_gets_552_and_the_session_goes_on() -> None:
    with listener(max_message_size=100_000) as (port, stored):
        replies = _deliver(port, [b"x" * 99_990 + b"\r\n", b"\r\n" * 50_001, b"ok\r\n"])
        assert [r[:3] for r in replies] == ["250", "552", "250"]
        assert len(stored.raws) == 2


def test_lines_that_end_with_a_dot_cost_time_in_proportion() -> None:
    with listener(max_message_size=10_000_000) as (port, stored):
        started = time.monotonic()
        replies = _deliver(port, [b"x.\r\n" * 500_000])  # 2 MB, each line a false end
        took = time.monotonic() - started
    print(f"2 MB of 'x.' lines: {took:.2f} s")
    assert replies[0].startswith("250") and stored.raws[0] == b"x.\r\n" * 500_000
    assert took < 8


# --- a real daemon with its default limits, measured from outside --------------------------


@pytest.fixture
def served(
    tmp_path: Path, write_config: Callable[..., Path]
) -> Iterator[Callable[..., tuple[int, int]]]:
    """Start `maildesk serve` (default [smtp] limits, given max_message_size): (port, pid)."""
    started: list[Any] = []

    def serve(max_size: str = "1MB") -> tuple[int, int]:
        port = free_port()
        config = write_config(f"sqlite:///{tmp_path / 'md.db'}", max_size=max_size)
        config.write_text(
            config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
        )
        context = serve_process(config, tmp_path / "serve.log")
        proc = context.__enter__()
        started.append(context)
        return port, proc.pid

    yield serve
    for context in started:
        context.__exit__(None, None, None)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_idle_crowd_from_one_address_does_not_lock_out_others(
    served: Callable[..., tuple[int, int]],
) -> None:
    port, _ = served()
    probe(port)  # warm up (first message: imports, database)
    with clients(port, 100, "127.0.0.2") as crowd:
        greetings = [c.reply() for c in crowd]
        held = [c for c, g in zip(crowd, greetings, strict=True) if g.startswith("220")]
        latencies = []
        for _ in range(5):
            for client in held:  # the crowd trickles NOOPs
                client.send(b"NOOP\r\n")
            latencies.append(probe(port, "127.0.0.3"))
            assert all(c.reply().startswith("250") for c in held)
    print(f"probe latency with 100 idle connections: max {max(latencies):.3f} s")
    assert max(latencies) < 1.0


def test_a_client_streaming_empty_lines_does_not_starve_others(
    served: Callable[..., tuple[int, int]],
) -> None:
    port, _ = served()
    probe(port)
    streamer = RawClient(port, "127.0.0.4", timeout=120)
    start_transaction(streamer)
    stop = threading.Event()
    rounds: list[str] = []

    def stream() -> None:
        while not stop.is_set():
            streamer.send(b"\r\n" * 4_000_000 + b".\r\n")  # 8 MB of empty lines
            rounds.append(streamer.reply())
            streamer.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\n")
            streamer.send(b"DATA\r\n")
            assert [streamer.reply()[:3] for _ in range(3)] == ["250", "250", "354"]

    thread = threading.Thread(target=stream)
    thread.start()
    latencies = []
    try:  # probes all along, until the stream has gone round three times
        while thread.is_alive() and (len(rounds) < 3 or len(latencies) < 10):
            latencies.append(probe(port, "127.0.0.3", timeout=5))
    finally:
        stop.set()
        thread.join(120)
        streamer.close()
    print(
        f"{len(latencies)} probes while 8 MB of empty lines streamed in: max {max(latencies):.3f} s"
    )
    assert len(rounds) >= 3 and all(r.startswith("552") for r in rounds), rounds  # 1 MB limit
    assert max(latencies) < 1.5


def test_long_command_lines_do_not_grow_the_daemon(
    served: Callable[..., tuple[int, int]],
) -> None:
    port, pid = served(max_size="4MB")
    probe(port)
    before = _status_kb(pid, "VmRSS")
    with contextlib.ExitStack() as stack:
        crowd = [
            c for n in range(4) for c in stack.enter_context(clients(port, 10, f"127.0.0.{n + 10}"))
        ]
        for client in crowd:
            assert client.reply().startswith("220")
        for client in crowd:
            client.send(b"MAIL FROM:<" + b"a" * 3_000_000)  # no line end yet
        peak = _status_kb(pid, "VmHWM")
        for client in crowd:
            assert client.command(b">").startswith("500")
        peak = max(peak, _status_kb(pid, "VmHWM"))
    grown = (peak - before) / 1024
    print(f"40 clients x 3 MB command line: daemon peak RSS grew {grown:.1f} MB")
    assert grown < 40


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "maildesk.toml"
    head = '[desk]\naddress = "support@example.com"\n[smtp]\n'
    path.write_text(
        head + "max_connections_per_client = 5\nper_client_exceptions = ['10.0.0.0/8']\n"
        "max_junk_commands = 30\nmin_data_rate = '2KB'\n",
        encoding="utf-8",
    )
    smtp = load_config(path).smtp
    assert (smtp.max_connections_per_client, smtp.max_junk_commands) == (5, 30)
    assert (smtp.per_client_exceptions, smtp.min_data_rate) == (("10.0.0.0/8",), 2000)
    path.write_text(head, encoding="utf-8")
    smtp = load_config(path).smtp
    assert smtp.max_connections_per_client == smtp_listener.MAX_CONNECTIONS_PER_CLIENT
    assert smtp.per_client_exceptions == smtp_listener.PER_CLIENT_EXCEPTIONS
    assert smtp.min_data_rate == smtp_listener.MIN_DATA_RATE
    path.write_text(
        head + "per_client_exceptions = ['10.0.0.300']\nmax_connections_per_client = 0\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    places = sorted(p.place for p in error.value.problems)
    assert places == [
        "[smtp] key 'max_connections_per_client'",
        "[smtp] key 'per_client_exceptions'",
    ]
    assert all(p.file == str(path) for p in error.value.problems)


@pytest.mark.parametrize(
    "recipient",
    ["hjälp@exämple.se", "<HJÄLP@xn--exmple-cua.se>", "hjälp+ab12@XN--EXMPLE-CUA.SE"],
)
def test_an_idn_recipient_is_accepted_in_either_spelling(recipient: str) -> None:
    from maildesk.ingest.smtp import accepts

    assert accepts(recipient, frozenset({"hjälp@exämple.se"}))
    assert not accepts("other@exämple.se", frozenset({"hjälp@exämple.se"}))
