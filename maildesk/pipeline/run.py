"""The pipeline's loop: stored messages are parsed outside any write transaction, then run
in batches, each message in its own savepoint; a message that fails is quarantined with
the reason and only it is rolled back. Raw bytes come in through maildesk.ingest.inbox.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from maildesk import logctx
from maildesk.app import App, Replay
from maildesk.errors import StoreUnavailable
from maildesk.mail.message import ParsedMessage
from maildesk.parse.ahead import ParseAhead, Parsed, parse_timed
from maildesk.pipeline.historic import sent_at
from maildesk.pipeline.outcome import NoSender, Outcome
from maildesk.pipeline.steps import process_message
from maildesk.routing.thread import thread_keys
from maildesk.store import pipeline_rows, repo, spool
from maildesk.store.db import is_sqlite, transaction, write_gate
from maildesk.store.leases import daemon_id
from maildesk.store.models import RawMessage
from maildesk.store.pipeline_rows import RowConflict, RowRefused
from maildesk.store.spool import Spooled

log = logging.getLogger(__name__)

# A write transaction of the pipeline commits once it has been open this long: several
# messages share a commit (one disk sync). SMTP never waits for it (on SQLite the listener
# commits accepted mail to the spool, on PostgreSQL row locks); what does (`deliver`, an
# alert posted over HTTP, a command) waits at most this and one message. At 15 ms, about
# one message's work, each message was a commit of its own.
WRITE_BUDGET = 0.1
IMPORT_BUDGET = 0.2  # an import batches more: nothing waits on it
# Pending mail one daemon claims at a time on PostgreSQL: small enough that a burst is
# shared among the daemons, large enough that claiming costs little per message.
CLAIM_BATCH = 20


# How raw mail is added in the caller's transaction: (session, raw, origin, now) -> its row.
# Raw mail enters the store only through the inbox (maildesk.ingest.inbox.save_raw).
SaveRaw = Callable[[Session, bytes, str, datetime], RawMessage]


def import_many(
    app: App,
    raws: Iterable[bytes],
    *,
    save: SaveRaw,
    origin: str = "import",
    budget: float = IMPORT_BUDGET,
    replay: Replay | None = None,
    since: datetime | None = None,
    parse_ahead: bool = False,
) -> Iterator[str]:
    """Store and process messages from a mailbox, several per transaction; yield each one's
    status. Idempotent: a message whose bytes or Message-ID are already stored is skipped
    ("already imported"). Each message is stored raw (by `save`, the inbox's) in the same
    transaction that runs it through the pipeline (in a savepoint, so a failure quarantines
    only it); nothing is held in memory beyond the message at hand (and, parsed ahead,
    the next few: ParseAhead's `ahead`).

    `replay`: the mail is the mailbox's past (App.replay; it counts what was sent and what
    was not). `since`: a message dated before it is passed over ("before --since").
    `parse_ahead`: the next messages are parsed in a second process meanwhile (ParseAhead).
    """
    app = replace(app.pinned(), replay=replay)
    with ParseAhead() if parse_ahead else nullcontext() as ahead:
        stream: Generator[tuple[bytes, Parsed | None], None, None] = (
            ahead.parsed(raws) if ahead else ((raw, None) for raw in raws)
        )
        with closing(stream):
            yield from _import_stream(app, stream, origin, save, since, budget)


def _import_stream(
    app: App,
    stream: Iterator[tuple[bytes, Parsed | None]],
    origin: str,
    save: SaveRaw,
    since: datetime | None,
    budget: float,
) -> Iterator[str]:
    pending = next(stream, None)
    while pending is not None:
        statuses: list[str] = []
        with transaction(app.sessions) as session:
            started = time.monotonic()
            while pending is not None:
                raw, parsed = pending
                statuses.append(_import_one(app, session, raw, parsed, origin, save, since))
                pending = next(stream, None)
                if time.monotonic() - started > budget:
                    break
        yield from statuses


def _import_one(
    app: App,
    session: Session,
    raw: bytes,
    parsed: Parsed | None,
    origin: str,
    save: SaveRaw,
    since: datetime | None,
) -> str:
    """One message of an import (`parsed`: its parse, if it was parsed ahead)."""
    work = _new(session, raw, parsed, since)
    if isinstance(work, str):
        return work
    row = save(session, raw, origin, app.now())  # held while it is processed (see save_raw)
    outcome = _run(app, session, replace(work, raw_id=row.id, stored=row))
    if outcome.status == "quarantined":
        log.warning("raw message %s quarantined: %s", row.id, outcome.reason)
    if outcome.then is not None:  # a fragment completed its set: the message it makes, now
        stored = dict(repo.raw_bytes(session, [outcome.then]))
        _run(app, session, _parse(outcome.then, stored.get(outcome.then)))
    return outcome.status


BEFORE_SINCE = "before --since"
ALREADY = "already imported"


def _new(
    session: Session, raw: bytes, parsed: Parsed | None, since: datetime | None
) -> _Work | str:
    """The message parsed, if neither its bytes nor its Message-ID are stored yet (and it
    is not dated before `since`); else why it is passed over."""
    sha = hashlib.sha256(raw).hexdigest()
    if parsed is not None and parsed.msg is not None and since is None:  # one query
        known = repo.raw_or_message_exists(session, sha, parsed.msg.message_id)
        return ALREADY if known else _worked(0, raw, parsed)
    if repo.raw_exists(session, sha):
        return ALREADY  # before parsing it
    work = _worked(0, raw, parsed or parse_timed(raw))
    if since is not None and work.msg is not None and _before(work.msg, since):
        return BEFORE_SINCE
    if work.msg is not None and repo.message_exists(session, work.msg.message_id):
        return ALREADY
    return work


def _before(msg: ParsedMessage, since: datetime) -> bool:
    """Dated before `since` (a message with no readable Date is imported)."""
    written = sent_at(msg)
    return written is not None and written < since


def process_pending(
    app: App, limit: int = 100, *, committed: Callable[[], None] | None = None
) -> list[Outcome]:
    """Process stored messages still pending, oldest first (crash recovery and batching):
    what the spool holds (SQLite), then raw messages pending in the ticket database.
    `committed` is called after each write transaction that ran some (their notifications
    are in the outbox: the sender need not wait for the whole batch).

    Several daemons on PostgreSQL: the batch is first claimed for this daemon until
    `[fleet] lease_ttl` from now, so each daemon takes different mail; a daemon that dies
    leaves its claim to run out, and another then takes that mail."""
    spooled = app.spool.waiting(limit) if app.spool else []
    outcomes = process_spooled(app, spooled, committed=committed)
    now = datetime.now(UTC)  # claims are wall-clock time, whatever clock the desk runs on
    one_writer = is_sqlite(app.engine)
    with transaction(app.sessions, readonly=one_writer) as session:
        until = now + app.config.fleet.lease_ttl
        size = limit if one_writer else min(limit, CLAIM_BATCH)
        ids = repo.claim_pending(session, daemon_id(), now, until, size)
    return outcomes + process_many(app, ids, committed=committed)


def process_spooled(
    app: App,
    spooled: Sequence[Spooled],
    *,
    budget: float = WRITE_BUDGET,
    committed: Callable[[], None] | None = None,
) -> list[Outcome]:
    """Take spooled messages into the ticket database and run them, as process_many does.

    The first write transaction takes them all (spool.admit: each raw message records its
    spool key) along with the first messages' ticket changes, so taking costs no commit of
    its own; the spool forgets them once that has committed. A crash in between leaves
    spool rows whose keys the ticket database has: they are forgotten on the next run,
    never taken twice.
    """
    if not spooled:
        return []
    parsed = [(row, _parse(row.id, row.raw, what="spooled message")) for row in spooled]

    def take(session: Session) -> list[_Work]:
        admitted = spool.admit(session, spooled)
        return [replace(w, raw_id=admitted[row.id]) for row, w in parsed if row.id in admitted]

    outcomes = _in_batches(app.pinned(), take, budget, committed)
    assert app.spool is not None
    try:
        app.spool.forget(spooled)
    except StoreUnavailable as exc:  # they are in the ticket database: forgotten next time
        log.warning("spool: %d messages taken but not yet forgotten: %s", len(spooled), exc)
    return outcomes


def process(app: App, raw_id: int) -> Outcome:
    """Run the pipeline for one stored message; quarantine it if anything goes wrong."""
    return process_many(app, [raw_id])[0]


@dataclass(frozen=True)
class _Work:
    """A stored message read and parsed (outside any write transaction)."""

    raw_id: int
    raw: bytes
    msg: ParsedMessage | None
    reason: str | None = None  # why it could not be parsed
    parse_seconds: float = 0.0
    new_text: str | None = None  # worked out with the parse (parsed ahead), else by the steps
    # The row this transaction has just stored (import), its Message-ID found not stored yet.
    stored: RawMessage | None = None


def process_many(
    app: App,
    raw_ids: Sequence[int],
    *,
    budget: float = WRITE_BUDGET,
    committed: Callable[[], None] | None = None,
) -> list[Outcome]:
    """Run the pipeline for stored messages, in order, committing several per transaction.

    Messages are read and parsed first, outside any write transaction (on SQLite, mail
    being accepted over SMTP never waits for a parse). Each one then runs in a savepoint
    of a write transaction that is committed once it has been open for `budget` seconds:
    fewer commits (disk syncs), and a message that fails rolls back only itself and is
    quarantined in the same transaction. A store that is unavailable leaves the rest
    pending for the next run.
    """
    if not raw_ids:
        return []
    app = app.pinned()  # a config reload mid-batch does not change these messages' rules
    with transaction(app.sessions, readonly=True) as session:
        stored = dict(repo.raw_bytes(session, raw_ids))
    work = [_parse(raw_id, stored.get(raw_id)) for raw_id in raw_ids]
    return _in_batches(app, lambda _session: work, budget, committed)


def _in_batches(
    app: App,
    first: Callable[[Session], list[_Work]],
    budget: float,
    committed: Callable[[], None] | None = None,
) -> list[Outcome]:
    """Run parsed messages in write transactions of about `budget` seconds each; `first`
    gives them, in the first transaction (which may write rows for them). `committed`:
    called after each transaction that ran some."""
    outcomes: list[Outcome] = []
    gate = write_gate(app.sessions)
    work: list[_Work] | None = None
    while work is None or len(outcomes) < len(work):
        done: list[tuple[Outcome, float]] = []
        with transaction(app.sessions) as session:
            started = time.monotonic()
            if work is None:
                work = first(session)
            for item in work[len(outcomes) :]:
                if not _hold_thread(app, session, item, wait=not done):
                    break  # another daemon is on this conversation: commit, then wait
                began = time.monotonic()
                outcomes.append(_run(app, session, item))
                done.append((outcomes[-1], time.monotonic() - began + item.parse_seconds))
                if time.monotonic() - started > budget or (gate and gate.urgent_waiting):
                    break  # commit now: mail being accepted goes next
        _count(app, done)  # committed: now they count
        if done and committed is not None:
            committed()
    for item, outcome in zip(work, outcomes, strict=True):
        if outcome.status == "quarantined":
            with logctx.about_message(item.msg.message_id if item.msg else None):
                log.warning("raw message %s quarantined: %s", outcome.raw_id, outcome.reason)
    follow = [o.then for o in outcomes if o.then is not None]
    if follow:  # the messages fragments completed, at once (they are never fragments again)
        process_many(app, follow, budget=budget, committed=committed)
    return outcomes


def _hold_thread(app: App, session: Session, item: _Work, *, wait: bool) -> bool:
    """Hold the message's conversation for this transaction (see store.threads.lock_thread):
    mail of one conversation is processed one message at a time across daemons."""
    if item.msg is None:
        return True
    keys = thread_keys(item.msg, app.config.desk.ref_prefix)
    return repo.lock_thread(session, keys, wait=wait)


def _count(app: App, done: Sequence[tuple[Outcome, float]]) -> None:
    for outcome, seconds in done:
        app.metrics.processed(outcome.status, seconds)
        app.metrics.rules_matched(outcome.rules)


def _parse(raw_id: int, raw: bytes | None, *, what: str = "raw message") -> _Work:
    if raw is None:
        return _Work(raw_id, b"", None)  # no such stored message: nothing to do
    return _worked(raw_id, raw, parse_timed(raw), what=what)


def _worked(raw_id: int, raw: bytes, parsed: Parsed, *, what: str = "raw message") -> _Work:
    if parsed.trace is not None:  # a bug to see
        log.error("%s %s could not be parsed:\n%s", what, raw_id, parsed.trace.rstrip())
    return _Work(raw_id, raw, parsed.msg, parsed.reason, parsed.seconds, parsed.new_text)


def _run(app: App, session: Session, item: _Work) -> Outcome:
    """One message (its log lines name it) in its own savepoint; a failure rolls back to
    it and quarantines."""
    if item.msg is None:
        return _unparsed(app, session, item)
    with logctx.about_message(item.msg.message_id):
        return _run_steps(app, session, item, item.msg)


def _run_steps(app: App, session: Session, item: _Work, msg: ParsedMessage) -> Outcome:
    raw_id = item.raw_id
    for attempt in (1, 2):
        try:
            with pipeline_rows.savepoint(session):
                # Run again after a conflict, the message is claimed and checked as any other.
                stored = item.stored if attempt == 1 else None
                return process_message(app, session, raw_id, msg, item.raw, item.new_text, stored)
        except RowConflict as exc:
            # Another worker stored the same Message-ID at the same moment: run again,
            # and this time the message is a duplicate.
            if attempt == 2:
                return _quarantined(app, session, raw_id, f"database integrity error: {exc}")
        except NoSender as exc:
            return _quarantined(app, session, raw_id, str(exc))
        except RowRefused as exc:
            reason = f"the database refused this message: {exc}"
            return _quarantined(app, session, raw_id, reason)
        except Exception as exc:
            if pipeline_rows.is_store_failure(exc):
                raise  # the store itself failed: the transaction goes, the rest stays pending
            log.exception("raw message %s failed in the pipeline", raw_id)
            return _quarantined(app, session, raw_id, f"{type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def _unparsed(app: App, session: Session, item: _Work) -> Outcome:
    """A message that is not stored (skipped) or could not be parsed (quarantined)."""
    if item.reason is None:
        return Outcome(item.raw_id, "skipped", reason="no such stored message")
    return _quarantined(app, session, item.raw_id, item.reason)


def _quarantined(app: App, session: Session, raw_id: int, reason: str) -> Outcome:
    logctx.set_ticket(None)  # whatever ticket it was on is rolled back with it
    pipeline_rows.quarantine(session, raw_id, reason, app.now())
    return Outcome(raw_id, "quarantined", reason=reason)
