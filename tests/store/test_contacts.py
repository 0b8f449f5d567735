"""Contacts with several addresses in the store, on both databases: an address merged into
a contact finds that contact, merges chain and repeat harmlessly, tickets follow; and a
database from before contacts could merge is upgraded with its rows kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
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
from maildesk.store.models import Contact, Ticket

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(db_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def _ticket(session: Session, requester: Contact, subject: str) -> Ticket:
    ticket = Ticket(
        requester=requester,
        subject=subject,
        status="new",
        priority="P3",
        queue="it",
        type="incident",
        reply_token=subject.replace(" ", "-"),
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(ticket)
    session.flush()
    return ticket


def test_merges_chain_follow_and_move_tickets(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        a, b, c = (repo.new_contact(s, f"{n}@example.org", n, NOW) for n in "abc")
        s.flush()
        _ticket(s, b, "b one")
        _ticket(s, c, "c one")
        assert repo.merge_contacts(s, b, c, "cli:test", NOW)[0] == ["c@example.org"]
        addresses, moved = repo.merge_contacts(s, a, b, "cli:test", NOW)
        assert addresses == ["b@example.org", "c@example.org"]  # b's own, and c merged into it
        assert sorted(t.subject for t in moved) == ["b one", "c one"]
        assert repo.merge_contacts(s, a, a, "cli:test", NOW) == ([], [])
    with transaction(sessions, readonly=True) as s:
        found = repo.contact(s, "c@example.org")
        assert found is not None and found.email == "a@example.org"
        assert repo.contact_addresses(s, found) == [
            "a@example.org",
            "b@example.org",
            "c@example.org",
        ]
        assert {t.subject for t in repo.contact_tickets(s, found)} == {"b one", "c one"}
        [(listed, addresses, count)] = repo.list_contacts(s)
        assert (listed.email, addresses, count) == (
            "a@example.org",
            ["a@example.org", "b@example.org", "c@example.org"],
            2,
        )
        own = s.scalars(
            text("SELECT email FROM contacts WHERE merged_by = 'cli:test' ORDER BY email")
        ).all()
        assert own == ["b@example.org", "c@example.org"]


@pytest.mark.empty_database
def test_upgrade_to_merged_contacts_keeps_contacts_and_tickets(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine, "0005")
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
                    " VALUES ('Old', 'open', 'P2', 'it', 'incident', 1, '[]', 't', :t, :t, 0)"
                ),
                {"t": NOW},
            )
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            contact = conn.execute(text("SELECT email, merged_into_id FROM contacts")).one()
            ticket = conn.execute(
                text("SELECT priority, impact, urgency, organisation FROM tickets")
            ).one()
        assert tuple(contact) == ("c@example.org", None)
        assert tuple(ticket) == ("P2", None, None, None)
    finally:
        engine.dispose()
