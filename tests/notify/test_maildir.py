"""The Maildir transport makes the folders it writes to, parents included: on a fresh
machine whose database is not a file under var/ (PostgreSQL), nothing else makes var/."""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from pathlib import Path

from maildesk.mail.transport import MaildirTransport
from tests.conftest import Sink, mail, running_desk, wait_until

RAW = b"From: support@example.com\r\nTo: carol@example.org\r\nSubject: x\r\n\r\nHello.\r\n"


def test_missing_parent_folders_are_made(tmp_path: Path) -> None:
    path = tmp_path / "var" / "outbox"
    MaildirTransport(path).send("support@example.com", ["carol@example.org"], RAW)
    [message] = list(mailbox.Maildir(path, create=False))
    assert message.as_bytes().replace(b"\n", b"\r\n") == RAW
    assert {p.name for p in path.iterdir()} == {"tmp", "new", "cur"}


def test_an_empty_folder_gets_its_subfolders(tmp_path: Path) -> None:
    path = tmp_path / "outbox"
    path.mkdir()  # made by hand, or by an older install: no tmp/new/cur yet
    MaildirTransport(path).send("support@example.com", ["carol@example.org"], RAW)
    assert len(list((path / "new").iterdir())) == 1


def test_desk_writes_notifications_to_a_maildir_it_makes(
    db_url: str, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url)
    config.write_text(
        config.read_text().replace(
            'transport = "smtp"', 'transport = "maildir"\npath = "state/var/outbox"'
        )
    )
    outbox = tmp_path / "state" / "var" / "outbox"
    assert not outbox.parent.exists()
    with running_desk(config, Sink()) as desk:
        desk.send(mail("Printer on fire"))
        wait_until(lambda: [e["status"] for e in desk.json("outbox")] == ["sent", "sent"])
    assert len(list((outbox / "new").iterdir())) == 2  # the acknowledgement, the agent notice


def test_a_batch_is_in_new_at_once_and_closing_keeps_every_message(tmp_path: Path) -> None:
    path = tmp_path / "outbox"
    transport = MaildirTransport(path)
    bodies = [RAW.replace(b"Hello", f"Hello {n}".encode()) for n in range(3)]
    for body in bodies:
        transport.send("support@example.com", ["carol@example.org"], body)
    # Each is in new/ once sent; only the sync waits for the end of the batch.
    assert len(list((path / "new").iterdir())) == 3
    transport.close()  # the batch's one sync
    transport.close()  # nothing more to sync
    stored = sorted(p.read_bytes() for p in (path / "new").iterdir())
    assert stored == sorted(bodies)
    assert list((path / "tmp").iterdir()) == []
