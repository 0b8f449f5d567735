"""A ticket's SLA clock: working time consumed, due times, warnings, breaches and escalations.

One clock per ticket serves both targets. It runs on the calendar of the ticket's policy
while the ticket is new or open, pauses while it waits on the requester or is on hold
(pending, on-hold), and stops once it is resolved or closed; a reopened ticket's clock runs
on from where it stopped. The store keeps the clock as `SlaState`: the working time consumed
up to `running_since`, plus when it last started. From that, any priority or policy gives
its due times, so a change recomputes them without losing time already used.

Warnings and breaches happen once per ticket and target: the instant one was sent is part of
the state, so running a check twice, or a day late, sends nothing twice. A breach also
runs the policy's escalations (notify, raise the priority, move to another queue); the
caller applies what `SlaCheck` says and records the events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from maildesk.sla.policy import TARGETS, SlaConfig, SlaPolicy
from maildesk.terms import DONE_STATUSES, PAUSED_STATUSES, PRIORITIES

__all__ = [
    "Deadlines",
    "SlaCheck",
    "SlaEvent",
    "SlaState",
    "check_sla",
    "consumed_at",
    "deadlines",
    "record_first_response",
    "set_policy",
    "set_status",
    "start_clock",
]

PAUSED = PAUSED_STATUSES  # waiting on the requester or on hold: the clock stands still
# Done: no target applies; reopening runs the clock on. A merged ticket lives on in another.
STOPPED = DONE_STATUSES
ZERO = timedelta(0)


@dataclass(frozen=True, kw_only=True)
class SlaState:
    """The SLA columns of one ticket: enough to recompute every due time."""

    policy: str | None = None
    consumed: timedelta = ZERO  # working time on the clock up to running_since (or in all)
    running_since: datetime | None = None  # None: paused or stopped
    first_response_at: datetime | None = None  # the first agent answer to the requester
    response_warned_at: datetime | None = None
    response_breached_at: datetime | None = None
    resolution_warned_at: datetime | None = None
    resolution_breached_at: datetime | None = None

    def warned_at(self, target: str) -> datetime | None:
        """When the warning for `target` (first_response, resolution) went out."""
        return self.response_warned_at if target == "first_response" else self.resolution_warned_at

    def breached_at(self, target: str) -> datetime | None:
        """When `target` (first_response, resolution) was breached."""
        if target == "first_response":
            return self.response_breached_at
        return self.resolution_breached_at


@dataclass(frozen=True, kw_only=True)
class Deadlines:
    """Due times to store on the ticket (None: met, paused, stopped or no target)."""

    response_due: datetime | None = None
    resolution_due: datetime | None = None
    next_check: datetime | None = None  # the first instant check_sla has something to do


@dataclass(frozen=True, kw_only=True)
class SlaEvent:
    """A warning or a breach: one notice and one event on the ticket."""

    kind: str  # "warning" or "breach"
    target: str  # "first_response" or "resolution"
    policy: str
    priority: str
    limit: timedelta  # the target (a breach) or its warning fraction (a warning)
    consumed: timedelta  # working time on the clock when checked
    crossed_at: datetime | None  # when the clock reached `limit`; None if before its last start


@dataclass(frozen=True, kw_only=True)
class SlaCheck:
    """What check_sla found: the new state to store, events to record, escalations to apply."""

    state: SlaState
    events: tuple[SlaEvent, ...] = ()
    notify: tuple[str, ...] = ()  # addresses the escalations tell about the breach
    priority: str | None = None  # the ticket's new priority, if an escalation raised it
    queue: str | None = None  # the ticket's new queue, if an escalation moved it


def start_clock(
    sla: SlaConfig, *, policy: str | None, status: str, created_at: datetime
) -> SlaState:
    """The state of a new ticket: its clock runs from creation (unless created paused)."""
    return set_status(SlaState(policy=policy), sla, status=status, now=created_at)


def set_status(state: SlaState, sla: SlaConfig, *, status: str, now: datetime) -> SlaState:
    """After a status change: pending and on-hold pause, resolved and closed stop, else run."""
    state = _fold(state, sla, now)
    runs = status not in PAUSED and status not in STOPPED
    return replace(state, running_since=now if runs else None)


def set_policy(state: SlaState, sla: SlaConfig, *, policy: str | None, now: datetime) -> SlaState:
    """Switch policy: time so far counts on the old calendar, from now on the new one."""
    if policy == state.policy:
        return state
    return replace(_fold(state, sla, now), policy=policy)


def consumed_at(state: SlaState, sla: SlaConfig, now: datetime) -> timedelta:
    """Working time on the clock at `now`."""
    if state.running_since is None:
        return state.consumed
    calendar = sla.calendar_of(state.policy)
    return state.consumed + calendar.business_time_between(state.running_since, now)


def deadlines(
    state: SlaState, sla: SlaConfig, *, status: str, priority: str, now: datetime
) -> Deadlines:
    """Due times and the next instant a check is needed, for the ticket's columns.

    While the clock is paused there are no due times and nothing falls due (unless a raised
    priority already used up a target: then the next check is now). A target that was
    already used up when the clock last started is due at that start.
    """
    policy = sla.policy(state.policy)
    if policy is None or status in STOPPED:
        return Deadlines()
    calendar, start = policy.calendar, state.running_since
    due: dict[str, datetime] = {}
    pending: list[datetime] = []
    for target in _open_targets(state, policy, status):
        limit = policy.target(target, priority)
        if limit is None:
            continue
        if start is not None:
            due[target] = calendar.add_business_time(start, max(limit - state.consumed, ZERO))
        if state.breached_at(target) is not None:
            continue
        warn = _warning_limit(policy, limit)
        limits = [limit] + ([warn] if warn is not None and state.warned_at(target) is None else [])
        if start is None:
            pending += [now] if any(state.consumed >= x for x in limits) else []
        else:
            pending += [
                calendar.add_business_time(start, max(x - state.consumed, ZERO)) for x in limits
            ]
    return Deadlines(
        response_due=due.get("first_response"),
        resolution_due=due.get("resolution"),
        next_check=min(pending, default=None),
    )


def check_sla(
    state: SlaState,
    sla: SlaConfig,
    *,
    status: str,
    priority: str,
    queue: str,
    assignee: str | None,
    now: datetime,
) -> SlaCheck:
    """Warnings and breaches due at `now` that were not sent yet, and their escalations.

    A breach found together with its warning (a late check, a raised priority) replaces the
    warning. Idempotent: store the returned state and the same call finds nothing more.
    """
    policy = sla.policy(state.policy)
    if policy is None or status in STOPPED:
        return SlaCheck(state=state)
    consumed = consumed_at(state, sla, now)
    events: list[SlaEvent] = []
    marked = state
    for target in _open_targets(state, policy, status):
        limit = policy.target(target, priority)
        if limit is None or state.breached_at(target) is not None:
            continue
        warn = _warning_limit(policy, limit)
        if consumed >= limit:
            kind, crossed = "breach", limit
        elif warn is not None and consumed >= warn and state.warned_at(target) is None:
            kind, crossed = "warning", warn
        else:
            continue
        marked = _mark(marked, target, kind, now)
        events.append(
            SlaEvent(
                kind=kind,
                target=target,
                policy=policy.name,
                priority=priority,
                limit=crossed,
                consumed=consumed,
                crossed_at=_crossed_at(state, policy, crossed),
            )
        )
    check = SlaCheck(state=marked, events=tuple(events))
    breached = [e.target for e in events if e.kind == "breach"]
    return _escalate(check, sla, policy, breached, priority, queue, assignee)


def record_first_response(
    state: SlaState,
    sla: SlaConfig,
    *,
    status: str,
    priority: str,
    queue: str,
    assignee: str | None,
    now: datetime,
) -> SlaCheck:
    """The first agent answer: settles what was due before it, then ends that target."""
    check = check_sla(
        state, sla, status=status, priority=priority, queue=queue, assignee=assignee, now=now
    )
    if state.first_response_at is not None:
        return check
    return replace(check, state=replace(check.state, first_response_at=now))


# --- internals -----------------------------------------------------------------------------


def _fold(state: SlaState, sla: SlaConfig, now: datetime) -> SlaState:
    """Bank the time since running_since, so the clock can be stopped or moved."""
    if state.running_since is None:
        return state
    return replace(state, consumed=consumed_at(state, sla, now), running_since=now)


def _mark(state: SlaState, target: str, kind: str, now: datetime) -> SlaState:
    if target == "first_response":
        if kind == "breach":
            return replace(state, response_breached_at=now)
        return replace(state, response_warned_at=now)
    if kind == "breach":
        return replace(state, resolution_breached_at=now)
    return replace(state, resolution_warned_at=now)


def _open_targets(state: SlaState, policy: SlaPolicy, status: str) -> tuple[str, ...]:
    if status in STOPPED:
        return ()
    return tuple(t for t in TARGETS if t != "first_response" or state.first_response_at is None)


def _warning_limit(policy: SlaPolicy, limit: timedelta) -> timedelta | None:
    return None if policy.warn_at is None else limit * policy.warn_at


def _crossed_at(state: SlaState, policy: SlaPolicy, limit: timedelta) -> datetime | None:
    if state.running_since is None or limit < state.consumed:
        return None
    return policy.calendar.add_business_time(state.running_since, limit - state.consumed)


def _escalate(
    check: SlaCheck,
    sla: SlaConfig,
    policy: SlaPolicy,
    breached: list[str],
    priority: str,
    queue: str,
    assignee: str | None,
) -> SlaCheck:
    """Run the escalations of each breach, in config order; notices go to the old queue's lead."""
    notify: dict[str, None] = {}
    new_priority, new_queue = priority, queue
    for target in breached:
        for e in policy.escalations:
            if not e.runs_on(target):
                continue
            for who in e.notify:
                address = (
                    sla.lead(queue) if who == "lead" else assignee if who == "assignee" else who
                )
                if address:
                    notify[address] = None
            new_priority = _raised(new_priority, e.raise_steps, e.raise_to)
            new_queue = e.move_to or new_queue
    return replace(
        check,
        notify=tuple(notify),
        priority=new_priority if new_priority != priority else None,
        queue=new_queue if new_queue != queue else None,
    )


def _raised(priority: str, steps: int, to: str | None) -> str:
    """Towards P1 by `steps`, or up to `to`; never lower. Unknown priorities stay as they are."""
    if priority not in PRIORITIES:
        return priority
    rank = PRIORITIES.index(priority)
    if to is not None:
        rank = min(rank, PRIORITIES.index(to))
    return PRIORITIES[max(rank - steps, 0)]
