"""Read an mbox file or a Maildir for `maildesk import`, one message at a time.

Python's mailbox module indexes a whole mbox before handing out the first message; this
reader streams it (memory stays flat however large the file), and for a Maildir lists the
file names only. Messages come in delivery order: file order for mbox, name order (the
delivery time maildir names start with) for Maildir.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from maildesk.errors import MaildeskError


def check_mailbox(path: Path) -> None:
    """MaildeskError unless path is a Maildir or a file that begins as an mbox does."""
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise MaildeskError(f"{path}: a directory but not a Maildir (no cur/ or new/)")
        return
    try:
        with path.open("rb") as f:
            start = f.read(4096).lstrip(b"\r\n")
    except OSError as exc:
        raise MaildeskError(f"{path}: cannot read: {exc.strerror}") from None
    if start and not start.startswith(b"From "):
        raise MaildeskError(
            f"{path} is not an mbox file (it does not begin with a 'From ' line) "
            "nor a Maildir (a directory with cur/ and new/)"
        )


def read_mailbox(path: Path) -> tuple[int, Iterator[bytes]]:
    """How many messages there are, and the messages' raw bytes one by one."""
    check_mailbox(path)
    if path.is_dir():
        files = sorted(
            (f for sub in ("new", "cur") if (path / sub).is_dir() for f in (path / sub).iterdir()),
            key=lambda f: f.name,
        )
        files = [f for f in files if f.is_file() and not f.name.startswith(".")]
        return len(files), (f.read_bytes() for f in files)
    return _count_mbox(path), _stream_mbox(path)


def _count_mbox(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.startswith(b"From "))


def _stream_mbox(path: Path) -> Iterator[bytes]:
    """Messages of an mbox: the text between "From " lines (a "From " inside a message is
    written as ">From " by mbox writers), without the "From " line and the blank line that
    ends each message; as Python's mailbox module reads them. Each message is gathered in
    one growing buffer (a list of its lines took twice its size again)."""
    buf: io.BytesIO | None = None
    last = b""
    with path.open("rb") as f:
        for line in f:
            if line.startswith(b"From "):
                if buf is not None:
                    yield _message(buf, last)
                buf, last = io.BytesIO(), b""
            elif buf is not None:
                buf.write(line)
                last = line
    if buf is not None:
        yield _message(buf, last)


def _message(buf: io.BytesIO, last: bytes) -> bytes:
    if last and not last.strip():  # the separator's blank line belongs to the mbox
        buf.truncate(buf.tell() - len(last))
    return buf.getvalue()
