"""The desk's vocabulary, defined once: ticket statuses, priorities, types, and the states of
stored mail and outgoing notifications.

Each is a `StrEnum`: a member is the plain string the database stores and the user types
(`Status.ON_HOLD == "on-hold"`), so rows, config and JSON need no conversion. The groupings
below are the only place that says which statuses count as working, paused or done.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A ticket's status. `new` until someone acts on it; `merged` lives on in another."""

    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on-hold"
    AWAITING_APPROVAL = "awaiting-approval"  # a catalog request waiting for its approvers
    RESOLVED = "resolved"
    CLOSED = "closed"
    MERGED = "merged"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class TicketType(StrEnum):
    INCIDENT = "incident"
    REQUEST = "request"
    PROBLEM = "problem"
    CHANGE = "change"


class RawStatus(StrEnum):
    """Where a stored raw message stands in the pipeline."""

    PENDING = "pending"
    PROCESSED = "processed"
    DUPLICATE = "duplicate"  # the same mail (or the same report, fragment) again
    IGNORED = "ignored"  # our own notification came back
    QUARANTINED = "quarantined"
    SPAM = "spam"
    FLOOD = "flood"
    BOUNCE = "bounce"  # a bounce of mail that is on no ticket
    RECEIPT = "receipt"  # a read receipt of mail that is on no ticket
    PARTIAL = "partial"  # a fragment (message/partial) waiting for the rest of its set
    REASSEMBLED = "reassembled"  # a fragment whose set became one message (its own raw row)
    ALERT = "alert"  # a monitor's alert with no open incident to act on (recorded only)


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


# What an agent may set with `#status` or `ticket set status=` (new and merged are reached
# only by the desk itself).
SETTABLE_STATUSES: tuple[Status, ...] = (
    Status.OPEN,
    Status.PENDING,
    Status.ON_HOLD,
    Status.RESOLVED,
    Status.CLOSED,
)
# Working states: someone still has to act (least-open assignment counts these).
WORKING_STATUSES: tuple[Status, ...] = (
    Status.NEW,
    Status.OPEN,
    Status.PENDING,
    Status.ON_HOLD,
    Status.AWAITING_APPROVAL,
)
# Waiting on the requester, on hold or on approvers: SLA clocks stand still.
PAUSED_STATUSES: tuple[Status, ...] = (Status.PENDING, Status.ON_HOLD, Status.AWAITING_APPROVAL)
# Done: no SLA target applies; a requester's reply within the reopen window reopens.
DONE_STATUSES: tuple[Status, ...] = (Status.RESOLVED, Status.CLOSED, Status.MERGED)
REOPENABLE_STATUSES: tuple[Status, ...] = (Status.RESOLVED, Status.CLOSED)

PRIORITIES: tuple[str, ...] = tuple(Priority)
TYPES: tuple[str, ...] = tuple(TicketType)
# Stored mail set aside from the pipeline, listed by `maildesk quarantine`.
SET_ASIDE: tuple[RawStatus, ...] = (
    RawStatus.QUARANTINED,
    RawStatus.SPAM,
    RawStatus.FLOOD,
    RawStatus.BOUNCE,
    RawStatus.RECEIPT,
    RawStatus.PARTIAL,
)
OUTBOX_STATUSES: tuple[str, ...] = tuple(OutboxStatus)
