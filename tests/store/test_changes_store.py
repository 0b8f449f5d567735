"""The change calendar's queries, on both databases: the open P1 incidents on CIs (open,
P1, incidents only), and the calendar loading every change's CI links in one query, so
its cost in statements does not grow with the number of changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from maildesk.store import repo
from maildesk.store.changes import open_p1_incidents, scheduled_changes
from maildesk.store.cis import link_ci
from maildesk.store.db import create_db_engine, session_factory, transaction
from maildesk.store.models import Ticket

NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def _ticket(session: Session, n: int, cis: list[str], **values: object) -> Ticket:
    requester = repo.contact(session, "carol@example.org") or repo.new_contact(
        session, "carol@example.org", "", NOW
    )
    fields = {"status": "open", "priority": "P3", "queue": "infra", "type": "incident", **values}
    ticket = Ticket(
        requester=requester,
        subject=f"ticket {n}",
        reply_token=f"token-{n}",
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )
    session.add(ticket)
    session.flush()
    for ci in cis:
        link_ci(session, ticket, ci, ["email"], "agent", "alice@example.com", NOW)
    return ticket


def test_only_open_p1_incidents_on_the_cis_count(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        p1 = _ticket(session, 1, ["mail01", "web1"], priority="P1")
        other = _ticket(session, 2, ["web1"], priority="P1", status="pending")
        _ticket(session, 3, ["mail01"], priority="P1", status="resolved")
        _ticket(session, 4, ["mail01"], priority="P2")
        _ticket(session, 5, ["mail01"], priority="P1", type="request")
        _ticket(session, 6, ["core-sw1"], priority="P1", status="merged")
        _ticket(session, 7, ["db1"], priority="P1")
        ids = (p1.id, other.id)
    with transaction(sessions) as session:
        assert open_p1_incidents(session, ["mail01", "web1", "core-sw1", "printer9"]) == {
            "mail01": [ids[0]],
            "web1": [ids[0], ids[1]],
        }
        assert open_p1_incidents(session, []) == {}


def _statements(engine: Engine, sessions: sessionmaker[Session]) -> int:
    """The statements one look at the calendar costs: the changes, their links, the P1s."""
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with transaction(sessions) as session:
            found = scheduled_changes(session, NOW, NOW + timedelta(days=30))
            on_ci = open_p1_incidents(session, {x.ci for t in found for x in t.ci_links})
            assert [x.ci for x in found[0].ci_links] == ["mail01", "ci-0"]
            assert on_ci == {"mail01": [found[0].id - 1]}
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def _changes(sessions: sessionmaker[Session], start: int, count: int) -> None:
    with transaction(sessions) as session:
        for n in range(start, start + count):
            if n == 0:
                _ticket(session, 1000, ["mail01"], priority="P1")  # the P1 on mail01
            at = NOW + timedelta(days=1, hours=n)
            _ticket(
                session,
                n,
                ["mail01", f"ci-{n}"],
                type="change",
                change_start=at,
                change_end=at + timedelta(hours=1),
            )


def test_the_calendar_loads_links_in_one_query(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _changes(sessions, 0, 2)
    few = _statements(engine, sessions)
    _changes(sessions, 2, 40)
    assert _statements(engine, sessions) == few
