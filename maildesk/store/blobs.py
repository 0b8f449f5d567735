"""Big binary values (raw messages, attachments) written to SQLite without two more copies.

Bound as a parameter, a 25 MB value is copied by the driver and again into the record
SQLite builds, so a big message cost three times its size in memory while it was
stored. On SQLite a value of BIG_BLOB bytes or more is inserted as a `zeroblob` of its
size and written into the row in chunks after the flush, in the same transaction (a
rollback undoes it with the row). PostgreSQL gets the value as a parameter as before.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, inspect
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from maildesk.store.models import Attachment

BIG_BLOB = 1 << 20
CHUNK = 1 << 20
_PENDING = "maildesk_blobs"


def set_blob(session: Session, obj: Any, attr: str, data: bytes) -> None:
    """`obj.attr = data` for an object about to be inserted (see the module's doc)."""
    if len(data) < BIG_BLOB or session.get_bind().dialect.name != "sqlite":
        setattr(obj, attr, data)
        return
    setattr(obj, attr, func.zeroblob(len(data)))
    session.info.setdefault(_PENDING, []).append((obj, attr, data))


def new_attachment(session: Session, content: bytes, **fields: Any) -> Attachment:
    """An Attachment row to be inserted, its content set with set_blob."""
    row = Attachment(**fields)
    set_blob(session, row, "content", content)
    return row


def stream_blobs(factory: sessionmaker[Session]) -> None:
    """Write the pending big values after every flush of the factory's sessions."""
    event.listen(factory, "after_flush_postexec", _write_pending)
    event.listen(factory, "after_soft_rollback", _forget)


def _write_pending(session: Session, _context: Any) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    left = []
    for obj, attr, data in pending:
        state = inspect(obj)
        if state.deleted or state.detached:
            continue
        if not state.persistent:  # not in this flush (not yet added): the next one
            left.append((obj, attr, data))
            continue
        mapper = state.mapper
        table, column = mapper.local_table.name, mapper.columns[attr].name
        dbapi = session.connection().connection.dbapi_connection
        assert dbapi is not None
        view = memoryview(data)
        with dbapi.blobopen(table, column, state.identity[0]) as blob:
            for start in range(0, len(data), CHUNK):
                blob.write(view[start : start + CHUNK])
        set_committed_value(obj, attr, data)
    if left:
        session.info[_PENDING] = left


def _forget(session: Session, _previous: Any) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)
