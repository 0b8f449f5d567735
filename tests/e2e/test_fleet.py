"""Several `maildesk serve` processes on one PostgreSQL database (SPEC "Running several
daemons"): three daemons take mail round-robin over SMTP, some conversations split across
daemons (a reply sent to one daemon moments after the message it answers went to another),
some identical mail sent to two daemons, and one daemon killed with SIGKILL mid-run and
started again. Every message answered 250 is stored once, each conversation is one ticket,
each notification reaches the smarthost once (a killed daemon's unrecorded sends aside, see
below), and an IMAP mailbox is read by one daemon at a time, the other taking over within
the lease when the holder is killed.

MAILDESK_FLEET_MESSAGES sets how many messages the SMTP clients send (the issue's full run
is 2,000: about a minute on two cores; the default keeps the test short).
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from maildesk.notify.sender import BATCH
from tests.conftest import (
    BASE_CONFIG,
    STARTUP_DEADLINE,
    PgDatabases,
    Sink,
    free_port,
    mail,
    require_slow,
    run_cli,
    sink_server,
    skip_or_fail,
    wait_until,
)
from tests.ingest.test_imap import Dovecot, dovecot, mailbox_toml  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

MESSAGES = int(os.environ.get("MAILDESK_FLEET_MESSAGES", "180"))
DAEMONS = 3
CLIENTS = 6  # SMTP clients sending at once
LEASE_TTL = 3.0  # seconds: [fleet] lease_ttl, short so that a killed daemon's share moves on
DRAIN = max(60.0, MESSAGES * 0.1)  # seconds for the fleet to finish the mail and the outbox


@pytest.fixture
def pg_url(pg_reason: str | None, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL database holding no rows (the fleet needs PostgreSQL)."""
    if pg_reason:
        skip_or_fail(pg_reason)
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    name = databases.migrated()
    try:
        yield databases.url(name)
    finally:
        databases.give_back(name)


# --- the daemons ------------------------------------------------------------------------


@dataclass
class Daemon:
    """One `maildesk serve` process of the fleet and its config."""

    config: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ()  # more options of `maildesk serve` (--workers N)
    pids: list[int] = field(default_factory=list)  # one per life (killed, started again)

    def spawn(self) -> None:
        require_slow("`maildesk serve`")
        self.log.write_bytes(b"")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "maildesk",
                    "serve",
                    "--config",
                    str(self.config),
                    *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pids.append(self.proc.pid)

    @property
    def workers(self) -> int:
        """Its pipeline worker processes (`[pipeline] workers` is 1 unless --workers)."""
        args = list(self.args)
        return int(args[args.index("--workers") + 1]) if "--workers" in args else 1

    def wait_ready(self) -> None:
        """Until it listens and every pipeline worker is ready: a worker starts a second or
        two after the listener (more on a loaded machine), and a daemon whose worker is not
        up yet takes no share of the mail."""
        proc = self.proc
        assert proc is not None

        def ready() -> bool:
            log = self.log.read_bytes()
            return b"listening on" in log and log.count(b" ready (pid ") >= self.workers

        wait_until(lambda: ready() or proc.poll() is not None, timeout=STARTUP_DEADLINE)
        assert proc.poll() is None, self.log.read_text()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def fleet_config(path: Path, url: str, sink: Sink, port: int, extra: str = "") -> Path:
    body = BASE_CONFIG.format(
        db_url=url, sink_port=sink.port, reopen_window="14d", max_size="1MB", busy_timeout="10s"
    )
    body = body.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    # A short SMTP timeout keeps the outbox lease (twice it, renewed while sending) short,
    # so a killed daemon's claimed notifications go out soon; long enough for a busy sink.
    body = body.replace("max_attempts = 3", 'max_attempts = 3\ntimeout = "5s"')
    path.write_text(body + f'\n[fleet]\nlease_ttl = "{LEASE_TTL:g}s"\n' + extra, "utf-8")
    return path


def query(url: str, sql: str) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def count(url: str, sql: str) -> int:
    return int(query(url, sql)[0][0])


# --- the mail ---------------------------------------------------------------------------

KINDS = ("split", "twin", "single", "single")  # 2, 2, 1 and 1 messages sent


