"""maildesk import reads mbox and Maildir as Python's mailbox module does, but streaming."""

from __future__ import annotations

import mailbox
from pathlib import Path

from maildesk.ingest.mailbox import read_mailbox
from tests.conftest import mail


def test_mbox_reads_like_the_standard_library(tmp_path: Path) -> None:
    path = tmp_path / "box.mbox"
    box = mailbox.mbox(path)
    for n in range(5):
        msg = mail(f"Message {n}", f"Line one.\nFrom the start of a line.\n\nEnd {n}.")
        box.add(msg)
    box.flush()
    box.close()
    reference = mailbox.mbox(path)
    expected = [reference.get_bytes(key) for key in reference.iterkeys()]
    reference.close()
    total, messages = read_mailbox(path)
    assert total == 5
    assert list(messages) == expected


def test_maildir_in_name_order(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "md")
    keys = [box.add(mail(f"Message {n}")) for n in range(3)]
    total, messages = read_mailbox(tmp_path / "md")
    assert total == 3
    assert list(messages) == [box.get_bytes(k) for k in sorted(keys)]
