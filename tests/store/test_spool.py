"""The SQLite spool: SMTP mail is committed to a file of its own, the pipeline takes it into
the ticket database exactly once, across a crash (kill -9) at either point between the two
files' commits, and a 250 never waits for the ticket database's write lock.
"""

from __future__ import annotations

import shutil
import smtplib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maildesk import pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.ingest.inbox import Incoming
from maildesk.store import spool as spool_module
from maildesk.store.db import transaction
from maildesk.store.models import Message, RawMessage, Ticket
from maildesk.store.spool import spool_path
from tests.conftest import Sink, mail, run_maildesk, running_desk

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, sqlite_template: Path, write_config: Callable[..., Path]) -> Path:
    db = tmp_path / "maildesk.db"
    shutil.copyfile(sqlite_template, db)
    return write_config(f"sqlite:///{db}")


@pytest.fixture
def app(config: Path) -> Iterator[App]:
    built = App.build(load_config(config))
    try:
        yield built
    finally:
        built.close()


def counts(app: App) -> tuple[int, int, int]:
    """Tickets, raw messages and inbound messages in the ticket database."""
    with transaction(app.sessions, readonly=True) as s:
        return (
            int(s.scalar(select(func.count()).select_from(Ticket)) or 0),
            int(s.scalar(select(func.count()).select_from(RawMessage)) or 0),
            int(s.scalar(select(func.count()).where(Message.direction == "in")) or 0),
        )


def spooled(app: App) -> int:
    assert app.spool is not None
    return app.spool.backlog()[0]


def test_the_spool_sits_beside_a_sqlite_file_and_not_elsewhere() -> None:
    assert spool_path("sqlite:///var/maildesk.db") == Path("var/maildesk-spool.db")
    assert spool_path("sqlite:////srv/desk/store.sqlite") == Path("/srv/desk/store-spool.sqlite")
    assert spool_path("sqlite://") is None
    assert spool_path("sqlite:///:memory:") is None
    assert spool_path("postgresql+psycopg://desk@db/maildesk") is None


def test_spooled_mail_is_taken_once_and_forgotten(app: App) -> None:
    ids = inbox.store_raws(app, [Incoming(mail(f"Spooled {n}").as_bytes(), "smtp") for n in (1, 2)])
    assert len(ids) == 2 and spooled(app) == 2
    assert counts(app) == (0, 0, 0), "nothing is in the ticket database before the pipeline"
    outcomes = pipeline.process_pending(app)
    assert [o.status for o in outcomes] == ["created", "created"]
    assert counts(app) == (2, 2, 2)
    assert spooled(app) == 0
    assert pipeline.process_pending(app) == []
    with transaction(app.sessions, readonly=True) as s:
        keys = list(s.scalars(select(RawMessage.spool_key)))
    assert all(k and k.endswith(f".{i}") for k, i in zip(keys, ids, strict=True)), keys