@dataclass(frozen=True)
class Conversation:
    n: int
    kind: str

    @property
    def sender(self) -> str:
        return f"user{self.n}@client.example.org"  # one each: the flood guard stays out

    @property
    def first_id(self) -> str:
        return f"<fleet-{self.n}-a@client.example.org>"

    @property
    def reply_id(self) -> str:
        return f"<fleet-{self.n}-b@client.example.org>"

    def first(self) -> bytes:
        return mail(
            f"Fleet request {self.n}", sender=self.sender, message_id=self.first_id
        ).as_bytes()

    def reply(self) -> bytes:
        return mail(
            f"Re: Fleet request {self.n}",
            "Any news?",
            sender=self.sender,
            message_id=self.reply_id,
            in_reply_to=self.first_id,
            references=self.first_id,
        ).as_bytes()


def plan(messages: int) -> list[Conversation]:
    out: list[Conversation] = []
    sent = 0
    while sent < messages:
        kind = KINDS[len(out) % len(KINDS)]
        out.append(Conversation(len(out), kind))
        sent += 1 if kind == "single" else 2
    return out


@dataclass
class Clients:
    """SMTP clients that send each message to a daemon, or to the next one if it fails."""

    ports: list[int]
    accepted: Counter[str] = field(default_factory=Counter)  # 250s, by Message-ID
    failed: int = 0  # attempts that got no 250 (the daemon was killed or not up yet)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        with self.lock:
            return sum(self.accepted.values())

    def send(self, conv: Conversation, raw: bytes, message_id: str, first: int) -> None:
        for attempt in range(len(self.ports) * 10):
            port = self.ports[(first + attempt) % len(self.ports)]
            if self._once(port, conv.sender, raw):
                with self.lock:
                    self.accepted[message_id] += 1
                return
            with self.lock:
                self.failed += 1
        raise AssertionError(f"no daemon took {message_id}")

    def conversation(self, conv: Conversation) -> None:
        daemon = conv.n % len(self.ports)
        self.send(conv, conv.first(), conv.first_id, daemon)
        if conv.kind == "split":  # the reply goes to the next daemon, at once
            self.send(conv, conv.reply(), conv.reply_id, daemon + 1)
        elif conv.kind == "twin":  # the same mail again, to the next daemon
            self.send(conv, conv.first(), conv.first_id, daemon + 1)

    @staticmethod
    def _once(port: int, sender: str, raw: bytes) -> bool:
        try:
            smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
        except OSError:
            return False
        try:
            smtp.sendmail(sender, ["support@example.com"], raw)
            return True
        except (OSError, smtplib.SMTPException):
            return False
        finally:
            with suppress(Exception):  # after the 250, a daemon killed before QUIT
                smtp.quit()


def sink_ids(sink: Sink) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in sink.parsed())


# --- the test ---------------------------------------------------------------------------


