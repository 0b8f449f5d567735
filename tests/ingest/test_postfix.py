"""A real Postfix in front of maildesk (tests/servers/postfix.py: a private instance, started
once for this module): mail sent to Postfix by SMTP reaches the desk over LMTP (TCP and a
unix socket), and through a pipe(8) transport to `maildesk deliver`, whose exit 75 (the
backlog past max_backlog) makes Postfix defer the message and deliver it on the retry."""

from __future__ import annotations

import os
import smtplib
import stat
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import maildesk
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from tests.conftest import Desk, Sink, free_port, mail, running_desk, skip_or_fail, wait_until
from tests.servers import postfix as postfix_server

PIPE_USER = "nobody"


@dataclass
class Relay:
    """The private Postfix and where it hands mail on, by recipient domain."""

    server: postfix_server.Postfix
    lmtp_port: int  # tcp.example.com -> lmtp:inet:127.0.0.1:lmtp_port
    lmtp_socket: Path  # unix.example.com -> lmtp:unix:lmtp_socket
    pipe_config: Path  # pipe.example.com -> maildesk deliver --config pipe_config

    def send(self, to: list[str], subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.server.port, timeout=10) as smtp:
            smtp.send_message(mail(subject, to=", ".join(to)), to_addrs=to)

    def wait_statuses(self, recipient: str, expected: list[str]) -> None:
        wait_until(lambda: self.server.statuses(recipient) == expected, timeout=20)


def _searchable(path: str) -> bool:
    """Whether another user can reach `path` (every directory above it searchable)."""
    parents = Path(path).resolve().parents
    return all(stat.S_IMODE(p.stat().st_mode) & stat.S_IXOTH for p in parents)


def _pipe_command() -> list[str] | None:
    """How the pipe user runs this maildesk: this interpreter if it can reach it, else the
    system's Python of the same version with this environment's packages on its path."""
    code = str(Path(maildesk.__file__).resolve().parents[1])
    if _searchable(sys.executable) and _searchable(sys.base_prefix):
        return ["/usr/bin/env", f"PYTHONPATH={code}", sys.executable]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = Path("/usr/bin") / version
    paths = [code, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if system.exists() and all(_searchable(p) for p in paths):
        return ["/usr/bin/env", f"PYTHONPATH={':'.join(dict.fromkeys(paths))}", str(system)]
    return None


@pytest.fixture(scope="module")
def postfix() -> Iterator[Relay]:
    reason = postfix_server.available()
    if reason is not None:
        skip_or_fail(reason)
    command = _pipe_command()
    if command is None:
        skip_or_fail(f"user {PIPE_USER} cannot reach a Python to run `maildesk deliver` with")
    assert command is not None
    directory = Path(tempfile.mkdtemp(prefix="maildesk-postfix-"))  # world-searchable parents
    directory.chmod(0o755)
    for sub in ("lmtp", "pipe"):
        (directory / sub).mkdir(mode=0o755)
    relay_port, lmtp_port = free_port(), free_port()
    socket_path = directory / "lmtp" / "lmtp.sock"
    pipe_config = directory / "pipe" / "maildesk.toml"
    deliver = ["-m", "maildesk", "deliver", "--config", str(pipe_config)]
    argv = " ".join([*command, *deliver, "--sender", "${sender}", "--recipient", "${recipient}"])
    # As docs/deploy.md has it: one recipient per delivery, the envelope sender in argv.
    master_extra = (
        f"maildesk unix - n n - - pipe\n  flags=Rq user={PIPE_USER} null_sender=\n  argv={argv}\n"
    )
    with postfix_server.running_postfix(
        directory,
        relay_port,
        {
            "tcp.example.com": f"lmtp:inet:127.0.0.1:{lmtp_port}",
            "unix.example.com": f"lmtp:unix:{socket_path}",
            "pipe.example.com": "maildesk:",
        },
        main_extra="maildesk_destination_recipient_limit = 1\n",
        master_extra=master_extra,
    ) as server:
        yield Relay(server, lmtp_port, socket_path, pipe_config)


def _desk_config(
    write_config: Callable[..., Path], db_url: str, sink: Sink, domain: str, extra: str = ""
) -> Path:
    """A desk config accepting support@ and helpdesk@ of `domain`."""
    config = write_config(db_url, sink.port, extra=extra)
    body = config.read_text(encoding="utf-8").replace(
        'accept = ["support@example.com", "helpdesk@example.com"]',
        f'accept = ["support@{domain}", "helpdesk@{domain}"]',
    )
    config.write_text(body, encoding="utf-8")
    return config


def _lmtp_desk(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path], domain: str, listen: str
) -> Iterator[Desk]:
    config = _desk_config(
        write_config,
        f"sqlite:///{tmp_path / 'md.db'}",
        sink,
        domain,
        extra=f'\n[lmtp]\nlisten = "{listen}"\n',
    )
    with running_desk(config, sink) as desk:
        yield desk


def test_postfix_relays_to_maildesk_over_lmtp_on_tcp(
    postfix: Relay, tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    listen = f"127.0.0.1:{postfix.lmtp_port}"
    for desk in _lmtp_desk(tmp_path, sink, write_config, "tcp.example.com", listen):
        to = ["support@tcp.example.com", "helpdesk@tcp.example.com"]
        postfix.send(to, "Printer on fire")
        for rcpt in to:
            postfix.wait_statuses(rcpt, ["sent"])
        assert len(desk.wait_tickets(1)) == 1
        assert desk.count_of("raw_messages", "WHERE origin = 'lmtp'") == 1  # once for both
    assert "queued as" in postfix.server.log()  # LMTP's reply for each recipient


def test_postfix_relays_to_maildesk_over_lmtp_on_a_unix_socket(
    postfix: Relay, tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    listen = str(postfix.lmtp_socket)
    for desk in _lmtp_desk(tmp_path, sink, write_config, "unix.example.com", listen):
        postfix.send(["support@unix.example.com"], "VPN down")
        postfix.wait_statuses("support@unix.example.com", ["sent"])
        assert [t["subject"] for t in desk.wait_tickets(1)] == ["VPN down"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postfix_pipe_defers_on_exit_75_and_delivers_on_the_retry(
    postfix: Relay, db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    # PostgreSQL: `deliver` runs as the pipe's user, which reaches it over TCP.
    config = _desk_config(write_config, db_url, sink, "pipe.example.com")
    body = config.read_text(encoding="utf-8").replace("[smtp]\n", "[smtp]\nmax_backlog = 1\n", 1)
    postfix.pipe_config.write_text(body, encoding="utf-8")
    os.chmod(postfix.pipe_config, 0o644)
    app = App.build(load_config(postfix.pipe_config))
    try:
        inbox.store_raw(app, mail("Waiting its turn").as_bytes(), origin="smtp")
    finally:
        app.close()

    postfix.send(["support@pipe.example.com"], "Mail server down")
    postfix.wait_statuses("support@pipe.example.com", ["deferred"])
    assert "max_backlog" in postfix.server.log()  # deliver's stderr, in Postfix's log

    with running_desk(postfix.pipe_config, sink) as desk:  # the backlog drains
        desk.wait_processed(1)
        postfix.server.flush()
        postfix.wait_statuses("support@pipe.example.com", ["deferred", "sent"])
        subjects = {t["subject"] for t in desk.wait_tickets(2)}
    assert subjects == {"Waiting its turn", "Mail server down"}
