"""The one frozen context a claimed message carries through the pipeline's steps.

It is built once the stored message is claimed. A step that finds something out (who the
requester is, the ticket the mail threads to and who wrote it, what ties it to that
ticket) passes on a copy with that filled in (`dataclasses.replace`), so every later step,
and the functions that open or append, read what the earlier steps found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.mail.message import ParsedMessage
from maildesk.parse.reply import new_text
from maildesk.pipeline.outcome import Sender
from maildesk.routing.thread import ThreadMatch
from maildesk.store.models import Contact, RawMessage, Ticket
from maildesk.store.repo import StoreThreadIndex


@dataclass(frozen=True)
class OnTicket:
    """The existing ticket a message threads to, and who wrote it."""

    match: ThreadMatch
    named: Ticket  # the ticket the mail names (it may have been merged since)
    ticket: Ticket  # the ticket that carries the conversation (merges followed)
    sender: Sender


@dataclass(frozen=True, kw_only=True)
class Context:
    """One claimed message inside its savepoint, and what the steps found out about it."""

    app: App
    session: Session
    raw: RawMessage
    msg: ParsedMessage
    raw_bytes: bytes
    now: datetime
    # Keeps the tickets it looked up, so later steps get them without a second query.
    index: StoreThreadIndex
    requester: str = ""  # From, else the envelope sender (set by the `requester` step)
    contact: Contact | None = None  # the requester's contact, if there is one yet
    existing: OnTicket | None = None  # set by the `existing_ticket` step
    tied_by: frozenset[str] = frozenset()  # besides the subject (set by the `tied` step)
    # What several steps may ask of the message, worked out once: the copies `replace`
    # makes share this dict.
    _memo: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def new_text(self) -> str:
        """What the reply's author wrote now (maildesk.parse.reply.new_text): seconds for a
        2 MB body, and the steps for replies may each want it."""
        if "new_text" not in self._memo:
            self._memo["new_text"] = new_text(self.msg.body_text, self.msg.body_html)
        return self._memo["new_text"]

    @property
    def on(self) -> OnTicket:
        """The existing ticket; only steps after `existing_ticket` (and what they call) ask."""
        if self.existing is None:
            raise AssertionError("the message has not been threaded to a ticket")
        return self.existing