def test_three_daemons_share_the_mail_and_do_nothing_twice_with_one_killed(
    pg_url: str, tmp_path: Path
) -> None:
    conversations = plan(MESSAGES)
    with ExitStack() as stack:
        main_sink = stack.enter_context(sink_server())
        killed_sink = stack.enter_context(sink_server())  # the killed daemon's first life
        daemons = []
        for i in range(DAEMONS):
            port = free_port()
            sink = killed_sink if i == DAEMONS - 1 else main_sink
            config = fleet_config(tmp_path / f"daemon{i}.toml", pg_url, sink, port)
            daemons.append(Daemon(config, port, tmp_path / f"daemon{i}.log"))
        stack.callback(_kill_all, daemons)
        for d in daemons:
            d.spawn()
        for d in daemons:
            d.wait_ready()
        clients = Clients([d.port for d in daemons])
        victim = daemons[-1]
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            sending = [pool.submit(clients.conversation, c) for c in conversations]
            wait_until(lambda: clients.sent >= MESSAGES // 3, timeout=60)
            victim.kill()
            killed_at = clients.sent
            fleet_config(victim.config, pg_url, main_sink, victim.port)  # its second life
            victim.spawn()
            victim.wait_ready()
            for future in sending:
                future.result()
        sent_for = time.monotonic() - started
        assert killed_at < MESSAGES * 0.8, "the kill came too late to test anything"

        state: list[str] = []
        try:
            wait_until(lambda: _drained(pg_url, state), timeout=DRAIN)
        except AssertionError:
            raise AssertionError(f"not drained within {DRAIN:g}s: {state[-1]}") from None

        _assert_stored_once(pg_url, clients)
        _assert_one_ticket_per_conversation(pg_url, conversations)
        _assert_notifications_sent_once(pg_url, main_sink, killed_sink)
        shares = _shares(pg_url, daemons)
        assert all(shares), f"every daemon took a share of the mail: {shares}"
        _assert_status_lists_the_daemons(daemons[0].config, daemons)
        _assert_reload_is_each_daemons_own(pg_url, daemons, clients)
        for d in daemons:
            assert d.stop() == 0, d.log.read_text()[-2000:]
        for d in daemons:
            assert "Traceback" not in d.log.read_text(), d.log.read_text()[-3000:]
        print(
            f"fleet: {MESSAGES} messages sent in {sent_for:.1f}s, {clients.failed} retried, "
            f"processed by the daemons: {shares}"
        )


def _shares(url: str, daemons: list[Daemon]) -> list[int]:
    """How many messages each daemon processed, in either of its lives (claimed_by is
    HOST:PID, or HOST:PID/wN for one of its worker processes)."""
    owner = {pid: i for i, d in enumerate(daemons) for pid in d.pids}
    shares = [0] * len(daemons)
    rows = query(url, "SELECT claimed_by, count(*) FROM raw_messages GROUP BY claimed_by")
    for holder, n in rows:
        pid = str(holder or "").rpartition(":")[2].split("/")[0]
        if pid.isdigit() and int(pid) in owner:
            shares[owner[int(pid)]] += int(n)
    return shares


def _kill_all(daemons: list[Daemon]) -> None:
    for d in daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def _drained(url: str, state: list[str]) -> bool:
    pending = query(
        url,
        "SELECT claimed_by, claimed_until, count(*) FROM raw_messages WHERE status = 'pending'"
        " GROUP BY claimed_by, claimed_until",
    )
    queued = query(
        url,
        "SELECT attempts, next_attempt_at, count(*) FROM outbox WHERE status = 'queued'"
        " GROUP BY attempts, next_attempt_at",
    )
    state.append(f"pending {pending[:10]}, queued {queued[:10]} (now {query(url, 'SELECT now()')})")
    return not pending and not queued


def _assert_stored_once(url: str, clients: Clients) -> None:
    """Each message answered 250 is one message on a ticket; a second copy (identical mail
    sent twice, or one stored just before its daemon was killed and then sent again) is
    kept as a duplicate."""
    stored = Counter(
        str(row[0]) for row in query(url, "SELECT message_id FROM messages WHERE direction = 'in'")
    )
    assert set(stored) == set(clients.accepted)
    assert [m for m, n in stored.items() if n != 1] == []
    statuses = Counter(str(r[0]) for r in query(url, "SELECT status FROM raw_messages"))
    assert set(statuses) <= {"processed", "duplicate"}, statuses
    raws = sum(statuses.values())
    accepted = sum(clients.accepted.values())
    assert accepted <= raws <= accepted + clients.failed
    assert statuses["processed"] == len(clients.accepted)


def _assert_one_ticket_per_conversation(url: str, conversations: list[Conversation]) -> None:
    tickets = Counter(str(r[0]) for r in query(url, "SELECT subject FROM tickets"))
    assert sum(tickets.values()) == len(conversations), [s for s, n in tickets.items() if n > 1]
    assert set(tickets) == {f"Fleet request {c.n}" for c in conversations}
    on = dict(
        (str(m), int(t))
        for m, t in query(url, "SELECT message_id, ticket_id FROM messages WHERE direction = 'in'")
    )
    split = [c for c in conversations if c.kind == "split"]
    assert [c.n for c in split if on[c.reply_id] != on[c.first_id]] == []


def _assert_notifications_sent_once(url: str, main: Sink, killed: Sink) -> None:
    """Every outbox entry reached the smarthost; the daemons that lived sent each once. A
    daemon killed mid-batch may have sent entries it had not yet recorded as sent: another
    daemon sends those again (at-least-once, the same Message-ID), at most one batch."""
    outbox = Counter(str(r[0]) for r in query(url, "SELECT status FROM outbox"))
    assert set(outbox) == {"sent"}, outbox
    wanted = {str(r[0]) for r in query(url, "SELECT message_id FROM outbox")}
    lived, died = sink_ids(main), sink_ids(killed)
    assert [m for m, n in lived.items() if n > 1] == []
    assert [m for m, n in died.items() if n > 1] == []
    assert set(lived) | set(died) == wanted
    assert len(set(lived) & set(died)) <= BATCH


def _assert_status_lists_the_daemons(config: Path, daemons: list[Daemon]) -> None:
    code, out = run_cli("status", "--json", "--config", str(config))
    assert code == 0, out
    report = json.loads(out)
    live = {d["pid"]: d for d in report["daemons"] if not d["stale"]}
    for daemon in daemons:
        assert daemon.proc is not None
        entry = live[daemon.proc.pid]
        assert entry["id"] == f"{entry['host']}:{daemon.proc.pid}"
        assert {"started_at", "updated_at", "mailboxes", "claimed", "backlog"} <= set(entry)
        assert entry["backlog"] == report["pending"] == 0


def _assert_reload_is_each_daemons_own(url: str, daemons: list[Daemon], clients: Clients) -> None:
    """A daemon reloads its own config (SIGHUP); the others go on with theirs, and the
    fleet keeps taking mail."""
    first = daemons[0]
    assert first.proc is not None
    first.config.write_text(
        first.config.read_text()
        + '\n[[rules]]\nname = "reloaded"\nmatch = { subject = "never" }\nset = { tags = ["x"] }\n'
    )
    first.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b"config reloaded" in first.log.read_bytes(), timeout=10)
    assert all(b"config reloaded" not in d.log.read_bytes() for d in daemons[1:])
    last = Conversation(10**6, "single")
    clients.send(last, last.first(), last.first_id, 0)
    wait_until(
        lambda: count(url, "SELECT count(*) FROM tickets WHERE subject = 'Fleet request 1000000'"),
        timeout=20,
    )


