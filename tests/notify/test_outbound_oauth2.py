"""Outbound SMTP with `auth = "oauth2"`: AUTH XOAUTH2 (and OAUTHBEARER) against a real
aiosmtpd smarthost whose authenticator checks each bearer token at the local token server
(tests/oauth2_server.py), through a running desk and through the transport alone."""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult

from maildesk.mail import oauth2
from maildesk.mail.oauth2 import OAuth2Settings
from maildesk.mail.transport import DeliveryError, SmtpTransport
from tests.conftest import Sink, _SinkHandler, free_port, mail, running_desk, wait_until
from tests.oauth2_server import CLIENT_ID, CLIENT_SECRET, AuthServer, auth_server

USER = "maildesk@example.com"
RAW = b"From: support@example.com\r\nTo: someone@example.org\r\nSubject: x\r\n\r\nHello.\r\n"


def _refuse_passwords(*args: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


class BearerSmarthost(_SinkHandler):
    """Takes mail only after AUTH XOAUTH2 or OAUTHBEARER with a token the server issued."""

    def __init__(self, sink: Sink, tokens: AuthServer) -> None:
        super().__init__(sink)
        self.tokens = tokens
        self.logins: list[tuple[str, str]] = []  # (mechanism, user)
        self.refusals = 0

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")

    async def _bearer(self, server: Any, args: list[str], mechanism: str) -> AuthResult:
        blob = b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        if blob is MISSING:
            return AuthResult(success=False, handled=True)
        head, *fields = blob.decode().split("\x01")
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        if mechanism == "XOAUTH2":
            user = head.removeprefix("user=")
        else:
            user = head.split(",")[1].removeprefix("a=").replace("=2C", ",").replace("=3D", "=")
        token = values.get("auth", "").removeprefix("Bearer ")
        issued = self.tokens.active(token)
        if issued is not None and user == USER:
            self.logins.append((mechanism, user))
            return AuthResult(success=True, auth_data=user)
        self.refusals += 1
        # RFC 7628 3.2.2: the error as a challenge; the client answers it empty; then 535.
        await server.challenge_auth(json.dumps({"status": "invalid_token", "schemes": "bearer"}))
        return AuthResult(success=False, handled=False)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AuthServer]:
    with auth_server(user=USER) as server:
        yield server


@pytest.fixture
def tokens(endpoint: AuthServer, monkeypatch: pytest.MonkeyPatch) -> AuthServer:
    """The endpoint as new, and no token cached from an earlier test."""
    fresh = AuthServer(user=USER, port=endpoint.port)
    endpoint.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "lock"})
    monkeypatch.setattr(oauth2, "_providers", {})
    return endpoint


@pytest.fixture
def smarthost(tokens: AuthServer) -> Iterator[tuple[Sink, BearerSmarthost]]:
    sink = Sink(port=free_port())
    handler = BearerSmarthost(sink, tokens)
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=_refuse_passwords,
        auth_require_tls=False,  # loopback only
    )
    controller.start()
    try:
        yield sink, handler
    finally:
        controller.stop()


def test_the_desk_sends_its_notifications_after_auth_xoauth2(
    tmp_path: Path,
    sqlite_template: Path,
    smarthost: tuple[Sink, BearerSmarthost],
    tokens: AuthServer,
    write_config: Callable[..., Path],
) -> None:
    sink, handler = smarthost
    db = tmp_path / "maildesk.db"
    db.write_bytes(sqlite_template.read_bytes())
    config = write_config(f"sqlite:///{db}", sink.port)
    config.write_text(
        config.read_text().replace(
            'transport = "smtp"',
            f'transport = "smtp"\nusername = "{USER}"\nauth = "oauth2"\n'
            f'oauth2 = {{ token_url = "{tokens.token_url}", client_id = "{CLIENT_ID}", '
            f'client_secret = "{CLIENT_SECRET}", scope = "smtp" }}',
        )
    )
    with running_desk(config, sink) as desk:
        desk.send(mail("Printer on fire"))
        sink.wait_for(2)
        wait_until(lambda: all(e["status"] == "sent" for e in desk.json("outbox")))
    assert handler.logins and set(handler.logins) == {("XOAUTH2", USER)}
    assert len(tokens.issued) == 1, "one token for every session while it lasts"
    assert tokens.requests[0]["scope"] == "smtp"


@dataclass(frozen=True)
class Outbound:
    """`[outbound]` for the smarthost on the loopback, logging in with a token."""

    port: int
    oauth2: OAuth2Settings
    transport: str = "smtp"
    host: str = "127.0.0.1"
    path: Path | None = None
    starttls: bool = False
    ca_file: Path | None = None
    username: str | None = USER
    password: str | None = None
    timeout: float = 10.0


def _transport(sink: Sink, tokens: AuthServer, mechanism: str = "xoauth2") -> SmtpTransport:
    settings = OAuth2Settings(
        token_url=tokens.token_url,
        grant="client_credentials",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        mechanism=mechanism,
        timeout=5.0,
    )
    return SmtpTransport(Outbound(sink.port, settings))


def test_a_revoked_token_is_replaced_once_and_the_mail_goes(
    smarthost: tuple[Sink, BearerSmarthost], tokens: AuthServer
) -> None:
    sink, handler = smarthost
    transport = _transport(sink, tokens, "oauthbearer")
    try:
        transport.send("support@example.com", ["someone@example.org"], RAW)
        transport.close()
        tokens.revoke()
        transport.send("support@example.com", ["someone@example.org"], RAW)
    finally:
        transport.close()
    assert len(sink.messages) == 2 and len(tokens.issued) == 2
    assert handler.refusals == 1
    assert handler.logins == [("OAUTHBEARER", USER)] * 2


def test_no_token_or_a_refused_one_keeps_the_mail_queued_and_says_why(
    smarthost: tuple[Sink, BearerSmarthost], tokens: AuthServer
) -> None:
    sink, handler = smarthost
    transport = _transport(sink, tokens)
    tokens.refuse_grants = True
    with pytest.raises(DeliveryError) as caught:
        transport.send("support@example.com", ["someone@example.org"], RAW)
    assert not caught.value.permanent
    text = str(caught.value)
    assert f"login to 127.0.0.1:{sink.port} as {USER}: no OAuth2 token" in text
    assert "HTTP 400: invalid_grant - grant revoked" in text

    tokens.refuse_grants = False
    handler.tokens = AuthServer()  # knows no token: refuses them all, however fresh
    with pytest.raises(DeliveryError) as caught:
        transport.send("support@example.com", ["someone@example.org"], RAW)
    assert not caught.value.permanent
    assert f"login to 127.0.0.1:{sink.port} as {USER} refused: 535" in str(caught.value)
    assert handler.refusals == 2, "refused, then once more with a fresh token"
    assert sink.messages == []
    transport.close()
