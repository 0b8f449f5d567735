"""Several daemons on one database, at the store: pending mail claimed in disjoint batches,
a message in process skipped by others, conversations held by advisory locks, mailbox
leases and scheduled job firings. PostgreSQL shares the work; SQLite (one daemon) takes
the cheap path, and the same calls work there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from maildesk.store import health, leases, repo
from maildesk.store.db import create_db_engine, session_factory
from maildesk.store.models import RawMessage
from maildesk.terms import RawStatus

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(db_url, busy_timeout=2)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def _store(sessions: sessionmaker[Session], count: int) -> list[int]:
    with sessions.begin() as s:
        rows = [repo.save_raw(s, f"m{n}".encode(), origin="smtp", now=NOW) for n in range(count)]
        return [r.id for r in rows]


def _postgres(sessions: sessionmaker[Session]) -> bool:
    with sessions() as s:
        return s.get_bind().dialect.name == "postgresql"


def test_two_daemons_claim_disjoint_batches_and_a_dead_ones_claim_runs_out(
    sessions: sessionmaker[Session],
) -> None:
    ids = _store(sessions, 6)
    if not _postgres(sessions):  # one daemon: the pending mail, nothing written
        with sessions.begin() as s:
            assert repo.claim_pending(s, "a:1", NOW, NOW + TTL, limit=4) == ids[:4]
            assert repo.claim_pending(s, "b:2", NOW, NOW + TTL, limit=4) == ids[:4]
            assert s.get_one(RawMessage, ids[0]).claimed_by is None
        return
    first = sessions()
    try:
        with first.begin():
            # a's claim is not committed yet: b skips the rows it locked, never waits
            assert repo.claim_pending(first, "a:1", NOW, NOW + TTL, limit=4) == ids[:4]
            with sessions.begin() as other:
                assert repo.claim_pending(other, "b:2", NOW, NOW + TTL, limit=4) == ids[4:]
    finally:
        first.close()
    with sessions.begin() as s:
        assert repo.claim_pending(s, "c:3", NOW, NOW + TTL) == []  # all claimed
        assert repo.claim_pending(s, "a:1", NOW, NOW + TTL) == ids[:4]  # a's own again
        later = NOW + TTL + timedelta(seconds=1)  # a and b died: their claims ran out
        assert repo.claim_pending(s, "c:3", later, later + TTL) == ids


def test_a_message_in_process_elsewhere_is_skipped_not_waited_for(
    sessions: sessionmaker[Session],
) -> None:
    (raw_id,) = _store(sessions, 1)
    first = sessions()
    try:
        with first.begin():
            assert repo.claim_raw(first, raw_id, NOW) is not None
            if _postgres(sessions):
                with sessions.begin() as other:
                    assert repo.claim_raw(other, raw_id, NOW) is None
    finally:
        first.close()
    with sessions.begin() as s:
        assert repo.claim_raw(s, raw_id, NOW) is None  # processed: never twice
        assert s.get_one(RawMessage, raw_id).status == RawStatus.PROCESSED


def test_a_deferred_message_waits_its_turn(sessions: sessionmaker[Session]) -> None:
    ids = _store(sessions, 2)
    postgres = _postgres(sessions)
    with sessions.begin() as s:
        assert repo.pending_before(s, ids[1]) is postgres  # SQLite: one daemon, in order
        assert repo.pending_before(s, ids[0]) is False
        row = repo.claim_raw(s, ids[1], NOW)
        assert row is not None
        repo.defer_raw(s, row, NOW + timedelta(seconds=1))
    with sessions.begin() as s:
        assert s.get_one(RawMessage, ids[1]).status == RawStatus.PENDING
        if postgres:
            assert repo.claim_pending(s, "a:1", NOW, NOW + TTL) == ids[:1]
            soon = NOW + timedelta(seconds=2)
            assert repo.claim_pending(s, "a:1", soon, soon + TTL) == ids


def test_a_conversation_is_held_by_one_transaction_at_a_time(
    sessions: sessionmaker[Session],
) -> None:
    keys = ["id:<a@example.org>", "ref:42"]
    first = sessions()
    try:
        with first.begin():
            assert repo.lock_thread(first, keys, wait=True)
            assert repo.lock_thread(first, keys, wait=False)  # its own: held already
            if _postgres(sessions):
                with sessions.begin() as other:
                    assert not repo.lock_thread(other, ["id:<b@example.org>", "ref:42"], wait=False)
                    assert repo.lock_thread(other, ["id:<c@example.org>"], wait=False)
    finally:
        first.close()
    with sessions.begin() as s:  # committed: free again
        assert repo.lock_thread(s, keys, wait=False)


def test_a_mailbox_lease_has_one_holder_and_passes_on_when_it_runs_out(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        assert leases.take_mailbox(s, "support", "a:1", NOW, TTL)
        assert not leases.take_mailbox(s, "support", "b:2", NOW + timedelta(seconds=30), TTL)
        assert leases.take_mailbox(s, "support", "a:1", NOW + timedelta(seconds=30), TTL)
        assert leases.take_mailbox(s, "sales", "b:2", NOW, TTL)
    with sessions.begin() as s:
        held = leases.mailboxes_held(s, NOW + timedelta(seconds=40))
        assert [m["mailbox"] for m in held["a:1"]] == ["support"]
        assert held["a:1"][0]["since"] == NOW.isoformat()  # renewed, not taken anew
        assert [m["mailbox"] for m in held["b:2"]] == ["sales"]
        # a renewed at +30s; at +89s it still holds, at +91s b takes over
        assert not leases.take_mailbox(s, "support", "b:2", NOW + timedelta(seconds=89), TTL)
        assert leases.take_mailbox(s, "support", "b:2", NOW + timedelta(seconds=91), TTL)
        assert leases.lease_holder(s, "mailbox:support", NOW + timedelta(seconds=92)) == "b:2"
        leases.release_mailbox(s, "support", "a:1")  # a no longer holds it: nothing happens
        assert leases.lease_holder(s, "mailbox:support", NOW + timedelta(seconds=92)) == "b:2"
        leases.release_mailbox(s, "support", "b:2")
        assert leases.take_mailbox(s, "support", "a:1", NOW + timedelta(seconds=93), TTL)


def test_each_firing_of_a_job_runs_on_one_daemon(sessions: sessionmaker[Session]) -> None:
    every = timedelta(seconds=60)
    at = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)
    with sessions.begin() as s:
        assert leases.take_firing(s, "sla", "a:1", at, every)
        assert not leases.take_firing(s, "sla", "b:2", at + timedelta(seconds=30), every)
        assert not leases.take_firing(s, "sla", "a:1", at + timedelta(seconds=40), every)
        assert leases.take_firing(s, "learn", "b:2", at, every)  # another job: its own
        assert leases.take_firing(s, "sla", "b:2", at + timedelta(seconds=56), every)  # 10:01
        assert not leases.take_firing(s, "sla", "a:1", at + timedelta(seconds=65), every)


def test_status_shares_say_what_each_daemon_holds(sessions: sessionmaker[Session]) -> None:
    ids = _store(sessions, 3)
    with sessions.begin() as s:
        leases.take_mailbox(s, "support", "a:1", NOW, TTL)
        if _postgres(sessions):
            repo.claim_pending(s, "b:2", NOW, NOW + TTL, limit=2)
    with sessions.begin() as s:
        shares = health.daemon_shares(s, NOW)
    assert [m["mailbox"] for m in shares["a:1"]["mailboxes"]] == ["support"]
    if _postgres(sessions):
        assert shares["b:2"] == {"mailboxes": [], "claimed": 2}
        assert len(ids) == 3
    with sessions.begin() as s:  # ran out: nothing held
        assert health.daemon_shares(s, NOW + TTL) == {}


def test_a_restarted_daemon_takes_back_what_its_dead_predecessor_on_this_host_held(
    sessions: sessionmaker[Session],
) -> None:
    ids = _store(sessions, 2)
    with sessions.begin() as s:
        assert leases.take_mailbox(s, "support", "here:111", NOW, TTL)
        assert leases.take_mailbox(s, "sales", "here:222", NOW, TTL)
        assert leases.take_mailbox(s, "billing", "there:111", NOW, TTL)
        s.get_one(RawMessage, ids[0]).claimed_by = "here:111"
        s.get_one(RawMessage, ids[0]).claimed_until = NOW + TTL
        s.get_one(RawMessage, ids[1]).claimed_by = "here:222"
        s.get_one(RawMessage, ids[1]).claimed_until = NOW + TTL
    with sessions.begin() as s:  # 111 is gone, 222 still runs; "there" is another host
        released = leases.release_dead_here(s, "here", lambda pid: pid == 222)
    assert released == ["here:111"]
    with sessions.begin() as s:
        assert leases.lease_holder(s, leases.MAILBOX + "support", NOW) is None
        assert leases.lease_holder(s, leases.MAILBOX + "sales", NOW) == "here:222"
        assert leases.lease_holder(s, leases.MAILBOX + "billing", NOW) == "there:111"
        assert s.get_one(RawMessage, ids[0]).claimed_by is None
        assert s.get_one(RawMessage, ids[1]).claimed_by == "here:222"


def _claim(sessions: sessionmaker[Session], claims: dict[int, str]) -> None:
    with sessions.begin() as s:
        for raw_id, holder in claims.items():
            row = s.get_one(RawMessage, raw_id)
            row.claimed_by, row.claimed_until = holder, NOW + TTL


def _claimed_by(sessions: sessionmaker[Session], ids: list[int]) -> list[str | None]:
    with sessions.begin() as s:
        return [s.get_one(RawMessage, i).claimed_by for i in ids]


def test_a_dead_worker_process_gives_back_only_its_own_pending_claims(
    sessions: sessionmaker[Session],
) -> None:
    """`serve --workers`: the listener releases the claims of a worker that died."""
    ids = _store(sessions, 4)
    _claim(sessions, {ids[0]: "here:7/w1", ids[1]: "here:7/w1", ids[2]: "here:7/w2"})
    with sessions.begin() as s:  # one of w1's is done already: it stays as it is
        s.get_one(RawMessage, ids[1]).status = RawStatus.PROCESSED
    with sessions.begin() as s:
        assert leases.release_claims(s, "here:7/w1") == 1
    assert _claimed_by(sessions, ids) == [None, "here:7/w1", "here:7/w2", None]


def test_a_dead_daemons_worker_claims_are_taken_back_by_its_successor(
    sessions: sessionmaker[Session],
) -> None:
    ids = _store(sessions, 5)
    _claim(
        sessions,
        {
            ids[0]: "here:111/w1",
            ids[1]: "here:111/w2",
            ids[2]: "here:222/w1",
            ids[3]: "here:111/w1",
            ids[4]: "here:333",
        },
    )
    with sessions.begin() as s:  # what a dead daemon finished keeps saying who did it
        s.get_one(RawMessage, ids[3]).status = RawStatus.PROCESSED
        s.get_one(RawMessage, ids[4]).status = RawStatus.PROCESSED
    with sessions.begin() as s:  # daemon 111 is gone (its workers with it); 222 runs
        released = leases.release_dead_here(s, "here", lambda pid: pid == 222)
    assert released == ["here:111/w1", "here:111/w2"]  # 333 has nothing left to give back
    assert _claimed_by(sessions, ids) == [None, None, "here:222/w1", "here:111/w1", "here:333"]


def test_a_worker_process_claims_under_its_own_holder_id() -> None:
    own = leases.daemon_id()
    try:
        leases.use_holder(leases.worker_holder(own, 2))
        assert leases.daemon_id() == f"{own}/w2"
    finally:
        leases.use_holder(None)
    assert leases.daemon_id() == own
