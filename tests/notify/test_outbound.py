"""The outbox sender against a real smarthost that wants a login, and one that hangs up."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from maildesk.config import load_config
from maildesk.mail.transport import transport_for
from tests.conftest import (
    Sink,
    _SinkHandler,
    free_port,
    mail,
    require_tool,
    running_desk,
    wait_until,
)


class Accounts:
    def __init__(self, password: str) -> None:
        self.password = password
        self.logins: list[str] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == self.password.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smarthost() -> Iterator[tuple[Sink, Accounts]]:
    sink, accounts = Sink(port=free_port()), Accounts("s3cret")
    # AUTH offered without TLS (loopback only); the tests check that a login happened.
    controller = Controller(
        _SinkHandler(sink),
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=accounts,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield sink, accounts
    finally:
        controller.stop()


def _with_auth(config: Path) -> Path:
    # [outbound] already exists in the test config: add the login keys to it.
    text = config.read_text().replace(
        'transport = "smtp"',
        'transport = "smtp"\nusername = "maildesk"\npassword_env = "MAILDESK_TEST_SMTP_PASSWORD"',
    )
    config.write_text(text)
    return config


def test_sender_logs_in_with_password_from_the_environment(
    db_url: str,
    smarthost: tuple[Sink, Accounts],
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink, accounts = smarthost
    monkeypatch.setenv("MAILDESK_TEST_SMTP_PASSWORD", "s3cret")
    with running_desk(_with_auth(write_config(db_url, sink.port)), sink) as desk:
        desk.send(mail("Printer on fire"))
        sink.wait_for(2)
        assert accounts.logins and set(accounts.logins) == {"maildesk"}
        wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))


def test_refused_login_keeps_mail_queued_and_says_why(
    db_url: str,
    smarthost: tuple[Sink, Accounts],
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink, accounts = smarthost
    monkeypatch.setenv("MAILDESK_TEST_SMTP_PASSWORD", "wrong")
    with running_desk(_with_auth(write_config(db_url, sink.port)), sink) as desk:
        desk.send(mail("Printer on fire"))
        entries = wait_until(lambda: [e for e in desk.json("outbox") if e["last_error"]] or None)
        assert all(e["status"] == "queued" for e in desk.json("outbox"))
        assert "login to 127.0.0.1" in entries[0]["last_error"]
        assert "535" in entries[0]["last_error"]
        assert sink.messages == [] and accounts.logins == []


class HangUp:
    """Accepts the connection and the envelope, then drops it during DATA, `times` times."""

    def __init__(self, sink: Sink, times: int) -> None:
        self.sink, self.times = sink, times
        self.inner = _SinkHandler(sink)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.times > 0:
            self.times -= 1
            server.transport.close()
            await asyncio.sleep(0)
            return "421 closing"
        return await self.inner.handle_DATA(server, session, envelope)


def test_dropped_connection_is_retried_and_delivered_once(
    db_url: str, write_config: Callable[..., Path]
) -> None:
    sink = Sink(port=free_port())
    controller = Controller(HangUp(sink, times=2), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        with running_desk(write_config(db_url, sink.port, extra=_NO_AGENTS), sink) as desk:
            desk.send(mail("Printer on fire"))
            [entry] = wait_until(
                lambda: [e for e in desk.json("outbox") if e["status"] == "sent"] or None,
                timeout=20,
            )
            assert entry["attempts"] == 3
            assert len(sink.messages) == 1, "delivered exactly once after the retries"
    finally:
        controller.stop()


_NO_AGENTS = "\n[notify]\nnotify_agents = false\n"


class FlakyTransport:
    """A transport that breaks unexpectedly once, then hands over to the real one."""

    def __init__(self, real: Any) -> None:
        self.real, self.failures = real, 1

    def send(self, sender: str, recipients: list[str], raw: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("transport bug")
        self.real.send(sender, recipients, raw)

    def close(self) -> None:
        self.real.close()


def test_unexpected_transport_error_is_retried_not_fatal(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, sink.port, extra=_NO_AGENTS)
    flaky = FlakyTransport(transport_for(load_config(config).outbound))
    with running_desk(config, sink, transport=flaky) as desk:
        desk.send(mail("Printer on fire"))
        [entry] = wait_until(
            lambda: [e for e in desk.json("outbox") if e["status"] == "sent"] or None, timeout=15
        )
        assert entry["attempts"] == 2
        desk.send(mail("Second"))  # the sender worker is still alive
        sink.wait_for(2)


@pytest.fixture
def tls_smarthost(tmp_path: Path) -> Iterator[tuple[Sink, Path]]:
    """A smarthost that insists on STARTTLS, with a certificate from a throw-away CA."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = Sink(port=free_port())
    controller = Controller(
        _SinkHandler(sink),
        hostname="127.0.0.1",
        port=sink.port,
        tls_context=context,
        require_starttls=True,
    )
    controller.start()
    try:
        yield sink, cert
    finally:
        controller.stop()


def _with_starttls(config: Path, ca_file: Path | None) -> Path:
    extra = "starttls = true" + (f"\nca_file = {str(ca_file)!r}" if ca_file else "")
    config.write_text(
        config.read_text().replace('transport = "smtp"', f'transport = "smtp"\n{extra}')
    )
    return config


def test_starttls_to_a_smarthost_with_a_private_ca(
    db_url: str, tls_smarthost: tuple[Sink, Path], write_config: Callable[..., Path]
) -> None:
    sink, cert = tls_smarthost
    config = _with_starttls(write_config(db_url, sink.port, extra=_NO_AGENTS), cert)
    with running_desk(config, sink) as desk:
        desk.send(mail("Printer on fire"))
        sink.wait_for(1)
        wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))


def test_untrusted_certificate_keeps_mail_queued(
    db_url: str, tls_smarthost: tuple[Sink, Path], write_config: Callable[..., Path]
) -> None:
    sink, _cert = tls_smarthost
    config = _with_starttls(write_config(db_url, sink.port, extra=_NO_AGENTS), None)
    with running_desk(config, sink) as desk:
        desk.send(mail("Printer on fire"))
        [entry] = wait_until(lambda: [e for e in desk.json("outbox") if e["last_error"]] or None)
        assert entry["status"] == "queued"
        assert "CERTIFICATE_VERIFY_FAILED" in entry["last_error"]
        assert sink.messages == []
