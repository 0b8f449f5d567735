"""Full-text search over tickets' mail: the database's own index filters, Python ranks.

The index (migration 0009) is SQLite FTS5 over `messages` (kept by triggers) or, on
PostgreSQL, a generated `tsvector` column with a GIN index: both are updated by the
database in the transaction that stores or edits a message, whatever path stores it.

The same data gives the same results on both engines. The engines tokenise differently
and rank differently, so neither decides the answer: a query is split into words here
(letters and digits, lowercased, at most MAX_TERMS), the engine returns the messages
holding every word (PostgreSQL sees the text already split the same way, see PG_DOCUMENT),
each candidate is checked again with the same Python tokeniser, and the score is BM25
computed here (subject words count TITLE_WEIGHT times) from the same counts on either
engine. A ticket scores as its best message; ties go to the newer ticket.
Only mail that came in (requesters', agents' replies and notes) is searched, not the
desk's own notices; internal notes only when asked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from maildesk.store.models import Contact, Message, Ticket

MAX_TERMS = 8
CANDIDATES = 2000  # messages ranked per query at most (the newest that match)
SUBJECT_CHARS = 1000
BODY_CHARS = 200_000  # a tsvector holds at most 1 MB: what is indexed of a body
TITLE_WEIGHT = 2.0
K1, B = 1.2, 0.75
_WORD = re.compile(r"[^\W_]+")

SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE messages_fts USING fts5(subject, body_text, content='messages', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, subject, body_text) "
    "VALUES (new.id, new.subject, new.body_text); END",
    "CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, subject, body_text) "
    "VALUES ('delete', old.id, old.subject, old.body_text); END",
    "CREATE TRIGGER messages_fts_au AFTER UPDATE OF subject, body_text ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, subject, body_text) "
    "VALUES ('delete', old.id, old.subject, old.body_text); "
    "INSERT INTO messages_fts(rowid, subject, body_text) "
    "VALUES (new.id, new.subject, new.body_text); END",
)
# Lowercased, everything but letters and digits made a space: PostgreSQL's parser then
# sees the words the Python tokeniser sees (no hosts, e-mail addresses or hyphen parts).
PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(lower("
    f"left(coalesce(subject, ''), {SUBJECT_CHARS}) || ' ' || "
    f"left(coalesce(body_text, ''), {BODY_CHARS})), '[^[:alnum:]]+', ' ', 'g'))"
)


@dataclass(frozen=True)
class SearchHit:
    """One ticket found: its best message's score and a snippet of it."""

    ticket_id: int
    subject: str
    status: str
    queue: str
    requester: str
    score: float
    snippet: str
    matches: int  # its messages that match


def words(value: str) -> list[str]:
    """The words search knows: runs of letters and digits, lowercased."""
    return _WORD.findall(value.lower())


def query_terms(query: str) -> list[str]:
    return list(dict.fromkeys(words(query)))[:MAX_TERMS]


def search(
    session: Session,
    query: str,
    *,
    queue: str | None = None,
    status: str | None = None,
    requester: str | None = None,
    internal: bool = False,
    limit: int = 20,
) -> list[SearchHit]:
    """Tickets whose mail holds every word of `query`, best first."""
    terms = query_terms(query)
    if not terms:
        return []
    rows = _candidates(session, terms, queue, status, requester, internal)
    docs = [(row, _tf(row[2], row[3], terms)) for row in rows]
    docs = [(row, tf) for row, tf in docs if all(tf[t] for t in terms)]
    if not docs:
        return []
    idf = _idf(session, terms)
    avg = sum(tf[""] for _, tf in docs) / len(docs)
    best: dict[int, SearchHit] = {}
    for row, tf in docs:
        score = round(_bm25(tf, idf, avg), 6)
        hit = best.get(row[1])
        count = hit.matches + 1 if hit else 1
        if hit is None or score > hit.score:
            best[row[1]] = SearchHit(
                row[1], row[4], row[5], row[6], row[7], score, snippet(row[3], terms), count
            )
        else:
            best[row[1]] = replace(hit, matches=count)
    return sorted(best.values(), key=lambda h: (-h.score, -h.ticket_id))[:limit]


def _candidates(
    session: Session,
    terms: Sequence[str],
    queue: str | None,
    status: str | None,
    requester: str | None,
    internal: bool,
) -> list[tuple[Any, ...]]:
    """The newest CANDIDATES incoming messages the engine finds holding every term."""
    stmt = (
        select(
            Message.id,
            Message.ticket_id,
            Message.subject,
            Message.body_text,
            Ticket.subject,
            Ticket.status,
            Ticket.queue,
            Contact.email,
        )
        .join(Ticket, Ticket.id == Message.ticket_id)
        .join(Contact, Contact.id == Ticket.requester_id)
        .where(_matches(session, terms), Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(CANDIDATES)
    )
    if not internal:
        stmt = stmt.where(Message.internal.is_(False))
    if queue:
        stmt = stmt.where(Ticket.queue == queue)
    if status:
        stmt = stmt.where(Ticket.status == status)
    if requester:
        stmt = stmt.where(Contact.email == requester.strip().lower())
    return [tuple(row) for row in session.execute(stmt)]


def _matches(session: Session, terms: Sequence[str]) -> ColumnElement[bool]:
    """The engine's filter: messages holding every term."""
    if session.get_bind().dialect.name == "sqlite":
        fts = text("SELECT rowid FROM messages_fts WHERE messages_fts MATCH :fts")
        fts = fts.bindparams(fts=" ".join(f'"{t}"' for t in terms))
        return Message.id.in_(fts.columns(literal_column("rowid")))
    tsquery = func.plainto_tsquery(literal_column("'simple'::regconfig"), " ".join(terms))
    return literal_column("messages.search_tsv").op("@@")(tsquery)


def _idf(session: Session, terms: Sequence[str]) -> dict[str, float]:
    """BM25's inverse document frequency of each term over all stored mail."""
    total = session.scalar(select(func.count()).select_from(Message)) or 0
    idf = {}
    for term in terms:
        df = session.scalar(
            select(func.count()).select_from(Message).where(_matches(session, [term]))
        )
        df = df or 0
        idf[term] = math.log(1 + (total - df + 0.5) / (df + 0.5))
    return idf


def _tf(subject: str, body: str, terms: Sequence[str]) -> dict[str, float]:
    """Weighted term counts of a message, and its weighted length under the key ''."""
    title = words(subject[:SUBJECT_CHARS])
    text_words = words(body[:BODY_CHARS])
    tf: dict[str, float] = {t: 0.0 for t in terms}
    for weight, seq in ((TITLE_WEIGHT, title), (1.0, text_words)):
        for w in seq:
            if w in tf:
                tf[w] += weight
    tf[""] = TITLE_WEIGHT * len(title) + len(text_words)
    return tf


def _bm25(tf: dict[str, float], idf: dict[str, float], avg: float) -> float:
    norm = K1 * (1 - B + B * tf[""] / (avg or 1.0))
    return sum(idf[t] * tf[t] * (K1 + 1) / (tf[t] + norm) for t in idf)


def snippet(body: str, terms: Sequence[str], width: int = 160) -> str:
    """A line of `body` around the first of `terms`, whitespace folded."""
    wanted = set(terms)
    start = next(
        (m.start() for m in _WORD.finditer(body[:BODY_CHARS]) if m.group().lower() in wanted), 0
    )
    begin = max(0, start - width // 3)
    piece = " ".join(body[begin : begin + width].split())
    return ("…" if begin else "") + piece + ("…" if begin + width < len(body) else "")
