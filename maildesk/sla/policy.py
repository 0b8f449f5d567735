"""SLA policies and which one a ticket gets: plain data, compiled from config elsewhere.

A policy is targets per priority on a business-hours calendar, what warns and escalates, and
the reminder and auto-close settings; `maildesk.config.sla` compiles them from the config
file (docs/sla.md is the reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from maildesk.sla.calendar import ALWAYS, Calendar

__all__ = [
    "Escalation",
    "Lifecycle",
    "SlaConfig",
    "SlaPolicy",
    "select_policy",
]

TARGETS = ("first_response", "resolution")
NOTIFY_ROLES = ("lead", "assignee")  # who an escalation notifies, besides agents' addresses
DEFAULT_CHECK_INTERVAL = timedelta(seconds=30)
DEFAULT_WARN_AT: float | None = 0.8


@dataclass(frozen=True, kw_only=True)
class Escalation:
    """What a breach does, besides its notice and event."""

    on: str = "any"  # the breach that runs it: "first_response", "resolution" or "any"
    notify: tuple[str, ...] = ()  # "lead" (of the ticket's queue), "assignee", agent addresses
    raise_steps: int = 0  # raise the priority this many steps towards P1 ...
    raise_to: str | None = None  # ... or straight to this one (never lowers it)
    move_to: str | None = None  # reassign to this queue

    def runs_on(self, target: str) -> bool:
        """Whether a breach of `target` runs this escalation."""
        return self.on in ("any", target)


@dataclass(frozen=True, kw_only=True)
class Lifecycle:
    """Reminders and automatic status changes; all off by default."""

    remind_after: int = 0  # business days pending on the requester before a reminder; 0: never
    resolve_after: int = 0  # business days after the reminder (or going pending); 0: never
    close_after: timedelta | None = None  # resolved tickets close after this; None: never


@dataclass(frozen=True, kw_only=True)
class SlaPolicy:
    """Targets per priority on a calendar, and what warns and escalates."""

    name: str
    calendar: Calendar = ALWAYS
    first_response: Mapping[str, timedelta] = field(default_factory=dict)  # priority -> target
    resolution: Mapping[str, timedelta] = field(default_factory=dict)
    warn_at: float | None = DEFAULT_WARN_AT  # fraction of a target that warns; None: no warnings
    escalations: tuple[Escalation, ...] = ()
    lifecycle: Lifecycle = Lifecycle()  # [sla] values unless the policy sets its own
    queues: tuple[str, ...] = ()  # tickets in these queues get this policy ...
    rules: tuple[str, ...] = ()  # ... and tickets these rules matched (rules win)
    default: bool = False  # tickets nothing else picks a policy for

    def target(self, kind: str, priority: str) -> timedelta | None:
        """The first_response or resolution target for a priority; None if it has none."""
        targets = self.first_response if kind == "first_response" else self.resolution
        return targets.get(priority)


@dataclass(frozen=True, kw_only=True)
class SlaConfig:
    """Everything SLA from config; the empty default means no policies, nothing automatic."""

    policies: tuple[SlaPolicy, ...] = ()
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    calendar: Calendar = ALWAYS  # the clock of tickets without a policy
    lifecycle: Lifecycle = Lifecycle()  # for tickets without a policy
    leads: Mapping[str, str] = field(default_factory=dict)  # queue (or "*") -> address
    check_interval: timedelta = DEFAULT_CHECK_INTERVAL  # how often `serve` runs the SLA job

    def policy(self, name: str | None) -> SlaPolicy | None:
        """The policy of that name; None for None or a name no longer configured."""
        return next((p for p in self.policies if p.name == name), None)

    def calendar_of(self, policy: str | None) -> Calendar:
        """The calendar a ticket's clock runs on."""
        found = self.policy(policy)
        return found.calendar if found else self.calendar

    def lifecycle_of(self, policy: str | None) -> Lifecycle:
        """The reminder and auto-close settings for a ticket."""
        found = self.policy(policy)
        return found.lifecycle if found else self.lifecycle

    def lead(self, queue: str) -> str | None:
        """The lead of a queue, else the "*" lead, else None."""
        return self.leads.get(queue) or self.leads.get("*")


def select_policy(
    sla: SlaConfig,
    *,
    queue: str,
    matched_rules: Sequence[str],
    organisation_policy: str | None = None,
    service_policy: str | None = None,
) -> SlaPolicy | None:
    """The policy for a ticket: the last matched rule that picks one, its service's
    (`[[services]] sla_policy`), its requester's organisation's (`sla_policy`), its
    queue's, the default.

    Rules run once, when a ticket is created; when the ticket later moves to another queue,
    pass the rules its `routed` event recorded, so a policy a rule picked stays.
    """
    for rule in reversed(matched_rules):
        found = next((p for p in sla.policies if rule in p.rules), None)
        if found is not None:
            return found
    return (
        sla.policy(service_policy)
        or sla.policy(organisation_policy)
        or next((p for p in sla.policies if queue in p.queues), None)
        or next((p for p in sla.policies if p.default), None)
    )
