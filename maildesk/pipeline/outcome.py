"""What processing one stored message did (an Outcome), and the values the steps hand on."""

from __future__ import annotations

from dataclasses import dataclass

from maildesk.config import Agent


@dataclass(frozen=True)
class Outcome:
    """What processing one raw message did."""

    raw_id: int
    # created, appended, reopened, followup, linked, duplicate, ignored, dropped, bounce,
    # receipt, partial (a fragment waits), reassembled (a fragment completed its set),
    # quarantined, skipped, relayed, note, commands, rejected, deferred (back to pending)
    status: str
    ticket_id: int | None = None
    ref: str | None = None
    reason: str = ""
    then: int | None = None  # a raw message it stored for the pipeline (a reassembled one)
    rules: tuple[str, ...] = ()  # the routing rules that matched (a new ticket, a drop)


@dataclass(frozen=True)
class Sender:
    """Who wrote a message on an existing ticket, as far as it can be proven."""

    kind: str  # agent, unverified-agent, requester, watcher, stranger
    agent: Agent | None = None  # a proven agent
    proof: str = ""  # how the agent was proven
    doubt: str = ""  # the From claims an agent but nothing proves it: why not believed


class NoSender(Exception):
    """Neither a From address nor an envelope sender: nobody to answer (quarantined)."""
