"""`maildesk serve` under systemd: sd_notify on the socket systemd would pass (READY=1 only
once SMTP and HTTP answer, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 and exit 0 on
SIGTERM, WATCHDOG=1 when asked), `[log] format = "json"` lines that name the message, its
ticket and the daemon, and the unit file in contrib/systemd as systemd-analyze reads it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from maildesk import logctx
from maildesk.config import load_config
from maildesk.daemon.sdnotify import Notifier
from maildesk.errors import ConfigError
from tests.conftest import (
    STARTUP_DEADLINE,
    Sink,
    free_port,
    mail,
    require_slow,
    require_tool,
    run_cli,
    wait_until,
)
from tests.http.conftest import http_config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "contrib" / "systemd" / "maildesk.service"


# --- a socket standing in for systemd's $NOTIFY_SOCKET -----------------------------------------


@dataclass
class NotifySocket:
    """A datagram socket in the abstract namespace; each datagram is one notification."""

    name: str = field(default_factory=lambda: f"@maildesk-test-{uuid.uuid4().hex}")
    received: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())

    def next_with(self, key: str, timeout: float = STARTUP_DEADLINE) -> dict[str, str]:
        """Read notifications until one carries `key` (e.g. "READY"); fail at the deadline."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.received.append(fields)
            if key in fields:
                return fields
        raise AssertionError(f"no {key}= within {timeout}s; received {self.received}")

    def drain(self) -> list[dict[str, str]]:
        """The notifications waiting now (read without waiting for more)."""
        found = []
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                data = self.sock.recv(4096)
                found.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        self.received.extend(found)
        return found

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def serving(config: Path, stderr: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`maildesk serve` as systemd would start it (its environment, stderr to a file)."""
    require_slow("`maildesk serve`")
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maildesk", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **env},
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _with_smtp_port(config: Path, port: int) -> None:
    text = config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    config.write_text(text)


def _banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        return conn.recv(512)


# --- serve as systemd runs it: notifications and JSON lines on stderr -------------------------
#
# One process for both (a start-up is seconds on a busy machine).


@pytest.mark.slow
def test_serve_notifies_systemd_and_logs_json_lines(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path], notify_socket: NotifySocket
) -> None:
    smtp_port, http_port = free_port(), free_port()
    extra = http_config(http_port) + '\n[log]\nformat = "json"\n'
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=extra)
    _with_smtp_port(config, smtp_port)
    stderr = tmp_path / "serve.log"
    env = {"NOTIFY_SOCKET": notify_socket.name, "WATCHDOG_USEC": "2000000"}
    with serving(config, stderr, env) as proc:
        ready = notify_socket.next_with("READY")
        # At READY=1 both listeners take connections already (nothing waited for them).
        assert _banner(smtp_port).startswith(b"220 "), stderr.read_text()
        with socket.create_connection(("127.0.0.1", http_port), timeout=10):
            pass
        assert ready["READY"] == "1"
        assert f"SMTP 127.0.0.1:{smtp_port}" in ready["STATUS"]
        assert f"HTTP 127.0.0.1:{http_port}" in ready["STATUS"]
        assert notify_socket.next_with("WATCHDOG", timeout=10)["WATCHDOG"] == "1"

        ref = _send_and_reply(config, smtp_port, stderr)

        proc.send_signal(signal.SIGHUP)
        reloading = notify_socket.next_with("RELOADING", timeout=10)
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        assert notify_socket.next_with("READY", timeout=10)["READY"] == "1"

        proc.send_signal(signal.SIGTERM)
        stopping = notify_socket.next_with("STOPPING", timeout=10)
        assert stopping["STOPPING"] == "1" and stopping["STATUS"].startswith("stopping")
        assert proc.wait(30) == 0, stderr.read_text()
    assert not [n for n in notify_socket.drain() if "READY" in n], "READY=1 after STOPPING=1"
    _check_json_lines(stderr, ref, proc.pid)


FIRST, REPLY = "<first-1@client.example.org>", "<reply-2@client.example.org>"


def _send_and_reply(config: Path, port: int, stderr: Path) -> str:
    """A new ticket's first mail and the requester's reply to it; the ticket's ref."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(mail("VPN drops every hour", message_id=FIRST))
    ref = wait_until(lambda: _only_ref(config))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(mail(f"Re: [{ref}] VPN", message_id=REPLY, in_reply_to=FIRST))
    wait_until(lambda: REPLY.encode() in stderr.read_bytes())
    return ref


def _check_json_lines(stderr: Path, ref: str, pid: int) -> None:
    """Every line is a JSON object with the context; the pipeline's name message and ticket."""
    lines = [json.loads(line) for line in stderr.read_text().splitlines()]  # every one parses
    assert lines and all(
        set(line) >= {"time", "level", "logger", "message", "message_id", "ticket", "daemon"}
        for line in lines
    )
    daemon = f"{socket.gethostname()}:{pid}"  # the listener, and its pipeline worker process
    assert {line["daemon"] for line in lines} == {daemon, f"{daemon}/w1"}
    assert lines[0]["time"].endswith("Z") and lines[0]["level"] == "INFO"
    for message_id in (FIRST, REPLY):
        about = [line for line in lines if message_id in line["message"]]
        assert about, f"no line mentions {message_id}"
        assert all(line["message_id"] == message_id and line["ticket"] == ref for line in about)
    created = next(line for line in lines if line["message"].startswith(f"created {ref}"))
    assert created["logger"] == "maildesk.pipeline.open" and created["message_id"] == FIRST
    outside = next(line for line in lines if "listening on" in line["message"])
    assert outside["message_id"] is None and outside["ticket"] is None


def _only_ref(config: Path) -> str | None:
    code, out = run_cli("tickets", "--json", "--config", str(config))
    assert code == 0, out
    tickets = json.loads(out)
    return str(tickets[0]["ref"]) if tickets else None


def test_notifier_sends_to_a_path_and_does_nothing_without_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(5)
        Notifier({"NOTIFY_SOCKET": str(path)}).ready("taking mail")
        assert listener.recv(4096) == b"READY=1\nSTATUS=taking mail"
    assert not Notifier({}).send("READY=1")
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).send("READY=1")


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_process() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_interval == 15.0
    theirs = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(theirs).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval is None
    assert Notifier({}).watchdog_interval is None


