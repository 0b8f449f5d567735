"""`maildesk search` gives the same results for the same mail on SQLite and PostgreSQL:
the same mail goes over real SMTP into a desk on each, then the same queries are compared
(refs, order, scores and snippets)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agents import open_ticket, reply
from tests.conftest import PgDatabases, Sink, mail, run_cli, running_desk, skip_or_fail

MAIL = [
    ("VPN does not connect", "Since this morning the VPN client says error 809."),
    ("Laptop slow after update", "Since the VPN update my laptop is very slow."),
    ("Printer on floor 2", "The printer prints blank pages. Toner is new."),
    ("VPN again", "The VPN disconnects every five minutes on hotel Wi-Fi."),
    ("Mail on my phone", "Outlook on my phone keeps asking for my password."),
    ("Password expired", "My password expired and the VPN rejects the new one."),
    ("Umlaute im Betreff: Drucker streikt", "Der Drucker druckt nicht, Fehler E-42."),
]
QUERIES = [
    "vpn",
    "vpn update",
    "password",
    "printer toner",
    "809",
    "drucker",
    "e 42",
    "phone outlook password",
    "nothing matches this",
]


def _results(config: Path, query: str, *options: str) -> list[dict[str, Any]]:
    code, out = run_cli("search", query, "--json", *options, "--config", str(config))
    assert code == 0, out
    result: list[dict[str, Any]] = json.loads(out)
    return result


def _fill(config: Path, sink: Sink) -> dict[str, list[dict[str, Any]]]:
    with running_desk(config, sink) as desk:
        for i, (subject, body) in enumerate(MAIL):
            desk.send(mail(subject, body, sender=f"User {i} <user{i}@example.org>"))
            desk.wait_tickets(i + 1)
        opened = open_ticket(desk, "Wi-Fi drops", "The Wi-Fi drops in room 105.")
        reply(desk, opened.notice, "#note the vpn gateway was rebooted at 9:00")
        desk.wait_processed(len(MAIL) + 2)
        found = {q: _results(config, q) for q in QUERIES}
        found["vpn --internal"] = _results(config, "vpn", "--internal")
        found["vpn --requester"] = _results(config, "vpn", "--requester", "user1@example.org")
        found["vpn --queue infra"] = _results(config, "vpn", "--queue", "infra")
        return found


def test_search_gives_the_same_results_on_sqlite_and_postgresql(
    tmp_path: Path,
    sink: Sink,
    write_config: Callable[..., Path],
    pg_reason: str | None,
    request: pytest.FixtureRequest,
) -> None:
    if pg_reason:
        skip_or_fail(pg_reason)
    pg: PgDatabases = request.getfixturevalue("pg_databases")
    lite_config = write_config(f"sqlite:///{tmp_path / 'lite.db'}", sink.port)
    on_sqlite = _fill(lite_config, sink)
    name = pg.migrated()
    try:
        on_postgres = _fill(write_config(pg.url(name), sink.port), sink)
    finally:
        pg.give_back(name)
    assert on_postgres == on_sqlite
    # In the subject counts more: the two with VPN in theirs come first.
    assert {r["ref"] for r in on_sqlite["vpn"][:2]} == {"MD-1", "MD-4"}
    assert len(on_sqlite["vpn"]) == 4
    assert len(on_sqlite["vpn --internal"]) == 5  # the note is found only with --internal
    assert on_sqlite["nothing matches this"] == []
    assert [r["ref"] for r in on_sqlite["drucker"]] == ["MD-7"]
