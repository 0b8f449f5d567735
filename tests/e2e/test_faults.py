"""Faults, each injected into a real process or server: kill -9 mid-burst, the database
stopped or locked, the smarthost down, the disk full.

The promise under test (SPEC, Durability): SMTP answers 250 only after the message is
committed, and 451 when it cannot be; a message that got 250 is stored exactly once; a
notification is sent or marked, never silently dropped; recovery needs no restart.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, event, func, select, text

from maildesk.config import load_config
from maildesk.notify.sender import lease_for
from maildesk.store.models import Attachment, Message, OutboxEntry, RawMessage
from maildesk.store.spool import spool_path
from tests.conftest import (
    Sink,
    _SinkHandler,
    free_port,
    mail,
    running_desk,
    serve_process,
    skip_or_fail,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]


def listening_port(log: Path) -> int:
    return int(re.findall(rb"listening on [\d.]+:(\d+)", log.read_bytes())[-1])


def send(port: int, msg: EmailMessage | bytes, mail_from: str = "sender@example.org") -> int:
    """Deliver one message over SMTP; the final reply code (250, or the refusal)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            if isinstance(msg, bytes):
                smtp.sendmail(mail_from, ["support@example.com"], msg)
            else:
                smtp.send_message(msg, from_addr=mail_from, to_addrs=["support@example.com"])
        return 250
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code
    except (OSError, smtplib.SMTPException):
        return 0  # no answer at all: connection refused or dropped


def deliver(config: Path, msg: EmailMessage) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "maildesk", "deliver", "--config", str(config)],
        input=msg.as_bytes(),
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )


class Store:
    """Read-only looks at the database a daemon writes to."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, pool_pre_ping=True)
        self.spool = spool_path(url)  # SQLite: where SMTP mail waits for the pipeline

    def scalar(self, stmt: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def rows(self, stmt: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(stmt))

    def inbound_counts(self) -> collections.Counter[str]:
        rows = self.rows(select(Message.message_id).where(Message.direction == "in"))
        return collections.Counter(r[0] for r in rows)

    def statuses(self) -> list[str]:
        return [r[0] for r in self.rows(select(RawMessage.status).order_by(RawMessage.id))]

    def spooled(self) -> int:
        """Messages in the spool, not yet taken into the ticket database."""
        if self.spool is None or not self.spool.exists():
            return 0
        with contextlib.closing(sqlite3.connect(f"file:{self.spool}?mode=ro", uri=True)) as db:
            try:
                return int(db.execute("SELECT count(*) FROM spooled").fetchone()[0])
            except sqlite3.OperationalError:  # the spool's table is not made yet
                return 0

    def close(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def store_at(url: str) -> Iterator[Store]:
    store = Store(url)
    try:
        yield store
    finally:
        store.close()


def settled(store: Store) -> bool:
    """Nothing pending, and the outbox has tried every due notification at least once."""
    if "pending" in store.statuses() or store.spooled():
        return False
    untried = select(func.count()).where(OutboxEntry.status == "queued", OutboxEntry.attempts == 0)
    return store.scalar(untried) == 0


# --- kill -9 in the middle of a burst -------------------------------------------------------


def burst_message(client: int, number: int) -> EmailMessage:
    msg = mail(
        f"Burst {client}-{number}",
        f"Message {number} of client {client}.",
        sender=f"Client {client} <client{client}@example.org>",
        message_id=f"<burst-{client}-{number}@client.example.org>",
        in_reply_to=f"<burst-{client}-{number - 1}@client.example.org>" if number % 4 else None,
    )
    if number % 3 == 0:
        msg.add_attachment(os.urandom(2048), maintype="application", subtype="octet-stream",
                           filename=f"dump-{client}-{number}.bin")  # fmt: skip
    return msg


def test_kill_9_mid_burst_then_restart(
    db_url: str, tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, sink.port)
    clients, per_client = 4, 20
    answers: dict[str, int] = {}
    lock = threading.Lock()
    port_box: dict[str, int] = {}

    def client(n: int) -> None:
        for i in range(per_client):
            msg = burst_message(n, i)
            code = send(port_box["port"], msg, f"client{n}@example.org")
            with lock:
                answers[str(msg["Message-ID"])] = code

    with store_at(db_url) as store:
        with serve_process(config, tmp_path / "serve-1.log") as first:
            port_box["port"] = listening_port(tmp_path / "serve-1.log")
            threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
            for t in threads:
                t.start()
            # Kill once a good part of the burst is in, with clients still sending.
            wait_until(lambda: len(store.statuses()) + store.spooled() >= 25, 60)
            first.kill()  # SIGKILL: no chance to finish anything
            first.wait(10)
            killed_at = datetime.now(UTC)
            for t in threads:
                t.join(120)
        accepted = {mid for mid, code in answers.items() if code == 250}
        refused = set(answers) - accepted
        assert len(answers) == clients * per_client
        assert accepted and refused, f"the kill was not mid-burst ({len(accepted)} accepted)"
        print(f"kill -9 mid-burst: {len(accepted)} accepted (250), {len(refused)} not answered")

        with serve_process(config, tmp_path / "serve-2.log"):
            port = listening_port(tmp_path / "serve-2.log")
            wait_until(lambda: settled(store), 60)
            counts = store.inbound_counts()
            assert all(counts[mid] == 1 for mid in accepted), "a 250 message lost or doubled"
            assert all(counts[mid] <= 1 for mid in refused)
            # The senders retry what was not accepted, as MTAs do: still exactly once each.
            for mid in sorted(refused):
                client_no, number = map(int, re.findall(r"burst-(\d+)-(\d+)@", mid)[0])
                assert send(port, burst_message(client_no, number)) == 250
            wait_until(lambda: settled(store), 60)
            counts = store.inbound_counts()
            assert {mid: counts[mid] for mid in answers} == dict.fromkeys(answers, 1)
            attachments = store.scalar(select(func.count()).select_from(Attachment))
            assert attachments == sum(1 for i in range(per_client) if i % 3 == 0) * clients

            # Every notification is sent exactly once, or marked: leased by the killed
            # sender (sent again once the lease runs out) and received at most once so far.
            lease = lease_for(load_config(config).outbound)
            lease_end = killed_at + lease + timedelta(seconds=5)

            def outbox() -> list[Any]:
                return store.rows(
                    select(OutboxEntry.message_id, OutboxEntry.status, OutboxEntry.attempts,
                           OutboxEntry.next_attempt_at)
                )  # fmt: skip

            def leased_by_the_killed(row: Any) -> bool:
                _, status, attempts, next_attempt = row
                until = next_attempt.replace(tzinfo=next_attempt.tzinfo or UTC)
                return status == "queued" and attempts >= 1 and until <= lease_end

            wait_until(lambda: all(r[1] == "sent" or leased_by_the_killed(r) for r in outbox()), 60)
            rows = outbox()
            received = collections.Counter(str(m["Message-ID"]) for m in sink.parsed())
            assert set(received) <= {row[0] for row in rows}, "mail nobody queued"
            for row in rows:
                if row[1] == "sent":
                    assert received[row[0]] == 1, (row[0], received[row[0]])
                else:
                    assert received[row[0]] <= 1, (row[0], received[row[0]])
            assert sum(1 for r in rows if r[1] != "sent") <= 50, "more than one batch in flight"
            print(
                f"after restart: {len(counts)} messages stored once each, outbox "
                f"{sum(1 for r in rows if r[1] == 'sent')} sent, "
                f"{sum(1 for r in rows if r[1] != 'sent')} leased by the killed daemon"
            )


# --- the database goes away, then comes back ------------------------------------------------


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster in a temporary directory, on its own port."""

    bindir: Path
    base: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-o", options, "-l", str(self.base / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        skip_or_fail(
            "initdb/pg_ctl not found under /usr/lib/postgresql (apt-get install postgresql)"
        )
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="maildesk-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(base / "data"), "-A", "trust",
             "-U", "postgres", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        cluster = PrivatePostgres(bindir, base, free_port(), as_user)
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_stopped_answers_451_and_recovers_without_restart(
    private_postgres: PrivatePostgres, tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = write_config(private_postgres.url, sink.port)
    log = tmp_path / "serve.log"
    with serve_process(config, log) as proc, store_at(private_postgres.url) as store:
        port = listening_port(log)
        assert send(port, mail("Before the outage", message_id="<pg-1@example.org>")) == 250
        wait_until(lambda: store.inbound_counts()["<pg-1@example.org>"] == 1)

        private_postgres.stop()
        assert send(port, mail("During the outage", message_id="<pg-2@example.org>")) == 451
        done = deliver(config, mail("Piped during the outage", message_id="<pg-3@example.org>"))
        assert done.returncode == 75, done.stderr.decode()
        assert proc.poll() is None, "the daemon keeps running without its database"

        private_postgres.start()
        # No restart: the next attempt the senders make goes through.
        wait_until(
            lambda: send(port, mail("During the outage", message_id="<pg-2@example.org>")) == 250,
            30,
            interval=0.1,
        )
        done = deliver(config, mail("Piped during the outage", message_id="<pg-3@example.org>"))
        assert done.returncode == 0, done.stderr.decode()
        wait_until(lambda: settled(store), 30)
        counts = store.inbound_counts()
        assert counts == collections.Counter(
            {"<pg-1@example.org>": 1, "<pg-2@example.org>": 1, "<pg-3@example.org>": 1}
        )
        assert len(store.statuses()) == 3, "nothing half-written during the outage"
        assert proc.poll() is None


def test_sqlite_locked_answers_451_and_recovers_without_restart(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    db = tmp_path / "md.db"
    url = f"sqlite:///{db}"
    config = write_config(url, sink.port, busy_timeout="500ms")
    log = tmp_path / "serve.log"
    with serve_process(config, log) as proc, store_at(url) as store:
        port = listening_port(log)
        assert send(port, mail("Before the lock", message_id="<lock-1@example.org>")) == 250
        wait_until(lambda: settled(store) and len(store.statuses()) == 1)

        holder = sqlite3.connect(db, timeout=10, isolation_level=None)
        assert store.spool is not None
        spool_holder = sqlite3.connect(store.spool, timeout=10, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
            # SMTP mail goes to the spool, which the lock on the ticket database leaves free.
            assert send(port, mail("Spooled", message_id="<lock-2@example.org>")) == 250
            piped = deliver(config, mail("Piped while locked", message_id="<lock-3@example.org>"))
            assert piped.returncode == 75, piped.stderr.decode()
            spool_holder.execute("BEGIN EXCLUSIVE")  # and the spool's
            assert send(port, mail("Locked out", message_id="<lock-4@example.org>")) == 451
        finally:
            for conn in (holder, spool_holder):
                conn.execute("ROLLBACK")
                conn.close()

        assert send(port, mail("Locked out", message_id="<lock-4@example.org>")) == 250
        piped = deliver(config, mail("Piped while locked", message_id="<lock-3@example.org>"))
        assert piped.returncode == 0, piped.stderr.decode()
        wait_until(lambda: settled(store) and len(store.statuses()) == 4, 30)
        assert set(store.inbound_counts().values()) == {1}
        assert proc.poll() is None


# --- the smarthost goes away, then comes back -----------------------------------------------


def test_smarthost_down_for_a_while_then_everything_is_delivered_once(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    smarthost_port = free_port()
    url = f"sqlite:///{tmp_path / 'md.db'}"
    config = write_config(url, smarthost_port)
    config.write_text(
        config.read_text().replace("max_attempts = 3", 'max_attempts = 50\nmax_backoff = "2s"'),
        encoding="utf-8",
    )
    log = tmp_path / "serve.log"
    with serve_process(config, log), store_at(url) as store:
        port = listening_port(log)
        for n in range(3):
            assert send(port, mail(f"While the smarthost is down {n}")) == 250
        retried = select(func.count()).where(
            OutboxEntry.status == "queued", OutboxEntry.attempts >= 2
        )
        wait_until(lambda: store.scalar(retried) == 6, 30)  # 3 acknowledgements, 3 notices
        errors = [r[0] for r in store.rows(select(OutboxEntry.last_error))]
        assert all(e and "Connection refused" in e for e in errors), errors

        sink = Sink(port=smarthost_port)
        controller = Controller(_SinkHandler(sink), hostname="127.0.0.1", port=smarthost_port)
        controller.start()
        try:
            wait_until(
                lambda: all(r[0] == "sent" for r in store.rows(select(OutboxEntry.status))), 30
            )
            received = collections.Counter(str(m["Message-ID"]) for m in sink.parsed())
            queued = {r[0] for r in store.rows(select(OutboxEntry.message_id))}
            assert set(received) == queued and set(received.values()) == {1}
        finally:
            controller.stop()


# --- the disk fills up ----------------------------------------------------------------------


def big_attachment_mail(subject: str, size: int = 150_000) -> EmailMessage:
    msg = mail(subject, "Logs attached.", message_id=f"<{uuid.uuid4().hex}@example.org>")
    msg.add_attachment(os.urandom(size), maintype="application", subtype="octet-stream",
                       filename="logs.bin")  # fmt: skip
    return msg


def test_disk_full_is_a_temporary_failure_not_data_loss(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "md.db"
    config = write_config(f"sqlite:///{db}", sink.port, busy_timeout="2s")
    # 0: no cap; else the database (the ticket database, the spool) may not grow past this
    # many pages.
    pages = {"db": 0, "spool": 0}

    with running_desk(config, sink) as desk:
        assert desk.app.spool is not None

        def cap(engine: Any, name: str) -> None:
            @event.listens_for(engine, "checkout")
            def _disk_size(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
                # SQLite's own cap on the file size, per connection: writes past it fail with
                # SQLITE_FULL ("database or disk is full"), exactly as on a full disk.
                cursor = dbapi_conn.cursor()
                cursor.execute(f"PRAGMA max_page_count = {pages[name] or 1_073_741_823}")
                cursor.close()

        cap(desk.app.engine, "db")
        cap(desk.app.spool.engine, "spool")

        def used(path: Path) -> int:
            with contextlib.closing(sqlite3.connect(path)) as probe:
                return int(probe.execute("PRAGMA page_count").fetchone()[0])

        assert send(desk.port, mail("Small one")) == 250
        desk.wait_tickets(1)

        # Room for the raw message (about 50 pages), not for its attachment copy as well.
        pages["db"] = used(db) + 70
        first = big_attachment_mail("Logs when the disk filled up")
        payload = first.get_payload()[-1].get_payload(decode=True)  # type: ignore[index,union-attr]
        caplog.clear()
        assert send(desk.port, first) == 250
        wait_until(lambda: any("pipeline paused" in r.getMessage() for r in caplog.records), 30)
        assert desk.app.spool.backlog()[0] == 1, "kept for later in the spool"
        assert "quarantined" not in desk.raw_statuses(), "not quarantined"
        pages["spool"] = used(desk.app.spool.path) + 10  # the disk is full for the spool too
        assert send(desk.port, big_attachment_mail("One more while full")) == 451

        pages["db"] = pages["spool"] = 0  # space again
        wait_until(lambda: desk.raw_statuses()[-1:] == ["processed"], 30)
        wait_until(lambda: desk.app.spool.backlog()[0] == 0 and len(desk.raw_statuses()) == 2)
        [ticket] = [t for t in desk.tickets() if t["subject"] == "Logs when the disk filled up"]
        detail = desk.ticket(ticket["ref"])
        [inbound] = [m for m in detail["messages"] if m["direction"] == "in"]
        assert [a["filename"] for a in inbound["attachments"]] == ["logs.bin"]
        with desk.app.sessions() as s:
            stored = s.scalar(select(Attachment.content).where(Attachment.filename == "logs.bin"))
        assert stored == payload
        assert send(desk.port, big_attachment_mail("One more while full")) == 250
        desk.wait_tickets(3)
        assert desk.json("quarantine") == []


# --- one message the database refuses must not stop the others ------------------------------


# The refusal is PostgreSQL's (class 54, a program limit).
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_message_the_database_refuses_does_not_stop_the_pipeline(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    with running_desk(write_config(db_url, sink.port), sink) as desk:
        with desk.app.engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'refused for the test' "
                    "USING ERRCODE = '54000'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
                )
            )
        assert send(desk.port, mail("poison")) == 250
        assert send(desk.port, mail("Healthy one")) == 250
        wait_until(lambda: any(t["subject"] == "Healthy one" for t in desk.tickets()), 8)
        [held] = wait_until(lambda: desk.json("quarantine"), 8)
        assert held["subject"] == "poison" and "refused" in held["reason"]


# --- load ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_short_soak_counts_match() -> None:
    """bench/soak.py, briefly: what got 250 is what the store holds, and the daemon stays flat."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "0.25", "--clients", "6",
         "--json"],
        capture_output=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    report = json.loads(done.stdout)
    [row] = report["results"]
    assert done.returncode == 0, (report["checks"], report["errors"], done.stderr[-2000:])
    assert row["accepted"] > 50 and row["replies"] > 0
    assert row["tickets"] == row["new"] and row["inbound"] == row["accepted"]
