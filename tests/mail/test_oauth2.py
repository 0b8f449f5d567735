"""The OAuth2 token provider against a real token endpoint on the loopback
(tests/oauth2_server.py): both grants, the cache and its renewal, refusal, rotation of the
refresh token, and what each failure says."""

from __future__ import annotations

import base64
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from maildesk.mail.oauth2 import OAuth2Settings, OAuth2Tokens, TokenError, sasl_response
from tests.oauth2_server import CLIENT_ID, CLIENT_SECRET, AuthServer, auth_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AuthServer]:
    with auth_server() as server:
        yield server


@pytest.fixture
def server(endpoint: AuthServer) -> AuthServer:
    """The module's endpoint, its record and its settings as new."""
    fresh = AuthServer(port=endpoint.port)
    endpoint.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "lock"})
    return endpoint


def settings(server: AuthServer, **keys: object) -> OAuth2Settings:
    values: dict[str, object] = {
        "token_url": server.token_url,
        "grant": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "https://outlook.office365.com/.default",
        "timeout": 5.0,
        **keys,
    }
    return OAuth2Settings(**values)  # type: ignore[arg-type]


def test_client_credentials_token_is_cached_until_shortly_before_it_expires(
    server: AuthServer,
) -> None:
    server.expires_in = 100
    clock = Clock()
    tokens = OAuth2Tokens(settings(server), clock=clock)
    first = tokens.token()
    assert tokens.token() == first and len(server.requests) == 1
    assert server.requests[0]["grant_type"] == "client_credentials"
    assert server.requests[0]["scope"] == "https://outlook.office365.com/.default"
    clock.now += 89  # a tenth of the lifetime early: still the same token
    assert tokens.token() == first
    clock.now += 1
    second = tokens.token()
    assert second != first and len(server.requests) == 2
    assert server.active(second.value)


def test_a_refused_token_is_replaced_by_a_fresh_one(server: AuthServer) -> None:
    tokens = OAuth2Tokens(settings(server))
    first = tokens.token()
    tokens.refused(first)
    second = tokens.token()
    assert second.value != first.value and tokens.fetched == 2
    tokens.refused(first)  # an older token refused again: the new one stays
    assert tokens.token() == second and tokens.fetched == 2


def test_refresh_token_grant_saves_the_rotated_token_privately(
    server: AuthServer, tmp_path: Path
) -> None:
    server.rotate, server.expires_in = True, 10
    stored = tmp_path / "refresh-token"
    stored.write_text("refresh-1\n")
    clock = Clock()
    tokens = OAuth2Tokens(
        settings(server, grant="refresh_token", refresh_token_file=stored, scope=""), clock=clock
    )
    tokens.token()
    assert server.requests[0]["refresh_token"] == "refresh-1"
    assert "scope" not in server.requests[0]
    rotated = stored.read_text().strip()
    assert rotated == server.refresh_token != "refresh-1"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    clock.now += 10
    tokens.token()  # the server now refuses "refresh-1": the saved one is used
    assert server.requests[1]["refresh_token"] == rotated
    assert stored.read_text().strip() == server.refresh_token != rotated
    assert len(server.issued) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["refresh-token"], "no temporary file left"


def test_a_refused_grant_says_what_the_endpoint_said(server: AuthServer) -> None:
    server.refuse_grants = True
    with pytest.raises(TokenError) as caught:
        OAuth2Tokens(settings(server)).token()
    text = str(caught.value)
    assert server.token_url in text and "HTTP 400" in text
    assert "invalid_grant - grant revoked" in text
    assert CLIENT_SECRET not in text


def test_a_wrong_client_secret_is_a_clear_error(server: AuthServer) -> None:
    with pytest.raises(TokenError, match="HTTP 401: invalid_client"):
        OAuth2Tokens(settings(server, client_secret="wrong")).token()


def test_an_unreachable_endpoint_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        url = f"http://127.0.0.1:{port}/token"
        with pytest.raises(TokenError, match=f"cannot reach the token endpoint {url}"):
            OAuth2Tokens(settings(AuthServer(port=port))).token()


def test_a_missing_refresh_token_file_names_the_file(server: AuthServer, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    tokens = OAuth2Tokens(settings(server, grant="refresh_token", refresh_token_file=gone))
    with pytest.raises(TokenError, match=f"cannot read the refresh token from {gone}"):
        tokens.token()
    assert server.requests == []


def test_sasl_responses() -> None:
    assert sasl_response("xoauth2", "support@example.com", "T") == (
        "user=support@example.com\x01auth=Bearer T\x01\x01"
    )
    assert sasl_response("oauthbearer", "a=b,c@example.com", "T") == (
        "n,a=a=3Db=2Cc@example.com,\x01auth=Bearer T\x01\x01"
    )
    # What Gmail documents for XOAUTH2, base64 of the string above.
    encoded = base64.b64encode(
        sasl_response("xoauth2", "someuser@example.com", "ya29.vF9dft4q").encode()
    )
    assert encoded.startswith(b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5")
