"""IMAP mailboxes with `auth = "oauth2"` against a real Dovecot whose oauth2 passdb checks
each token at a local introspection endpoint (tests/oauth2_server.py, which also issues the
tokens): a login with a token, renewal before a token expires in the middle of IDLE, a
revoked token replaced, and a refused grant logged and retried without the watcher dying."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from maildesk.mail import oauth2
from tests.conftest import (
    Desk,
    Sink,
    free_port,
    run_maildesk,
    running_desk,
    skip_or_fail,
    wait_until,
)
from tests.ingest.test_imap import USER, Dovecot
from tests.oauth2_server import CLIENT_ID, CLIENT_SECRET, AuthServer, auth_server


@dataclass
class OAuthDovecot(Dovecot):
    introspection_url: str = ""

    def start(self) -> None:
        with mock.patch.dict(os.environ, OAUTH2_INTROSPECTION_URL=self.introspection_url):
            super().start()

    def log(self) -> str:
        return (Path(self.directory) / "dovecot.log").read_text(errors="replace")

    def kick(self, user: str) -> None:
        """Drop the user's IMAP sessions, as a server does that ends them."""
        conf = str(Path(self.directory) / "dovecot.conf")
        subprocess.run(["doveadm", "-c", conf, "kick", user], check=True, capture_output=True)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AuthServer]:
    with auth_server(user=USER) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot(endpoint: AuthServer) -> Iterator[OAuthDovecot]:
    """One Dovecot for the module (named like tests/conftest.py's slow fixtures)."""
    if not Path("/usr/sbin/dovecot").exists():
        skip_or_fail("Dovecot is not installed (apt-get install dovecot-imapd)")
    directory = tempfile.mkdtemp(prefix="maildesk-dovecot-oauth2-")  # world-searchable parents
    server = OAuthDovecot(directory, free_port(), endpoint.introspection_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server(
    endpoint: AuthServer, dovecot: OAuthDovecot, monkeypatch: pytest.MonkeyPatch
) -> AuthServer:
    """The endpoint as new, an empty INBOX, and no token cached from an earlier test."""
    fresh = AuthServer(user=USER, port=endpoint.port)
    endpoint.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "lock"})
    monkeypatch.setattr(oauth2, "_providers", {})
    c = dovecot.client()
    try:
        c.select_folder("INBOX")
        c.delete_messages(c.search("ALL"))
        c.expunge()
    finally:
        c.logout()
    return endpoint


@pytest.fixture
def db(tmp_path: Path, sqlite_template: Path) -> str:
    shutil.copyfile(sqlite_template, tmp_path / "maildesk.db")
    return f"sqlite:///{tmp_path / 'maildesk.db'}"


def oauth_mailbox(dovecot: Dovecot, server: AuthServer, *, idle: bool = True, **keys: str) -> str:
    oauth = {"token_url": server.token_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    table = ", ".join(f'{k} = "{v}"' for k, v in {**oauth, **keys}.items())
    return f"""
[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = "{USER}"
auth = "oauth2"
oauth2 = {{ {table} }}
idle = {str(idle).lower()}
poll_interval = "60s"
"""


def _subjects(desk: Desk) -> set[str]:
    return {t["subject"] for t in desk.tickets()}


def test_watcher_logs_in_again_before_its_token_expires_in_idle(
    dovecot: OAuthDovecot,
    server: AuthServer,
    db: str,
    sink: Sink,
    write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="maildesk.ingest.imap")
    server.expires_in = 3.0
    config = write_config(db, sink.port, extra=oauth_mailbox(dovecot, server))
    with running_desk(config, sink) as desk:
        dovecot.append("Before the token expires")
        wait_until(lambda: "Before the token expires" in _subjects(desk))
        first = server.issued[0]
        # Nothing but the token's lifetime ends this IDLE (poll_interval is 60s).
        wait_until(lambda: len(server.issued) >= 2 and server.logins_with(1) >= 1)
        wait_until(lambda: server.active(first.token) is None)
        dovecot.append("After the token expired")
        wait_until(lambda: "After the token expired" in _subjects(desk))
    assert "OAuth2 token due for renewal; logging in again" in caplog.text
    assert all(active for _, active in server.introspected), "never logged in on a dead token"
    assert all(i.grant == "client_credentials" for i in server.issued)
    assert "method=XOAUTH2" in dovecot.log()


def test_a_dropped_session_logs_in_again_with_a_fresh_token_for_a_revoked_one(
    dovecot: OAuthDovecot,
    server: AuthServer,
    db: str,
    sink: Sink,
    write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = write_config(db, sink.port, extra=oauth_mailbox(dovecot, server))
    with running_desk(config, sink) as desk:
        dovecot.append("Before the kick")
        wait_until(lambda: "Before the kick" in _subjects(desk))
        server.revoke()
        dovecot.kick(USER)
        wait_until(lambda: "retrying with backoff" in caplog.text)
        dovecot.append("After the kick")
        wait_until(lambda: "After the kick" in _subjects(desk), timeout=15)
    assert len(server.issued) == 2
    assert (server.issued[0].token, False) in server.introspected
    assert server.logins_with(1) >= 1


def test_a_revoked_token_is_replaced_and_a_refused_login_is_clear(
    dovecot: OAuthDovecot, server: AuthServer, db: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(
        db, extra=oauth_mailbox(dovecot, server, idle=False, mechanism="oauthbearer")
    )
    dovecot.append("First")

    def poll() -> tuple[int, str]:  # the token cached by one poll is tried by the next
        ran = run_maildesk("poll", "--config", str(config), keep_caches=True)
        return ran.returncode, ran.stdout + ran.stderr

    code, out = poll()
    assert code == 0 and "1 new message(s)" in out, out

    server.revoke()  # the cached token is refused at the next login: a fresh one is asked for
    dovecot.append("Second")
    code, out = poll()
    assert code == 0 and "1 new message(s)" in out, out
    assert len(server.issued) == 2
    assert server.introspected[-2:] == [
        (server.issued[0].token, False),
        (server.issued[1].token, True),
    ]
    assert "method=OAUTHBEARER" in dovecot.log()

    server.refuse_logins = True
    code, out = poll()
    assert code != 0
    assert "mailbox 'support'" in out and "login refused" in out


def test_a_refused_grant_is_logged_and_retried_until_it_works_again(
    dovecot: OAuthDovecot,
    server: AuthServer,
    db: str,
    sink: Sink,
    write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.refuse_grants = True
    config = write_config(db, sink.port, extra=oauth_mailbox(dovecot, server))
    with running_desk(config, sink) as desk:
        wait_until(lambda: "grant revoked" in caplog.text)
        [line] = [r.getMessage() for r in caplog.records if "grant revoked" in r.getMessage()]
        assert line.startswith("mailbox 'support' (support@example.com@127.0.0.1:")
        assert "no OAuth2 token: token endpoint" in line and "HTTP 400: invalid_grant" in line
        assert line.endswith("retrying with backoff")
        asked = len(server.requests)
        wait_until(lambda: len(server.requests) > asked)  # retried, logged once
        server.refuse_grants = False
        dovecot.append("After the grant came back")
        wait_until(lambda: "After the grant came back" in _subjects(desk), timeout=15)