def test_the_log_of_forgotten_mail_is_checkpointed_into_the_file(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The spool never checkpoints by itself: forget() does, after CHECKPOINT_BYTES of mail.
    monkeypatch.setattr(spool_module, "CHECKPOINT_BYTES", 1)
    assert app.spool is not None
    body = "x" * 60_000
    inbox.store_raws(app, [Incoming(mail(f"Big {n}", body).as_bytes(), "smtp") for n in range(4)])
    before = app.spool.path.stat().st_size
    outcomes = pipeline.process_pending(app)
    assert [o.status for o in outcomes] == ["created"] * 4
    assert spooled(app) == 0
    assert not [r for r in caplog.records if "checkpoint failed" in r.getMessage()]
    # The mail's pages went from the log into the file (a checkpoint refused inside a
    # transaction, as it once was, left the file as it was and the log growing forever).
    assert app.spool.path.stat().st_size >= before + 4 * 60_000


def test_status_counts_the_spool_in_the_backlog(app: App, config: Path) -> None:
    inbox.store_raws(app, [Incoming(mail("Waiting").as_bytes(), "smtp")])
    out = run_maildesk("status", "--json", "--config", str(config), cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert '"pending": 1' in out.stdout, out.stdout


def test_a_new_spool_file_never_reuses_a_key(app: App) -> None:
    inbox.store_raws(app, [Incoming(mail("First").as_bytes(), "smtp")])
    pipeline.process_pending(app)
    assert app.spool is not None
    app.spool.close()
    for leftover in app.spool.path.parent.glob(f"{app.spool.path.name}*"):
        leftover.unlink()  # the admin removed the spool: ids start at 1 again
    again = App.build(load_config(app.config.path))
    try:
        inbox.store_raws(again, [Incoming(mail("Second").as_bytes(), "smtp")])
        assert [o.status for o in pipeline.process_pending(again)] == ["created"]
        assert counts(again) == (2, 2, 2)
    finally:
        again.close()


# --- kill -9 between the two commits --------------------------------------------------------

CHILD = """
import os, signal, sys
from maildesk import pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.ingest.inbox import Incoming
from maildesk.store.spool import Spool

def die(*_args):
    os.kill(os.getpid(), signal.SIGKILL)

app = App.build(load_config(sys.argv[1]))
raw = open(sys.argv[3], "rb").read()
inbox.store_raws(app, [Incoming(raw, "smtp")])
if sys.argv[2] == "after-spool-commit":
    die()
Spool.forget = die  # after the ticket commit, before the spool forgets the row
pipeline.process_pending(app)
raise SystemExit("not killed")
"""


def crash(config: Path, where: str, tmp_path: Path) -> None:
    """A process stores one message through the spool and is killed (SIGKILL) at `where`."""
    raw = tmp_path / "message.eml"
    raw.write_bytes(mail("Crash test", message_id="<crash@example.org>").as_bytes())
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), where, str(raw)],
        capture_output=True,
        timeout=60,
        cwd=REPO,
    )
    assert child.returncode == -9, child.stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["after-spool-commit", "after-ticket-commit"])
def test_a_crash_between_the_spool_and_the_ticket_commit_loses_and_doubles_nothing(
    config: Path, tmp_path: Path, where: str
) -> None:
    crash(config, where, tmp_path)
    app = App.build(load_config(config))
    try:
        assert spooled(app) == 1, "the accepted message is still in the spool"
        before = counts(app)
        assert before == ((0, 0, 0) if where == "after-spool-commit" else (1, 1, 1))
        outcomes = pipeline.process_pending(app)  # what a restarted daemon does first
        assert [o.status for o in outcomes] == (["created"] if before[0] == 0 else [])
        assert counts(app) == (1, 1, 1), "exactly one ticket, one raw message, one message"
        assert spooled(app) == 0
        with transaction(app.sessions, readonly=True) as s:
            assert list(s.scalars(select(RawMessage.status))) == ["processed"]
    finally:
        app.close()


# --- the 250 and the ticket database's write lock -------------------------------------------


def test_smtp_accepts_while_the_ticket_database_is_locked(config: Path, sink: Sink) -> None:
    with running_desk(config, sink) as desk:
        db = sqlite3.connect(desk.config.database.url.removeprefix("sqlite:///"), timeout=1)
        try:
            db.execute("BEGIN IMMEDIATE")  # the pipeline's and the sender's lock, held
            started = time.monotonic()
            with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as smtp:
                smtp.send_message(mail("While locked"), to_addrs=["support@example.com"])
            took = time.monotonic() - started
            assert took < 2.0, f"the 250 waited {took:.2f}s for the ticket database"
            assert desk.app.spool is not None and desk.app.spool.backlog()[0] == 1
        finally:
            db.rollback()
            db.close()
        desk.wait_tickets(1)
        assert desk.wait_processed(1) == ["processed"]
