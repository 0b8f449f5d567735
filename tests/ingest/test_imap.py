"""IMAP ingestion against a real Dovecot (tests/servers/dovecot-test-server.sh), started
and stopped by the tests: poll, IDLE, exactly once, after-actions, size limit, UIDVALIDITY,
a wrong password, and Dovecot going away while maildesk runs."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from maildesk.app import App
from maildesk.config import load_config
from maildesk.store.models import RawMessage
from tests.conftest import (
    Sink,
    free_port,
    mail,
    run_cli,
    running_desk,
    serve_process,
    skip_or_fail,
    wait_until,
)

SCRIPT = Path(__file__).resolve().parents[1] / "servers" / "dovecot-test-server.sh"
USER, PASSWORD = "support@example.com", "secret"


@dataclass
class Dovecot:
    directory: str
    port: int

    def _script(self, *args: str) -> None:
        # Output to a file, not a pipe: the daemonised Dovecot would hold a pipe open.
        with open(Path(self.directory) / "script.log", "ab") as log:
            done = subprocess.run(
                [str(SCRIPT), *args], stdout=log, stderr=subprocess.STDOUT, timeout=60
            )
        assert done.returncode == 0, (Path(self.directory) / "script.log").read_text()

    def start(self) -> None:
        self._script("start", self.directory, str(self.port), f"{USER}:{PASSWORD}")

    def stop(self) -> None:
        self._script("stop", self.directory)

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(USER, PASSWORD)
        return c

    def append(self, subject: str, *, folder: str = "INBOX", size: int = 0) -> str:
        message_id = f"<{uuid.uuid4().hex}@client.example.org>"
        msg = mail(subject, "x" * size or "Please help.", message_id=message_id)
        c = self.client()
        try:
            c.append(folder, msg.as_bytes())
        finally:
            c.logout()
        return message_id

    def uids(self, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        c = self.client()
        try:
            c.select_folder(folder)
            return list(c.search(criteria))
        finally:
            c.logout()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if not Path("/usr/sbin/dovecot").exists():
        skip_or_fail("Dovecot is not installed (apt-get install dovecot-imapd)")
    directory = tempfile.mkdtemp(prefix="maildesk-dovecot-")  # world-searchable parents
    server = Dovecot(directory, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def mailbox_toml(dovecot: Dovecot, **keys: object) -> str:
    settings = {
        "name": "support",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "tls": "none",
        "username": USER,
        "password": PASSWORD,
        "poll_interval": "1s",
        **keys,
    }
    body = "\n".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, str) else v}"
        for k, v in settings.items()
    )
    return f"\n[[mailboxes]]\n{body}\n"


def _poll(config: Path) -> tuple[int, str]:
    return run_cli("poll", "--config", str(config))


def test_poll_stores_each_message_once_and_marks_seen(
    dovecot: Dovecot, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, extra=mailbox_toml(dovecot, idle=False))
    dovecot.append("Printer on fire")
    dovecot.append("VPN down")

    code, out = _poll(config)
    assert code == 0, out
    assert "support: 2 new message(s), 2 new ticket(s)" in out
    assert dovecot.uids(criteria="UNSEEN") == []
    code, out = _poll(config)
    assert "support: 0 new message(s)" in out
    dovecot.append("Monitor flickers")
    code, out = _poll(config)
    assert "1 new message(s), 1 new ticket(s)" in out
    code, out = run_cli("tickets", "--json", "--config", str(config))
    assert len(json.loads(out)) == 3


def test_move_and_delete_after_ingest(
    dovecot: Dovecot, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, extra=mailbox_toml(dovecot, after="move", move_to="Done"))
    dovecot.append("One")
    assert _poll(config)[0] == 0
    assert dovecot.uids() == [] and len(dovecot.uids("Done")) == 1

    config.write_text(
        config.read_text().replace("after = 'move'\nmove_to = 'Done'", "after = 'delete'")
    )
    dovecot.append("Two")
    assert _poll(config)[0] == 0
    assert dovecot.uids() == []
    assert len(dovecot.uids("Done")) == 1


def test_oversize_is_skipped_and_left_in_place(
    dovecot: Dovecot, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, extra=mailbox_toml(dovecot, max_message_size="5KB"))
    dovecot.append("Huge log", size=20_000)
    dovecot.append("Small")
    code, out = _poll(config)
    assert code == 0 and "1 new message(s)" in out and "1 over the size limit skipped" in out
    assert len(dovecot.uids(criteria="UNSEEN")) == 1  # the big one, untouched
    assert "0 new message(s)" in _poll(config)[1]  # and not retried every pass

    config.write_text(config.read_text() + "oversize_to = 'Too big'\n")
    dovecot.append("Another huge one", size=20_000)
    code, out = _poll(config)
    assert code == 0 and "1 over the size limit skipped" in out
    assert len(dovecot.uids("Too big")) == 1


def test_uidvalidity_change_rescans_without_duplicate_tickets(
    dovecot: Dovecot, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, extra=mailbox_toml(dovecot, folder="Support"))
    c = dovecot.client()
    c.create_folder("Support")
    c.logout()
    dovecot.append("First", folder="Support")
    assert "1 new ticket(s)" in _poll(config)[1]
    # Recreate the folder with the same message plus a new one: a new UIDVALIDITY.
    c = dovecot.client()
    c.delete_folder("Support")
    c.create_folder("Support")
    c.logout()
    app = App.build(load_config(config))
    try:
        with app.sessions() as session:
            raw_first = session.scalars(select(RawMessage.raw).select_from(RawMessage)).first()
    finally:
        app.close()
    assert raw_first is not None
    c = dovecot.client()
    c.append("Support", raw_first)
    c.logout()
    dovecot.append("Second", folder="Support")
    code, out = _poll(config)
    assert code == 0, out
    assert "UIDVALIDITY changed" in out and "2 new message(s), 1 new ticket(s)" in out


def test_wrong_password_is_a_clear_error(
    dovecot: Dovecot, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, extra=mailbox_toml(dovecot, password="wrong"))
    code, out = _poll(config)
    assert code == 75
    assert "mailbox 'support'" in out and "login refused" in out


def test_serve_ingests_via_idle_and_survives_a_dovecot_restart(
    dovecot: Dovecot,
    db_url: str,
    sink: Sink,
    write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = write_config(db_url, sink.port, extra=mailbox_toml(dovecot, poll_interval="60s"))
    with running_desk(config, sink) as desk:
        dovecot.append("Through IDLE")
        wait_until(lambda: [t for t in desk.tickets() if t["subject"] == "Through IDLE"])

        dovecot.stop()
        wait_until(lambda: "retrying with backoff" in caplog.text, timeout=20)
        dovecot.start()
        dovecot.append("After the restart")
        wait_until(
            lambda: [t for t in desk.tickets() if t["subject"] == "After the restart"],
            timeout=40,
        )
        assert len(desk.tickets()) == 2


def test_killed_mid_batch_then_restarted_loses_and_duplicates_nothing(
    dovecot: Dovecot, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A poll-only mailbox in `serve`; the daemon is SIGKILLed while a batch is under way."""
    db = tmp_path / "md.db"
    config = write_config(f"sqlite:///{db}", extra=mailbox_toml(dovecot, idle=False, batch_size=5))
    config.write_text(
        config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{free_port()}"')
    )
    c = dovecot.client()
    for n in range(120):
        c.append(
            "INBOX",
            mail(
                f"Request {n}",
                sender=f"user{n}@client.example.org",  # one sender would trip the flood guard
                message_id=f"<bulk-{n}@client.example.org>",
            ).as_bytes(),
        )
    c.logout()

    def stored() -> int:
        if not db.exists():
            return 0
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            try:
                return int(conn.execute("SELECT count(*) FROM raw_messages").fetchone()[0])
            except sqlite3.OperationalError:  # schema not there yet
                return 0

    with serve_process(config, tmp_path / "first.log") as first:
        wait_until(lambda: stored() >= 10, timeout=30)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert stored() < 120, "the kill came too late to test anything"

    with serve_process(config, tmp_path / "second.log") as second:
        wait_until(lambda: stored() >= 120, timeout=60)
        wait_until(
            lambda: (
                len(json.loads(run_cli("tickets", "--json", "--config", str(config))[1])) >= 120
            ),
            timeout=60,
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    tickets = json.loads(run_cli("tickets", "--json", "--config", str(config))[1])
    assert sorted(t["subject"] for t in tickets) == sorted(f"Request {n}" for n in range(120))
    assert stored() == 120, "no message fetched twice"
    assert dovecot.uids(criteria="UNSEEN") == []