def test_json_formatter_writes_one_object_a_line_with_an_exception() -> None:
    formatter = logctx.LineFormatter("json")
    record = logging.LogRecord("maildesk.x", logging.ERROR, __file__, 1, "bad\n%s", ("news",), None)
    with logctx.about_message("<m@x>"):
        logctx.set_ticket("MD-7")
        logctx.Context().filter(record)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    found = json.loads(line)
    assert found["message"] == "bad\nnews" and found["level"] == "ERROR"
    assert (found["message_id"], found["ticket"]) == ("<m@x>", "MD-7")
    assert "ValueError: boom" in found["exception"]
    after = logging.LogRecord("maildesk.x", logging.INFO, __file__, 1, "later", (), None)
    logctx.Context().filter(after)  # outside the block: nothing known
    assert (after.message_id, after.ticket) == (None, None)  # type: ignore[attr-defined]
    text = logctx.LineFormatter("text").format(after)
    assert text.endswith(" INFO maildesk.x: later")


def test_use_format_switches_maildesk_handlers_only() -> None:
    ours, theirs = logging.StreamHandler(), logging.StreamHandler()
    logctx.install(ours)
    plain = logging.Formatter("%(message)s")
    theirs.setFormatter(plain)
    root = logging.getLogger()
    root.addHandler(ours)
    root.addHandler(theirs)
    try:
        logctx.use_format("json")
        record = logging.LogRecord("maildesk.x", logging.INFO, __file__, 1, "hello", (), None)
        assert json.loads(ours.format(record))["message"] == "hello"
        assert theirs.formatter is plain and theirs.format(record) == "hello"
        logctx.use_format("text")
        assert ours.format(record).endswith("INFO maildesk.x: hello")
    finally:
        root.removeHandler(ours)
        root.removeHandler(theirs)


def test_log_format_must_be_text_or_json(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    config = write_config("sqlite:///x.db", extra='\n[log]\nformat = "xml"\nlevel = "debug"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    problems = str(caught.value)
    assert "[log] key 'format'" in problems and "'text' or 'json'" in problems
    assert "level" in problems and str(config) in problems
    fine = write_config("sqlite:///x.db", extra='\n[log]\nformat = "json"\n')
    assert load_config(fine).log.format == "json"
    assert load_config(write_config("sqlite:///x.db")).log.format == "text"


# --- the unit file -----------------------------------------------------------------------------


def test_the_unit_file_is_what_systemd_expects(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")  # Debian package systemd (.ci/run installs it)
    # verify wants ExecStart's program to exist: this Python running maildesk stands in.
    unit = tmp_path / "maildesk.service"
    program = f"{sys.executable} -m maildesk"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/maildesk", program))
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "maildesk.service" not in done.stderr, done.stderr
    text = UNIT.read_text()
    for setting in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "StateDirectory=maildesk",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ):
        assert f"\n{setting}\n" in text, setting
