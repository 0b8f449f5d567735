"""Schema migrations: a database made by an older release is upgraded in place, data kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from maildesk.store.db import create_db_engine, current_revision, upgrade

pytestmark = pytest.mark.empty_database


def test_upgrade_from_the_first_schema_keeps_data(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine, "0001")
        assert current_revision(engine) == "0001"
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO contacts (email, name, created_at) VALUES (:e, :n, :t)"),
                {"e": "carol@example.org", "n": "Carol", "t": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        upgrade(engine)
        upgrade(engine)  # idempotent
        assert current_revision(engine) != "0001"
        with engine.connect() as conn:
            row = conn.execute(text("SELECT email, name, bounced_at FROM contacts")).one()
        assert tuple(row) == ("carol@example.org", "Carol", None)
    finally:
        engine.dispose()


def test_head_revision_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from maildesk.store.db import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_upgrade_of_a_desk_with_tickets_keeps_them_and_everything_pointing_at_them(
    db_url: str,
) -> None:
    """The migrations that rebuild `tickets` (SQLite's batch mode copies the table) must
    work while events, outbox entries and raw messages point at its rows."""
    engine = create_db_engine(db_url)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO contacts (id, email, name, created_at) VALUES (1, :e, '', :t)"),
                {"e": "carol@example.org", "t": at},
            )
            for ticket_id, parent in ((1, None), (2, 1)):
                conn.execute(
                    text(
                        "INSERT INTO tickets (id, subject, status, priority, queue, type,"
                        " requester_id, tags, reply_token, created_at, updated_at, parent_id)"
                        " VALUES (:id, 'Printer', 'open', 'P3', 'general', 'incident', 1,"
                        " '[]', :token, :t, :t, :parent)"
                    ),
                    {"id": ticket_id, "token": f"token{ticket_id}", "t": at, "parent": parent},
                )
            conn.execute(
                text(
                    "INSERT INTO events (ticket_id, at, kind, actor, data)"
                    " VALUES (2, :t, 'created', 'carol@example.org', '{}')"
                ),
                {"t": at},
            )
            conn.execute(
                text(
                    "INSERT INTO outbox (ticket_id, kind, message_id, sender, recipients,"
                    " subject, raw, status, attempts, next_attempt_at, created_at)"
                    " VALUES (2, 'ack', '<a@x>', 'support@example.com', '[]', 's', :raw,"
                    " 'sent', 1, :t, :t)"
                ),
                {"raw": b"x", "t": at},
            )
        upgrade(engine)
        with engine.connect() as conn:
            tickets = conn.execute(text("SELECT id, parent_id FROM tickets ORDER BY id")).all()
            events = conn.execute(text("SELECT ticket_id, kind FROM events")).all()
            outbox = conn.execute(text("SELECT ticket_id FROM outbox")).all()
        assert [tuple(t) for t in tickets] == [(1, None), (2, 1)]
        assert [tuple(e) for e in events] == [(2, "created")]
        assert [tuple(o) for o in outbox] == [(2,)]
    finally:
        engine.dispose()


def test_upgrade_moves_the_bytes_of_stored_messages_to_raw_bodies(db_url: str) -> None:
    """0017: every raw message keeps its bytes, now in raw_bodies, and its messages."""
    from sqlalchemy import select

    from maildesk.store.db import session_factory, transaction
    from maildesk.store.models import RawMessage

    engine = create_db_engine(db_url)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    stored = {1: b"From: a@example.org\r\n\r\none", 2: bytes(range(256)) * 5000, 3: b""}
    try:
        upgrade(engine, "0016")
        with engine.begin() as conn:
            for raw_id, raw in stored.items():
                conn.execute(
                    text(
                        "INSERT INTO raw_messages (id, received_at, origin, envelope_to, size,"
                        " sha256, raw, status) VALUES (:id, :t, 'smtp', '[]', :n, 'x', :raw,"
                        " 'processed')"
                    ),
                    {"id": raw_id, "t": at, "n": len(raw), "raw": raw},
                )
        upgrade(engine)
        with transaction(session_factory(engine), readonly=True) as session:
            rows = session.scalars(select(RawMessage).order_by(RawMessage.id)).all()
            assert {r.id: r.raw for r in rows} == stored
            assert session.scalar(select(RawMessage.raw).where(RawMessage.id == 2)) == stored[2]
    finally:
        engine.dispose()
