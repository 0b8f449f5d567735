"""The JSON API over real HTTP against a running desk: the same tickets as the CLI gives,
internal notes for admin tokens only, problem details for every error, tokens that open
nothing else and never reach the log."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from maildesk.config import HttpToken
from maildesk.http.auth import FailureLimiter, Principal, find_token
from tests.conftest import mail, run_cli, wait_until
from tests.http.conftest import ADMIN_TOKEN, READ_TOKEN, Web

PROBLEM = "application/problem+json"


def _three_tickets(web: Web) -> None:
    for subject in ("Printer on fire", "Mail server down", "VPN broken"):
        web.desk.send(mail(subject))
    web.desk.wait_tickets(3)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    return body


def test_tickets_as_the_cli_lists_and_shows_them(web_desk: Web) -> None:
    _three_tickets(web_desk)
    cli = web_desk.desk.tickets()
    with web_desk.client(ADMIN_TOKEN) as http:
        assert http.get("/api/tickets").json() == cli
        page = http.get("/api/tickets", params={"limit": 2, "offset": 1}).json()
        assert [t["ref"] for t in page] == [t["ref"] for t in cli[1:3]]
        assert page == web_desk.desk.json("tickets", "--limit", "2", "--offset", "1")
        infra = http.get("/api/tickets", params={"queue": "infra"}).json()
        assert infra == web_desk.desk.json("tickets", "--queue", "infra")
        assert [t["subject"] for t in infra] == ["Mail server down"]
        assert http.get("/api/tickets", params={"status": "closed"}).json() == []
        for ref in ("MD-2", "md-2", "2"):
            assert http.get(f"/api/tickets/{ref}").json() == web_desk.desk.ticket("MD-2")


def test_a_read_token_sees_no_internal_note_an_admin_token_does(web_desk: Web) -> None:
    web_desk.desk.send(mail("Printer on fire"))
    web_desk.desk.wait_tickets(1)
    code, out = web_desk.desk.cli(
        "ticket", "note", "MD-1", "--as", "alice@example.com", "-m", "Internal: the toner is fake"
    )
    assert code == 0, out
    with web_desk.client(ADMIN_TOKEN) as admin, web_desk.client(READ_TOKEN) as read:
        full = admin.get("/api/tickets/MD-1").json()
        public = read.get("/api/tickets/MD-1").json()
    assert any(m["internal"] and "toner is fake" in m["body_text"] for m in full["messages"])
    assert full == web_desk.desk.ticket("MD-1")
    assert "toner is fake" not in str(public)
    assert not any(m["internal"] for m in public["messages"])
    assert public["internal_hidden"] == sum(m["internal"] for m in full["messages"]) >= 1
    assert public["events"] == full["events"]


def test_every_route_but_health_and_status_needs_a_token(web_desk: Web) -> None:
    with web_desk.client(None) as anonymous, web_desk.client("not-a-token-at-all-xyz") as wrong:
        for path in ("/api/tickets", "/api/tickets/MD-1", "/api/sla", "/api/reports", "/metrics"):
            for client in (anonymous, wrong):
                response = client.get(path)
                _problem(response, 401)
                assert response.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/api/openapi.json").status_code == 200
        # The dashboard without a session is its login form, and nothing else.
        login = anonymous.get("/")
        assert login.status_code == 200 and 'name="token"' in login.text
        assert "MD-" not in login.text
        assert anonymous.get("/tickets/MD-1").status_code == 303


def test_failed_tokens_are_rate_limited_per_address(sqlite_web_desk: Web) -> None:
    with sqlite_web_desk.client("wrong-token-0000000000") as wrong:
        codes = [wrong.get("/api/tickets").status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    with sqlite_web_desk.client(READ_TOKEN) as good:
        blocked = good.get("/api/tickets")  # the address waits, whatever it tries now
        body = _problem(blocked, 429)
        assert int(blocked.headers["retry-after"]) >= 1 and "too many" in body["detail"]
        assert good.get("/healthz").status_code == 200
        assert good.post("/login", data={"token": READ_TOKEN}).status_code == 429


def test_errors_are_problem_details(web_desk: Web) -> None:
    with web_desk.client() as http:
        _problem(http.get("/api/tickets/MD-999"), 404)
        _problem(http.get("/api/tickets/XY-1"), 404)
        _problem(http.get("/api/tickets/MD-one"), 404)
        assert "limit" in _problem(http.get("/api/tickets", params={"limit": 0}), 422)["detail"]
        _problem(http.get("/api/tickets", params={"offset": -1}), 422)
        _problem(http.get("/api/reports", params={"from": "2026-11-30", "to": "2026-11-01"}), 400)
        _problem(http.get("/api/reports", params={"from": "2020-01-01", "to": "2026-01-01"}), 400)
        _problem(http.get("/api/reports", params={"from": "yesterday"}), 422)
        _problem(http.get("/no/such/page"), 404)


def test_sla_and_reports_are_the_cli_figures(web_desk: Web) -> None:
    _three_tickets(web_desk)
    with web_desk.client() as http:
        assert http.get("/api/sla").json() == web_desk.desk.json("sla")
        assert http.get("/api/sla", params={"all": "true"}).json() == web_desk.desk.json(
            "sla", "--all"
        )
        report = http.get("/api/reports").json()
        assert report["period"]["days"] == 30
        assert report["summary"]["created"] == 3
        infra = http.get("/api/reports", params={"queue": "infra"}).json()
        assert infra["summary"]["created"] == 1 and infra["period"]["queue"] == "infra"


def test_healthz_says_what_is_stored_and_waiting(web_desk: Web) -> None:
    with web_desk.client(None) as http:
        health = http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "store": "ok",
        "backlog": 0,
        "oldest_pending_seconds": None,
        "quarantined": 0,
        "mailboxes": {},
    }


def test_login_sets_a_strict_httponly_session_cookie_never_the_token(
    sqlite_web_desk: Web,
) -> None:
    with sqlite_web_desk.client(None) as browser:
        refused = browser.post("/login", data={"token": "guess-guess-guess-guess"})
        assert refused.status_code == 401 and "not valid" in refused.text
        assert "set-cookie" not in refused.headers
        cross = browser.post(
            "/login", data={"token": READ_TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403 and "set-cookie" not in cross.headers
        done = browser.post("/login", data={"token": READ_TOKEN})
        assert done.status_code == 303 and done.headers["location"] == "/"
        cookie = done.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert READ_TOKEN not in cookie
        overview = browser.get("/")
        assert "Log out" in overview.text and "ops (read)" in overview.text
        assert overview.headers["content-security-policy"].startswith("default-src 'none'")
        browser.post("/logout")
        assert 'name="token"' in browser.get("/").text


def test_tokens_never_reach_the_log(sqlite_web_desk: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with sqlite_web_desk.client(ADMIN_TOKEN) as http, sqlite_web_desk.client(None) as anon:
        http.get("/api/tickets")
        http.get("/metrics")
        anon.post("/login", data={"token": ADMIN_TOKEN})
        anon.post("/login", data={"token": READ_TOKEN + "x"})
        anon.get("/api/tickets", headers={"Authorization": f"Bearer {READ_TOKEN}y"})
    wait_until(lambda: "wrong token" in caplog.text)
    for secret in (ADMIN_TOKEN, READ_TOKEN):
        assert secret not in caplog.text


def test_a_daemon_without_http_listens_on_no_http_port(desk: Any) -> None:
    assert desk.daemon.http is None


def test_http_config_errors_name_their_place(write_config: Any, tmp_path: Any) -> None:
    config = write_config(
        f"sqlite:///{tmp_path / 'md.db'}",
        extra="""
        [http]
        listen = "127.0.0.1:99999"
        colour = "blue"
        tokens = [
          { name = "ops", token = "short", role = "read" },
          { name = "ops", token_env = "MAILDESK_TEST_UNSET_TOKEN", role = "boss" },
          { token = "0123456789abcdef0123" },
        ]
        """,
    )
    code, out = run_cli("check-config", "--config", str(config))
    assert code == 2, out
    for place, what in [
        ("[http] key 'listen'", "port must be"),
        ("[http] key 'colour'", "unknown key"),
        ("[http] tokens 'ops' key 'token'", "at least 16 characters"),
        ("[http] tokens 'ops' key 'token_env'", "MAILDESK_TEST_UNSET_TOKEN unset"),
        ("[http] tokens 'ops' key 'role'", "must be one of read, admin"),
        ("[http] tokens #3 key 'name'", "is required"),
        ("[http] key 'tokens'", "duplicate token name 'ops'"),
    ]:
        lines = [line for line in out.splitlines() if f"{config}: {place}: " in line]
        assert any(what in line for line in lines), (place, out)


def test_the_failure_limit_forgets_after_its_window() -> None:
    now = [1000.0]
    limiter = FailureLimiter(limit=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.blocked("192.0.2.1") == 0
        limiter.failed("192.0.2.1")
    assert limiter.blocked("192.0.2.1") == 60.0
    assert limiter.blocked("192.0.2.2") == 0, "another address is not held"
    now[0] += 59.0
    assert limiter.blocked("192.0.2.1") == 1.0
    now[0] += 1.5
    assert limiter.blocked("192.0.2.1") == 0


def test_a_token_is_found_only_whole() -> None:
    tokens = (
        HttpToken(name="ops", secret=READ_TOKEN, role="read"),
        HttpToken(name="lead", secret=ADMIN_TOKEN, role="admin"),
    )
    assert find_token(tokens, ADMIN_TOKEN) == Principal("lead", "admin")
    assert find_token(tokens, READ_TOKEN) == Principal("ops", "read")
    for wrong in ("", READ_TOKEN[:-1], READ_TOKEN + "x", READ_TOKEN.upper(), "\udcff"):
        assert find_token(tokens, wrong) is None
