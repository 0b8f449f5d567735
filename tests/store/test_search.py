"""Full-text search in the store: the migration indexes mail already stored, the database
keeps the index current as mail is stored and edited, filters and ranking (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from maildesk.store.db import create_db_engine, session_factory, transaction, upgrade
from maildesk.store.search import query_terms, search, snippet

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _ticket(engine: Engine, tid: int, subject: str, *, queue: str = "it", who: int = 1) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tickets (id, subject, status, priority, queue, type, requester_id,"
                " tags, reply_token, created_at, updated_at)"
                " VALUES (:id, :s, 'open', 'P3', :q, 'incident', :who, '[]', :tok, :t, :t)"
            ),
            {"id": tid, "s": subject, "q": queue, "who": who, "tok": f"tok{tid}", "t": AT},
        )


def _message(
    engine: Engine, tid: int, mid: str, subject: str, body: str, *, internal: bool = False
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO messages (ticket_id, direction, kind, message_id, from_addr,"
                ' from_name, "to", cc, subject, body_text, body_html, internal, created_at)'
                " VALUES (:tid, 'in', 'mail', :mid, 'carol@example.org', '', '[]', '[]', :s,"
                " :b, '', :internal, :t)"
            ),
            {"tid": tid, "mid": mid, "s": subject, "b": body, "internal": internal, "t": AT},
        )


def _contacts(engine: Engine) -> None:
    with engine.begin() as conn:
        for cid, email in ((1, "carol@example.org"), (2, "dave@example.org")):
            conn.execute(
                text("INSERT INTO contacts (id, email, name, created_at) VALUES (:i, :e, '', :t)"),
                {"i": cid, "e": email, "t": AT},
            )


def _refs(engine: Engine, query: str, **filters: object) -> list[int]:
    with transaction(session_factory(engine), readonly=True) as session:
        return [h.ticket_id for h in search(session, query, **filters)]  # type: ignore[arg-type]


@pytest.mark.empty_database
def test_the_migration_indexes_mail_already_stored_and_the_database_keeps_it_current(
    db_url: str,
) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine, "0008")
        _contacts(engine)
        _ticket(engine, 1, "VPN does not connect")
        _message(engine, 1, "<a@x>", "VPN does not connect", "Since this morning, error 809.")
        upgrade(engine)
        assert _refs(engine, "vpn") == [1]
        assert _refs(engine, "ERROR 809") == [1]  # any case, digits are words too
        _ticket(engine, 2, "Printer")
        _message(engine, 2, "<b@x>", "Printer", "The printer jams.")
        assert _refs(engine, "jams") == [2]  # stored after the migration: indexed at once
        with engine.begin() as conn:
            conn.execute(text("UPDATE messages SET body_text = 'Paper stuck' WHERE id = 2"))
        assert _refs(engine, "jams") == []
        assert _refs(engine, "paper stuck") == [2]
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM messages WHERE ticket_id = 2"))
        assert _refs(engine, "paper") == []
    finally:
        engine.dispose()


def test_every_word_must_match_subjects_rank_first_and_filters_narrow(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        _contacts(engine)
        _ticket(engine, 1, "Laptop slow")
        _message(engine, 1, "<1@x>", "Laptop slow", "Since the VPN update the laptop is slow.")
        _ticket(engine, 2, "VPN broken", queue="infra")
        _message(engine, 2, "<2@x>", "VPN broken", "The VPN client shows error 809 on update.")
        _ticket(engine, 3, "Printer", who=2)
        _message(engine, 3, "<3@x>", "Printer", "Printer offline.")
        _message(engine, 3, "<4@x>", "Re: Printer", "vpn gateway password", internal=True)
        assert _refs(engine, "vpn") == [2, 1]  # in the subject counts more
        assert _refs(engine, "vpn update") == [2, 1]
        assert _refs(engine, "vpn laptop") == [1]  # every word
        assert _refs(engine, "vpn", queue="infra") == [2]
        assert _refs(engine, "vpn", status="resolved") == []
        assert _refs(engine, "gateway") == []  # internal notes only when asked
        assert _refs(engine, "gateway", internal=True) == [3]
        assert _refs(engine, "printer", requester="Dave@example.org") == [3]
        assert _refs(engine, "printer", requester="carol@example.org") == []
        assert _refs(engine, "—!?") == []  # no words: nothing, no error
        assert _refs(engine, 'vpn" OR "x') == []  # the engine's query syntax is not passed on
    finally:
        engine.dispose()


def test_query_words_and_snippets() -> None:
    assert query_terms("VPN, vpn; Wi-Fi café_2") == ["vpn", "wi", "fi", "café", "2"]
    body = "Hello team. " + "filler " * 40 + "the VPN drops after five minutes. " + "x " * 80
    cut = snippet(body, ["vpn"])
    assert "VPN drops" in cut and cut.startswith("…") and cut.endswith("…")
    assert snippet("short text", ["none"]) == "short text"
