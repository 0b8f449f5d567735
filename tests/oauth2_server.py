"""A small OAuth2 authorisation server for tests, on 127.0.0.1 (stdlib http.server in a thread).

`POST /token` grants access tokens by client credentials or by refresh token (RFC 6749 4.4
and 6), rotating the refresh token when asked; `POST /introspect` answers RFC 7662 token
introspection, which Dovecot's oauth2 passdb asks (introspection_mode = post). Tokens
expire after `expires_in` seconds; `revoke()` makes every issued token inactive.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

CLIENT_ID, CLIENT_SECRET = "maildesk-test", "s3cret"


@dataclass
class Issued:
    token: str
    user: str
    expires_at: float
    grant: str


@dataclass
class AuthServer:
    """The server's state: what it issued, what it was asked, and how it answers."""

    user: str = "support@example.com"
    expires_in: float = 3600.0
    refresh_token: str = "refresh-1"
    rotate: bool = False  # hand out a new refresh token with each refresh
    refuse_grants: bool = False  # answer every token request 400 invalid_grant
    refuse_logins: bool = False  # introspection calls every token inactive
    port: int = 0
    issued: list[Issued] = field(default_factory=list)
    introspected: list[tuple[str, bool]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/introspect"

    def revoke(self) -> None:
        """Every token issued so far becomes inactive."""
        with self.lock:
            for item in self.issued:
                item.expires_at = 0.0

    def active(self, token: str) -> Issued | None:
        """The issued token, if it is known and still active."""
        with self.lock:
            for item in self.issued:
                if secrets.compare_digest(item.token, token):
                    return item if time.monotonic() < item.expires_at else None
        return None

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint's answer to one request."""
        with self.lock:
            self.requests.append(form)
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return 401, {"error": "invalid_client"}
            kind = form.get("grant_type", "")
            if self.refuse_grants:
                return 400, {"error": "invalid_grant", "error_description": "grant revoked"}
            if kind == "refresh_token" and form.get("refresh_token") != self.refresh_token:
                return 400, {"error": "invalid_grant", "error_description": "unknown refresh token"}
            if kind not in ("client_credentials", "refresh_token"):
                return 400, {"error": "unsupported_grant_type"}
            token = f"at-{len(self.issued) + 1}-{secrets.token_hex(8)}"
            self.issued.append(Issued(token, self.user, time.monotonic() + self.expires_in, kind))
            body: dict[str, Any] = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
            if kind == "refresh_token" and self.rotate:
                self.refresh_token = f"refresh-{len(self.issued) + 1}"
                body["refresh_token"] = self.refresh_token
            return 200, body

    def introspect(self, form: dict[str, str]) -> dict[str, Any]:
        """RFC 7662: active and whose, or inactive."""
        item = None if self.refuse_logins else self.active(form.get("token", ""))
        with self.lock:
            self.introspected.append((form.get("token", ""), item is not None))
        if item is None:
            return {"active": False}
        return {"active": True, "username": item.user, "exp": int(time.time() + 60)}

    def logins_with(self, grant_index: int) -> int:
        """How often the n-th issued token (from 0) was introspected while active."""
        token = self.issued[grant_index].token
        with self.lock:
            return sum(1 for t, ok in self.introspected if t == token and ok)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("ascii", "replace")
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        state = self.server.state
        if self.path == "/token":
            status, body = state.grant(form)
        elif self.path == "/introspect":
            status, body = 200, state.introspect(form)
        else:
            status, body = 404, {"error": "not_found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the state records what was asked


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: AuthServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def auth_server(**settings: Any) -> Iterator[AuthServer]:
    """An AuthServer listening on 127.0.0.1 until the block ends."""
    state = AuthServer(**settings)
    server = _Server(state)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
