"""Alert state in the store, on both databases: one open row per monitor and key (a unique
partial index), and on PostgreSQL an alert key held by one transaction until it ends, so a
second daemon finds the first one's incident instead of opening its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.store import repo
from maildesk.store.db import (
    create_db_engine,
    current_revision,
    head_revision,
    session_factory,
    transaction,
    upgrade,
)
from maildesk.store.models import Ticket
from tests.conftest import wait_until

NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(db_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def _ticket(session: Session, subject: str) -> Ticket:
    requester = repo.contact(session, "nagios@mon.example.com") or repo.new_contact(
        session, "nagios@mon.example.com", "", NOW
    )
    ticket = Ticket(
        requester=requester,
        subject=subject,
        status="new",
        priority="P1",
        queue="infra",
        type="incident",
        reply_token=subject.replace(" ", "-"),
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(ticket)
    session.flush()
    return ticket


def test_one_open_alert_per_key(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        first = _ticket(s, "web1 HTTP")
        repo.new_alert(s, first, "nagios", "web1/HTTP", "CRITICAL", NOW)
    with pytest.raises(IntegrityError), transaction(sessions) as s:
        repo.new_alert(s, _ticket(s, "web1 HTTP again"), "nagios", "web1/HTTP", "CRITICAL", NOW)
    with transaction(sessions) as s:
        row = repo.latest_alert(s, "nagios", "web1/HTTP")
        assert row is not None and row.ticket_id == first.id
        row.is_open = False  # recovered: the key may open a new incident
        s.flush()
        second = _ticket(s, "web1 HTTP later")
        repo.new_alert(s, second, "nagios", "web1/HTTP", "CRITICAL", NOW)
        repo.new_alert(s, second, "zabbix", "web1/HTTP", "High", NOW)  # another monitor's
    with transaction(sessions, readonly=True) as s:
        newest = repo.latest_alert(s, "nagios", "web1/HTTP")
        assert newest is not None and newest.ticket_id == second.id
        assert repo.ticket_alert(s, second.id) is not None


# SQLite serialises writers; the key lock is PostgreSQL's.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_locked_alert_key_waits_for_the_holder(
    sessions: sessionmaker[Session], db_url: str
) -> None:
    holding, release = threading.Event(), threading.Event()
    seen: list[int | None] = []

    def first() -> None:
        with transaction(sessions) as s:
            repo.lock_alert_key(s, "nagios", "web1/HTTP")
            repo.new_alert(s, _ticket(s, "first"), "nagios", "web1/HTTP", "CRITICAL", NOW)
            holding.set()
            assert release.wait(30)

    def second() -> None:
        with transaction(sessions) as s:
            repo.lock_alert_key(s, "nagios", "web1/HTTP")
            row = repo.latest_alert(s, "nagios", "web1/HTTP")
            seen.append(row.ticket_id if row is not None else None)

    a = threading.Thread(target=first)
    a.start()
    assert holding.wait(30)
    b = threading.Thread(target=second)
    b.start()
    with transaction(sessions, readonly=True) as s:

        def waiting() -> bool:
            query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            return bool(s.scalar(text(query)))

        wait_until(waiting, timeout=10)
    assert seen == []  # still waiting for the first transaction
    release.set()
    a.join(30)
    b.join(30)
    assert len(seen) == 1 and seen[0] is not None  # it found the first one's incident


@pytest.mark.empty_database
def test_upgrade_to_problems_and_alerts_keeps_tickets(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO contacts (email, name, created_at)"
                    " VALUES ('c@example.org', 'C', :t)"
                ),
                {"t": NOW},
            )
            conn.execute(
                text(
                    "INSERT INTO tickets (subject, status, priority, queue, type, requester_id,"
                    " tags, reply_token, created_at, updated_at, sla_consumed_us)"
                    " VALUES ('Old', 'open', 'P2', 'it', 'problem', 1, '[]', 't', :t, :t, 0)"
                ),
                {"t": NOW},
            )
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            row = conn.execute(text("SELECT subject, known_error FROM tickets")).one()
            assert tuple(row) == ("Old", None)
            assert conn.execute(text("SELECT count(*) FROM alerts")).scalar() == 0
    finally:
        engine.dispose()
