"""Big raw messages and attachments are stored byte-exact on both databases, written in
chunks on SQLite, and a rollback (of the transaction or of a savepoint) keeps none of them."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maildesk.store import blobs
from maildesk.store.db import create_db_engine, session_factory, transaction
from maildesk.store.models import Attachment, RawMessage
from maildesk.store.raw import save_raw
from tests.conftest import run_cli

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("size", [10, blobs.BIG_BLOB - 1, blobs.BIG_BLOB, 3 * blobs.BIG_BLOB + 7])
def test_raw_messages_of_any_size_are_stored_byte_exact(db_url: str, size: int) -> None:
    engine = create_db_engine(db_url)
    sessions = session_factory(engine)
    data = os.urandom(size)
    try:
        with transaction(sessions) as session:
            row = save_raw(session, data, origin="import", now=NOW)
            assert row.raw == data  # held as given, not read back
            raw_id = row.id
        with transaction(sessions, readonly=True) as session:
            stored = session.scalar(select(RawMessage.raw).where(RawMessage.id == raw_id))
        assert stored == data
    finally:
        engine.dispose()


def test_a_rolled_back_savepoint_or_transaction_keeps_no_big_value(db_url: str) -> None:
    engine = create_db_engine(db_url)
    sessions = session_factory(engine)
    big = os.urandom(2 * blobs.BIG_BLOB)
    try:
        with transaction(sessions) as session:
            kept = save_raw(session, big, origin="import", now=NOW).id
            with pytest.raises(RuntimeError), session.begin_nested():
                save_raw(session, big[::-1], origin="import", now=NOW)
                raise RuntimeError("this message fails")
            assert not session.info.get("maildesk_blobs")
        with pytest.raises(RuntimeError), transaction(sessions) as session:
            save_raw(session, big, origin="import", now=NOW)
            session.flush()
            raise RuntimeError("the whole batch fails")
        with transaction(sessions, readonly=True) as session:
            rows = session.execute(select(RawMessage.id, RawMessage.raw)).all()
        assert [(r.id, r.raw) for r in rows] == [(kept, big)]
    finally:
        engine.dispose()


def test_an_imported_big_attachment_is_stored_byte_exact(
    tmp_path: Path, write_config: object, sqlite_template: Path
) -> None:
    import base64
    import shutil

    db = tmp_path / "maildesk.db"
    shutil.copyfile(sqlite_template, db)
    config = write_config(f"sqlite:///{db}")  # type: ignore[operator]
    data = os.urandom(3 * blobs.BIG_BLOB)
    encoded = b"\n".join(base64.encodebytes(data).splitlines())
    mbox = tmp_path / "big.mbox"
    mbox.write_bytes(
        b"From carol@example.org Mon Mar 04 07:30:00 2024\n"
        b"From: carol@example.org\nTo: support@example.com\nSubject: the report\n"
        b"Message-ID: <big-1@example.org>\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        b"Attached.\n--b\nContent-Type: application/pdf; name=r.pdf\n"
        b"Content-Transfer-Encoding: base64\n\n" + encoded + b"\n--b--\n\n"
    )
    code, out = run_cli("import", "--quiet", "--config", str(config), str(mbox))
    assert code == 0, out
    engine = create_db_engine(f"sqlite:///{db}")
    try:
        with transaction(session_factory(engine), readonly=True) as session:
            stored = session.execute(select(Attachment.filename, Attachment.content)).all()
            raws = session.scalar(select(func.count()).select_from(RawMessage))
    finally:
        engine.dispose()
    assert [(f, c) for f, c in stored] == [("r.pdf", data)]
    assert raws == 1
