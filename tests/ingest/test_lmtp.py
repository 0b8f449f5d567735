"""The LMTP listener (`[lmtp] listen`, RFC 2033) over real sockets, TCP and unix: LHLO, the
SMTP listener's accept rules, one reply per recipient after the commit, back-pressure and a
failed store, the socket file, and the config it reads. (Postfix in front of it:
test_postfix.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maildesk.app import App
from maildesk.config import LmtpConfig, SmtpConfig, load_config
from maildesk.daemon.serve import Daemon
from maildesk.errors import ConfigError, MaildeskError, StoreUnavailable
from maildesk.ingest.backlog import Backlog
from maildesk.ingest.lmtp import LmtpHandler, start_lmtp_server, stop_lmtp_server
from tests.conftest import Desk, Sink, mail, running_desk

ACCEPT = frozenset({"support@example.com", "helpdesk@example.com"})


class LmtpClient:
    """A plain LMTP client: smtplib.LMTP reads one reply to DATA, not one per recipient."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        self.sock = sock
        self.file = sock.makefile("rb")
        assert self.reply()[0].startswith("220")

    def reply(self) -> list[str]:
        """The lines of one reply (a multi-line one ends at a line without '-')."""
        lines = []
        while True:
            line = self.file.readline().decode().rstrip("\r\n")
            assert line, "connection closed"
            lines.append(line)
            if line[3:4] != "-":
                return lines

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()[-1]

    def transaction(self, recipients: list[str], body: bytes) -> tuple[list[str], list[str]]:
        """MAIL, RCPT each, DATA: the RCPT replies and the replies at the end of DATA (one
        line per accepted recipient), or the one refusal of DATA itself."""
        assert self.command("MAIL FROM:<carol@example.org>").startswith("250")
        rcpts = [self.command(f"RCPT TO:<{r}>") for r in recipients]
        answer = self.command("DATA")
        if not answer.startswith("354"):
            return rcpts, [answer]
        self.sock.sendall(body + b"\r\n.\r\n")
        return rcpts, [self.reply()[0] for r in rcpts if r.startswith("250")]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _tcp(address: str) -> LmtpClient:
    host, _, port = address.rpartition(":")
    return LmtpClient(socket.create_connection((host, int(port))))


def _unix(path: Path) -> LmtpClient:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return LmtpClient(sock)


@pytest.fixture
def lmtp_desk(tmp_path: Path, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    """A running desk on SQLite with LMTP on a TCP port of its choosing."""
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=LISTEN_TCP)
    with running_desk(config, sink) as desk:
        yield desk


LISTEN_TCP = '\n[lmtp]\nlisten = "127.0.0.1:0"\n'


def _address(desk: Desk) -> str:
    address = desk.daemon.lmtp_address
    assert address is not None
    return address


def test_lmtp_answers_each_recipient_once_the_message_is_committed(lmtp_desk: Desk) -> None:
    client = _tcp(_address(lmtp_desk))
    try:
        assert client.command("LHLO mta.example.org").startswith("250")
        rcpts, replies = client.transaction(
            ["support@example.com", "someone@elsewhere.example", "helpdesk@example.com"],
            mail("Printer on fire").as_bytes(),
        )
        assert rcpts[1].startswith("550 5.1.1")  # outside [smtp] accept, as over SMTP
        assert [r.split(" ")[:3] for r in replies] == [
            ["250", "2.0.0", "<support@example.com>"],
            ["250", "2.0.0", "<helpdesk@example.com>"],
        ]
        assert len({r.rsplit(" ", 1)[1] for r in replies}) == 1  # stored once, for both
        assert client.command("QUIT").startswith("221")
    finally:
        client.close()
    assert len(lmtp_desk.wait_tickets(1)) == 1
    assert lmtp_desk.count_of("raw_messages", "WHERE origin = 'lmtp'") == 1
    assert b'maildesk_messages_accepted_total{source="lmtp"} 1.0' in (
        lmtp_desk.app.metrics.exposition()
    )


def test_lmtp_wants_lhlo_not_helo_or_ehlo(lmtp_desk: Desk) -> None:
    client = _tcp(_address(lmtp_desk))
    try:
        assert client.command("HELO mta.example.org").startswith("500")
        assert client.command("EHLO mta.example.org").startswith("500")
        assert client.command("MAIL FROM:<carol@example.org>").startswith("503")  # no LHLO yet
        assert client.command("LHLO mta.example.org").startswith("250")
    finally:
        client.close()


def test_lmtp_on_a_unix_socket(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = '\n[lmtp]\nlisten = "run/lmtp.sock"\n'  # relative to the config file
    (tmp_path / "run").mkdir()
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=extra)
    path = tmp_path / "run" / "lmtp.sock"
    with running_desk(config, sink) as desk:
        assert desk.daemon.lmtp_address == str(path)
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o666
        client = _unix(path)
        try:
            assert client.command("LHLO mta.example.org").startswith("250")
            _, replies = client.transaction(["support@example.com"], mail("VPN down").as_bytes())
            assert replies[0].startswith("250 2.0.0 <support@example.com>")
        finally:
            client.close()
        desk.wait_tickets(1)
    assert not path.exists()  # removed at shutdown


# --- the handler's answers, with a store that fails and a full backlog ---------------------


