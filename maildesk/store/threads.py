"""What the threading step looks up: stored Message-IDs and references, reply tokens (and
the desk's secret that signs them), and the message a bounce quotes."""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maildesk.routing.proof import TokenCodec
from maildesk.store.models import Message, Setting, Ticket

THREAD_LOCK = 0x74687264  # the high half of a thread key's advisory lock ("thrd")


def lock_thread(session: Session, keys: Iterable[str], *, wait: bool) -> bool:
    """Hold a conversation's keys (routing.thread.thread_keys) until the transaction ends,
    so that two daemons processing mail of one conversation take turns: the second finds
    what the first stored. wait False: False at once if another transaction holds one
    (the caller commits what it holds, then waits). Locks are taken in one order, so two
    waiting transactions never deadlock. SQLite serialises writers: always True."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    for lock in sorted({THREAD_LOCK << 32 | zlib.crc32(key.encode()) for key in keys}):
        if wait:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})
        elif not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock}):
            return False
    return True


# Asked for every message: built once (PREBUILT in maildesk.store.db).
_MESSAGE_BY_ID = select(Message.id).where(Message.message_id == bindparam("mid")).limit(1)
_TICKETS_OF_MESSAGE_IDS = select(Message.message_id, Message.ticket_id).where(
    Message.message_id.in_(bindparam("mids", expanding=True))
)


def message_exists(session: Session, message_id: str) -> bool:
    return session.scalar(_MESSAGE_BY_ID, {"mid": message_id}) is not None


def message_ids_exist(session: Session, message_ids: Sequence[str]) -> set[str]:
    if not message_ids:
        return set()
    stmt = select(Message.message_id).where(Message.message_id.in_(list(message_ids)))
    return set(session.scalars(stmt))


class StoreThreadIndex:
    """The ThreadIndex of maildesk.routing.thread, answered from the database.

    A reply token is checked by its HMAC (no lookup); tokens made before HMAC tokens were
    random and stored on the ticket, and still thread through that column.
    """

    def __init__(
        self, session: Session, tokens: TokenCodec | None = None, sender: str = ""
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.sender = sender  # an agent token counts only for the agent it was minted for
        # The session's identity map holds objects weakly: keep the tickets looked up here,
        # so the pipeline's next get() of the same ticket needs no second query.
        self._seen: dict[int, Ticket] = {}

    def ticket_exists(self, ticket_id: int) -> bool:
        ticket = self.session.get(Ticket, ticket_id)
        if ticket is not None:
            self._seen[ticket_id] = ticket
        return ticket is not None

    def ticket_for_message_ids(self, message_ids: Sequence[str]) -> int | None:
        if not message_ids:
            return None
        rows = self.session.execute(_TICKETS_OF_MESSAGE_IDS, {"mids": list(message_ids)})
        found: dict[str, int] = {mid: tid for mid, tid in rows}
        # The nearest ancestor wins: message_ids come nearest first.
        return next((found[m] for m in message_ids if m in found), None)

    def ticket_for_token(self, token: str) -> int | None:
        verified = self.tokens.verify(token, self.sender) if self.tokens is not None else None
        if verified is not None:
            return verified.ticket_id if self.ticket_exists(verified.ticket_id) else None
        if "-" in token:
            return None
        return self.session.scalar(select(Ticket.id).where(Ticket.reply_token == token))


def bounced_message(session: Session, message_ids: Sequence[str]) -> Message | None:
    """The stored message a bounce quotes: one we sent if any, else any of the ticket's."""
    if not message_ids:
        return None
    stmt = (
        select(Message)
        .where(Message.message_id.in_(list(message_ids)[:200]))
        .order_by((Message.direction == "out").desc(), Message.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def desk_secret(session: Session) -> str:
    """The desk's generated reply-token secret, created on first use (shared by all daemons)."""
    found = session.get(Setting, "reply_secret")
    if found is not None:
        return found.value
    try:
        with session.begin_nested():
            session.add(Setting(key="reply_secret", value=secrets.token_hex(32)))
    except IntegrityError:  # another daemon made it at the same moment
        pass
    return session.get_one(Setting, "reply_secret").value
