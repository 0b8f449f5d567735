"""Reminders and automatic status changes: what is due for a ticket, and when.

A ticket pending on the requester gets a reminder `remind_after` business days after it
went pending, and is resolved `resolve_after` business days after that reminder (or after
going pending, when reminders are off). A resolved ticket closes `close_after` later
(calendar time). Everything is off unless configured. Business days are counted on the
calendar of the ticket's policy, else on [sla] calendar.

The caller keeps two facts per ticket: when its status last changed and when it was last
reminded. A reminder sent before the ticket last went pending does not count, so each
pending spell gets its own reminder, and running a step twice is harmless: the step done
changes one of the two facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from maildesk.sla.policy import SlaConfig
from maildesk.terms import Status

__all__ = ["LifecycleStep", "lifecycle_due", "next_lifecycle_step"]


@dataclass(frozen=True, kw_only=True)
class LifecycleStep:
    """The next automatic thing to do to a ticket, and from when."""

    action: str  # "remind" (tell the requester), "resolve" or "close"
    at: datetime


def next_lifecycle_step(
    sla: SlaConfig,
    *,
    policy: str | None,
    status: str,
    status_since: datetime,
    reminded_at: datetime | None,
) -> LifecycleStep | None:
    """The next step for a ticket in its current status, however far ahead; None if none."""
    settings = sla.lifecycle_of(policy)
    calendar = sla.calendar_of(policy)
    if status == Status.PENDING:
        reminded = reminded_at if reminded_at and reminded_at >= status_since else None
        if settings.remind_after and reminded is None:
            at = calendar.add_business_days(status_since, settings.remind_after)
            return LifecycleStep(action="remind", at=at)
        if settings.resolve_after:
            at = calendar.add_business_days(reminded or status_since, settings.resolve_after)
            return LifecycleStep(action="resolve", at=at)
    elif status == Status.RESOLVED and settings.close_after is not None:
        return LifecycleStep(action="close", at=status_since + settings.close_after)
    return None


def lifecycle_due(
    sla: SlaConfig,
    *,
    policy: str | None,
    status: str,
    status_since: datetime,
    reminded_at: datetime | None,
    now: datetime,
) -> LifecycleStep | None:
    """The step to take at `now`, if one is due."""
    step = next_lifecycle_step(
        sla, policy=policy, status=status, status_since=status_since, reminded_at=reminded_at
    )
    return step if step is not None and step.at <= now else None