@contextlib.contextmanager
def lmtp_listener(handler: LmtpHandler, path: Path) -> Iterator[None]:
    """The LMTP listener on a unix socket in an event loop of its own (in a thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    smtp = SmtpConfig(host="127.0.0.1", port=0, accept=tuple(ACCEPT), max_message_size=10**6)
    start = start_lmtp_server(handler, LmtpConfig(path=path), smtp, hostname="test")
    server = asyncio.run_coroutine_threadsafe(start, loop).result(10)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(stop_lmtp_server(server, path), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_store_that_fails_gets_451_for_each_recipient(tmp_path: Path) -> None:
    async def store(raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
        raise StoreUnavailable("database down")

    path = tmp_path / "lmtp.sock"
    with lmtp_listener(LmtpHandler(store, lambda: ACCEPT, source="lmtp"), path):
        client = _unix(path)
        try:
            client.command("LHLO mta.example.org")
            _, replies = client.transaction(
                ["support@example.com", "helpdesk@example.com"], mail().as_bytes()
            )
        finally:
            client.close()
    assert [r.split(" ")[:3] for r in replies] == [
        ["451", "4.3.0", "<support@example.com>"],
        ["451", "4.3.0", "<helpdesk@example.com>"],
    ]


def test_a_full_backlog_defers_lmtp_data_with_one_451(tmp_path: Path) -> None:
    stored: list[bytes] = []

    async def store(raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
        stored.append(raw)
        return len(stored)

    backlog = Backlog(lambda cap: 5, lambda: 5, refresh=3600.0)
    asyncio.run(backlog.refresh())
    handler = LmtpHandler(store, lambda: ACCEPT, backlog=backlog, source="lmtp")
    path = tmp_path / "lmtp.sock"
    with lmtp_listener(handler, path):
        client = _unix(path)
        try:
            client.command("LHLO mta.example.org")
            _, replies = client.transaction(
                ["support@example.com", "helpdesk@example.com"], mail().as_bytes()
            )
        finally:
            client.close()
    assert len(replies) == 1 and replies[0].startswith("451 4.3.2")
    assert stored == []


def test_mail_over_the_size_limit_gets_552_for_each_recipient(tmp_path: Path) -> None:
    async def store(raw: bytes, mail_from: str | None, rcpts: list[str]) -> int:
        raise AssertionError("oversize mail is not stored")

    path = tmp_path / "lmtp.sock"
    with lmtp_listener(LmtpHandler(store, lambda: ACCEPT, source="lmtp"), path):
        client = _unix(path)
        try:
            client.command("LHLO mta.example.org")
            _, replies = client.transaction(
                ["support@example.com", "helpdesk@example.com"],
                mail(body="x" * 2_000_000).as_bytes(),
            )
            assert client.command("NOOP").startswith("250")  # the session goes on
        finally:
            client.close()
    assert [r.split(" ")[:3] for r in replies] == [
        ["552", "5.3.4", "<support@example.com>"],
        ["552", "5.3.4", "<helpdesk@example.com>"],
    ]


# --- [lmtp] in the config ------------------------------------------------------------------


def _lmtp_config(tmp_path: Path, write_config: Callable[..., Path], body: str) -> LmtpConfig:
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", extra=f"\n[lmtp]\n{body}\n")
    return load_config(config).lmtp


def test_lmtp_listen_is_tcp_or_a_socket_path(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    assert not load_config(write_config(f"sqlite:///{tmp_path / 'md.db'}")).lmtp.enabled
    tcp = _lmtp_config(tmp_path, write_config, 'listen = "127.0.0.1:2424"')
    assert (tcp.host, tcp.port, tcp.path) == ("127.0.0.1", 2424, None)
    relative = _lmtp_config(tmp_path, write_config, 'listen = "lmtp.sock"')
    assert relative.path == tmp_path.resolve() / "lmtp.sock"
    absolute = _lmtp_config(tmp_path, write_config, f'listen = "{tmp_path}/a.sock"')
    assert absolute.path == tmp_path / "a.sock"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('listen = "nowhere/lmtp.sock"', "does not exist"),
        ('listen = "127.0.0.1:99999"', "port must be a number"),
        ("listen = 24", "must be str"),
        (f'listen = "{"x" * 120}.sock"', "longer than 107 bytes"),
        ("port = 24", "unknown key"),
    ],
)
def test_lmtp_listen_is_checked(
    tmp_path: Path, write_config: Callable[..., Path], body: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _lmtp_config(tmp_path, write_config, body)
    assert "[lmtp] key" in str(caught.value) and words in str(caught.value)
    assert str(tmp_path / "maildesk.toml") in str(caught.value)


def test_lmtp_where_it_cannot_listen_is_a_clear_error(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    extra = f'\n[lmtp]\nlisten = "127.0.0.1:{port}"\n'
    app = App.build(load_config(write_config(f"sqlite:///{tmp_path / 'md.db'}", extra=extra)))
    daemon = Daemon(app)
    errors: list[str] = []

    def serve() -> None:
        try:
            asyncio.run(daemon.run(install_signals=False))
        except MaildeskError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join(20)
    try:
        if thread.is_alive():
            daemon.request_stop()
            thread.join(10)
            pytest.fail("serve started although the LMTP address was taken")
    finally:
        taken.close()
        app.close()
    assert errors == [
        f"serve: cannot listen on 127.0.0.1:{port} ([lmtp] listen): Address already in use"
    ]