# --- one IMAP mailbox, two daemons ------------------------------------------------------


def test_one_daemon_reads_a_mailbox_and_another_takes_over_when_it_is_killed(
    pg_url: str,
    tmp_path: Path,
    dovecot: Dovecot,  # noqa: F811
) -> None:
    box = mailbox_toml(dovecot, lease_ttl=f"{LEASE_TTL:g}s", poll_interval="1s")
    with ExitStack() as stack:
        sink = stack.enter_context(sink_server())
        daemons = []
        for i in range(2):
            port = free_port()
            config = fleet_config(tmp_path / f"imap{i}.toml", pg_url, sink, port, box)
            daemons.append(Daemon(config, port, tmp_path / f"imap{i}.log"))
        stack.callback(_kill_all, daemons)
        for d in daemons:
            d.spawn()
        for d in daemons:
            d.wait_ready()
        holder = wait_until(lambda: _holder(pg_url), timeout=20)
        # Both daemons up, one standing by: only the holder ever logged in.
        wait_until(lambda: _standing_by(daemons) and _logins(dovecot) >= 1, timeout=10)
        assert _logins(dovecot) == 1, _logins(dovecot)
        dovecot.append("Before the kill")
        wait_until(lambda: count(pg_url, "SELECT count(*) FROM tickets") >= 1, timeout=20)
        assert _holder(pg_url) == holder

        first = next(d for d in daemons if _holder_of(d) == holder)
        other = next(d for d in daemons if d is not first)
        first.kill()
        killed = time.monotonic()
        assert other.proc is not None
        new_holder = wait_until(lambda: _holder(pg_url) not in (None, holder), timeout=20)
        took = time.monotonic() - killed
        assert new_holder
        assert _holder(pg_url) == _holder_of(other)
        assert took <= LEASE_TTL * 1.2 + 1.5, f"took over after {took:.1f}s"
        dovecot.append("After the kill")
        wait_until(lambda: count(pg_url, "SELECT count(*) FROM tickets") >= 2, timeout=20)
        assert count(pg_url, "SELECT count(*) FROM raw_messages") == 2
        assert other.stop() == 0
        released = count(pg_url, "SELECT count(*) FROM leases WHERE name = 'mailbox:support'")
        assert released == 0, "the lease is given back at stop"
        print(f"imap lease: taken over {took:.1f}s after the kill (lease_ttl {LEASE_TTL:g}s)")


def _holder(url: str) -> str | None:
    rows = query(
        url,
        "SELECT holder FROM leases WHERE name = 'mailbox:support' AND expires_at > now()",
    )
    return str(rows[0][0]) if rows else None


def _holder_of(daemon: Daemon) -> str:
    assert daemon.proc is not None
    return f"{socket.gethostname()}:{daemon.proc.pid}"


def _standing_by(daemons: list[Daemon]) -> bool:
    return any(b"standing by" in d.log.read_bytes() for d in daemons)


def _logins(server: Dovecot) -> int:
    log = (Path(server.directory) / "dovecot.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "imap-login: Info: Login: user=" in line)
