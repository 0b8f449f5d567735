"""The pipeline's savepoint per message and its quarantine write, with what a database error
means for one message: a conflict with another writer, data the database refuses, or the
store itself failing. The pipeline sees only the first two, as this module's exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from maildesk.store.models import RawMessage
from maildesk.terms import RawStatus

REASON_LIMIT = 4000  # characters of a quarantine reason kept on the row


class RowConflict(Exception):
    """Another writer stored the same unique value (a Message-ID) at the same moment."""


class RowRefused(Exception):
    """The database refused this message's data; retrying would block the queue."""


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """Run the block in a savepoint: a failure rolls back only the block, then propagates.

    An integrity error comes out as RowConflict and an error about the data as RowRefused
    (each carrying the database's message); any other database error is the store's own
    failure and propagates unchanged (see `is_store_failure`).
    """
    try:
        with session.begin_nested():
            yield
    except IntegrityError as exc:
        raise RowConflict(str(exc.orig)) from exc
    except DBAPIError as exc:
        if _refused(exc):
            raise RowRefused(str(exc.orig or exc)) from exc
        raise


def is_store_failure(exc: BaseException) -> bool:
    """A failure of the database itself (not of one message): the transaction must go."""
    return isinstance(exc, DBAPIError)


def _refused(exc: DBAPIError) -> bool:
    """A database error about this message's data (a DataError, PostgreSQL class 22; or
    class 54, a program limit such as an index row too large), not about the database:
    retrying would block the queue."""
    if isinstance(exc, DataError) and not exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return str(sqlstate).startswith("54")


def quarantine(session: Session, raw_id: int, reason: str, now: datetime) -> None:
    """Set a stored message that is still pending aside, with the reason."""
    session.execute(
        update(RawMessage)
        .where(RawMessage.id == raw_id, RawMessage.status == RawStatus.PENDING)
        .values(status=RawStatus.QUARANTINED, reason=reason[:REASON_LIMIT], processed_at=now)
        .execution_options(synchronize_session=False)
    )
