"""maildesk.sla.clock and .lifecycle: due times, pause and resume, recompute on changes,
warning then breach exactly once, escalations, reminders, auto-resolve and auto-close."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildesk.config.sla import compile_sla
from maildesk.sla.clock import (
    SlaCheck,
    SlaState,
    check_sla,
    consumed_at,
    deadlines,
    record_first_response,
    set_policy,
    set_status,
    start_clock,
)
from maildesk.sla.lifecycle import LifecycleStep, lifecycle_due, next_lifecycle_step
from maildesk.sla.policy import SlaConfig

H = timedelta(hours=1)
M = timedelta(minutes=1)
ZONE = "Europe/Berlin"
OFFICE = {"name": "office", "hours": {"mon-fri": "09:00-17:00"}, "holidays": ["2026-12-25"]}
STANDARD = {
    "name": "standard",
    "default": True,
    "calendar": "office",
    "first_response": {"P1": "1h", "P3": "4h"},
    "resolution": {"P1": "4h", "P2": "8h", "P3": "16h"},
    "warn_at": 0.75,
}


def sla_of(*policies: dict[str, Any], **desk: Any) -> SlaConfig:
    sla, problems = compile_sla(
        {"calendars": [OFFICE], "sla_policies": list(policies), "sla": desk},
        queues={"it", "infra"},
        agents={"alice@example.com", "bob@example.com"},
        rules=set(),
        desk_timezone=ZONE,
    )
    assert problems == []
    return sla


def at(text: str) -> datetime:
    """Berlin wall time ("2026-03-02 10:00"; 2 March 2026 is a Monday) as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


@dataclass
class Ticket:
    """The columns a store would keep, and the calls the pipeline and scheduler would make."""

    sla: SlaConfig
    created: str
    priority: str = "P3"
    status: str = "new"
    queue: str = "it"
    assignee: str | None = "alice@example.com"
    state: SlaState = field(init=False)
    log: list[tuple[str, str, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = start_clock(
            self.sla, policy="standard", status=self.status, created_at=at(self.created)
        )

    def set_status(self, status: str, when: str) -> None:
        self.state = set_status(self.state, self.sla, status=status, now=at(when))
        self.status = status

    def check(self, when: datetime) -> SlaCheck:
        result = check_sla(
            self.state,
            self.sla,
            status=self.status,
            priority=self.priority,
            queue=self.queue,
            assignee=self.assignee,
            now=when,
        )
        self.state = result.state
        self.log += [(e.kind, e.target, when) for e in result.events]
        return result

    def due(self, when: str = "2026-01-01 00:00") -> tuple[datetime | None, datetime | None]:
        d = deadlines(
            self.state, self.sla, status=self.status, priority=self.priority, now=at(when)
        )
        return d.response_due, d.resolution_due

    def next_check(self, when: str = "2026-01-01 00:00") -> datetime | None:
        return deadlines(
            self.state, self.sla, status=self.status, priority=self.priority, now=at(when)
        ).next_check


def run_scheduler(ticket: Ticket, start: str, end: str, step: timedelta = 15 * M) -> None:
    """Check every `step`, as the scheduler job would (it also wakes at next_check)."""
    when = at(start)
    while when <= at(end):
        ticket.check(when)
        when += step


# --- due times -------------------------------------------------------------------------------


def test_a_new_ticket_is_due_in_working_time() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    # First response 4h: 14:00. Resolution 16h: 7h Monday, 8h Tuesday, 1h Wednesday.
    assert ticket.due() == (at("2026-03-02 14:00"), at("2026-03-04 10:00"))
    assert ticket.next_check() == at("2026-03-02 13:00")  # the warning at 75% of 4h


def test_a_ticket_created_at_the_weekend_is_due_from_monday() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-07 11:00")
    assert ticket.due()[0] == at("2026-03-09 13:00")


def test_pending_pauses_the_clock_and_the_requesters_reply_resumes_it() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    ticket.set_status("pending", "2026-03-02 12:00")  # 2h used
    assert ticket.due() == (None, None) and ticket.next_check() is None
    run_scheduler(ticket, "2026-03-02 12:00", "2026-03-04 10:00")
    assert ticket.log == []  # nothing falls due while waiting on the requester
    assert consumed_at(ticket.state, ticket.sla, at("2026-03-04 10:00")) == 2 * H
    ticket.set_status("open", "2026-03-04 10:00")  # the requester answered on Wednesday
    assert ticket.due() == (at("2026-03-04 12:00"), at("2026-03-05 16:00"))


def test_on_hold_pauses_resolved_stops_and_reopening_runs_on() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 09:00")
    ticket.set_status("on-hold", "2026-03-02 10:00")
    ticket.set_status("open", "2026-03-02 15:00")
    ticket.set_status("resolved", "2026-03-02 16:00")  # 2h used in all
    assert ticket.due() == (None, None)
    run_scheduler(ticket, "2026-03-02 16:00", "2026-03-06 17:00", step=H)
    assert ticket.log == []  # resolved: no target applies
    ticket.set_status("open", "2026-03-09 09:00")  # reopened the next Monday
    assert ticket.due() == (at("2026-03-09 11:00"), at("2026-03-10 15:00"))


def test_a_priority_change_recomputes_with_the_time_already_used() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 09:00")
    assert ticket.due() == (at("2026-03-02 13:00"), at("2026-03-03 17:00"))
    ticket.priority = "P1"  # at 09:30, nothing to store but the priority
    assert ticket.due() == (at("2026-03-02 10:00"), at("2026-03-02 13:00"))
    ticket.priority = "P2"  # P2 has no first-response target in this policy
    assert ticket.due() == (None, at("2026-03-02 17:00"))


def test_a_policy_change_keeps_the_time_used_and_counts_on_the_new_calendar() -> None:
    around_the_clock = {**STANDARD, "name": "24x7", "default": False, "calendar": "24x7"}
    ticket = Ticket(sla_of(STANDARD, around_the_clock), "2026-03-06 13:00")
    ticket.state = set_policy(ticket.state, ticket.sla, policy="24x7", now=at("2026-03-06 15:00"))
    # 2 office hours used; the remaining 14 resolution hours run through the weekend night.
    assert ticket.due() == (at("2026-03-06 17:00"), at("2026-03-07 05:00"))
    assert set_policy(ticket.state, ticket.sla, policy="24x7", now=at("2026-03-09 09:00")) is (
        ticket.state
    )


def test_a_ticket_without_policy_has_no_due_times_but_keeps_time_for_a_later_one() -> None:
    sla = sla_of({**STANDARD, "default": False, "queues": ["infra"]})
    state = start_clock(sla, policy=None, status="new", created_at=at("2026-03-02 10:00"))
    assert (
        deadlines(state, sla, status="new", priority="P3", now=at("2026-03-02 10:00")).next_check
        is None
    )
    # It moves to infra at 12:00: the 2 hours so far (on [sla] calendar, 24x7 here) count.
    state = set_policy(state, sla, policy="standard", now=at("2026-03-02 12:00"))
    due = deadlines(state, sla, status="new", priority="P3", now=at("2026-03-02 12:00"))
    assert due.response_due == at("2026-03-02 14:00")


def test_a_policy_removed_from_config_leaves_its_tickets_quiet() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    ticket.sla = sla_of({**STANDARD, "name": "renamed"})
    assert ticket.due() == (None, None)
    assert ticket.check(at("2026-03-09 10:00")).events == ()


# --- warnings and breaches -------------------------------------------------------------------


def test_warning_then_breach_exactly_once_for_each_target() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    run_scheduler(ticket, "2026-03-02 10:00", "2026-03-06 17:00", step=5 * M)
    assert ticket.log == [
        ("warning", "first_response", at("2026-03-02 13:00")),
        ("breach", "first_response", at("2026-03-02 14:00")),
        ("warning", "resolution", at("2026-03-03 14:00")),  # 12h of 16h
        ("breach", "resolution", at("2026-03-04 10:00")),
    ]
    assert ticket.state.response_breached_at == at("2026-03-02 14:00")
    assert ticket.state.resolution_warned_at == at("2026-03-03 14:00")
    assert ticket.next_check() is None  # nothing left to do


def test_the_scheduler_can_sleep_until_next_check() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    wakes = []
    while (when := ticket.next_check()) is not None and len(wakes) < 10:
        wakes.append(when)
        assert ticket.check(when).events  # every wake has something to do
    assert wakes == [
        at(t)
        for t in ("2026-03-02 13:00", "2026-03-02 14:00", "2026-03-03 14:00", "2026-03-04 10:00")
    ]


def test_a_late_check_sends_the_breach_alone_with_the_instant_it_happened() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    result = ticket.check(at("2026-03-02 16:00"))
    assert [(e.kind, e.target) for e in result.events] == [("breach", "first_response")]
    event = result.events[0]
    assert event.crossed_at == at("2026-03-02 14:00")
    assert (event.limit, event.consumed, event.policy, event.priority) == (
        4 * H,
        6 * H,
        "standard",
        "P3",
    )
    assert ticket.state.response_warned_at is None  # no warning was sent, and none will be
    assert ticket.check(at("2026-03-02 16:00")).events == ()  # idempotent


def test_breach_while_paused_after_a_raised_priority() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 09:00")
    ticket.set_status("pending", "2026-03-02 11:00")  # 2h used
    ticket.priority = "P1"  # first response 1h: already used up
    assert ticket.next_check("2026-03-02 11:30") == at("2026-03-02 11:30")
    result = ticket.check(at("2026-03-02 11:30"))
    # The clock is paused, so when exactly the shorter target ran out is not known.
    assert [(e.kind, e.target, e.crossed_at) for e in result.events] == [
        ("breach", "first_response", None)
    ]
    assert ticket.next_check("2026-03-02 11:30") is None


def test_warnings_can_be_off() -> None:
    ticket = Ticket(sla_of({**STANDARD, "warn_at": False}), "2026-03-02 10:00")
    run_scheduler(ticket, "2026-03-02 10:00", "2026-03-04 17:00")
    assert [kind for kind, _, _ in ticket.log] == ["breach", "breach"]


def test_a_lowered_priority_does_not_take_a_breach_back() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 09:00", priority="P1")
    ticket.check(at("2026-03-02 10:30"))  # first response (1h) breached
    ticket.priority = "P3"  # its first-response target, 4h, is not used up
    assert ticket.due()[0] == at("2026-03-02 13:00")
    assert ticket.next_check() == at("2026-03-03 13:00")  # the P3 resolution warning at 12h
    run_scheduler(ticket, "2026-03-02 10:30", "2026-03-02 17:00")
    assert ticket.log == [("breach", "first_response", at("2026-03-02 10:30"))]
    assert ticket.state.response_breached_at == at("2026-03-02 10:30")


def test_first_response_ends_that_target() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    result = record_first_response(
        ticket.state,
        ticket.sla,
        status="open",
        priority="P3",
        queue="it",
        assignee=None,
        now=at("2026-03-02 11:00"),
    )
    ticket.state, ticket.status = result.state, "open"
    assert result.events == () and ticket.state.first_response_at == at("2026-03-02 11:00")
    assert ticket.due() == (None, at("2026-03-04 10:00"))
    run_scheduler(ticket, "2026-03-02 11:00", "2026-03-04 12:00")
    assert [t for _, t, _ in ticket.log] == ["resolution", "resolution"]


def test_a_late_first_response_settles_its_breach_then_ends_the_target() -> None:
    ticket = Ticket(sla_of(STANDARD), "2026-03-02 10:00")
    result = record_first_response(
        ticket.state,
        ticket.sla,
        status="open",
        priority="P3",
        queue="it",
        assignee=None,
        now=at("2026-03-02 14:30"),
    )
    assert [(e.kind, e.target, e.crossed_at) for e in result.events] == [
        ("breach", "first_response", at("2026-03-02 14:00"))
    ]
    again = record_first_response(
        result.state,
        ticket.sla,
        status="open",
        priority="P3",
        queue="it",
        assignee=None,
        now=at("2026-03-02 15:00"),
    )
    assert again.events == () and again.state.first_response_at == at("2026-03-02 14:30")


# --- escalations -----------------------------------------------------------------------------

LEADS = {"leads": {"it": "lead-it@example.com", "*": "head@example.com"}}


def breach(
    policy: dict[str, Any],
    *,
    priority: str = "P3",
    assignee: str | None = "alice@example.com",
    when: str = "2026-03-02 14:30",
    **desk: Any,
) -> SlaCheck:
    """The check that finds the P3 first-response breach (due 14:00) of a ticket opened at 10:00."""
    ticket = Ticket(
        sla_of({**STANDARD, **policy}, **(desk or LEADS)),
        "2026-03-02 10:00",
        priority=priority,
        assignee=assignee,
    )
    return ticket.check(at(when))


def test_escalation_notifies_the_lead_and_the_assignee() -> None:
    result = breach({"escalate": [{"notify": ["lead", "assignee", "bob@example.com"]}]})
    assert result.notify == ("lead-it@example.com", "alice@example.com", "bob@example.com")
    assert (result.priority, result.queue) == (None, None)


def test_escalation_notices_skip_who_is_missing_and_repeat_no_one() -> None:
    result = breach(
        {"escalate": [{"notify": ["assignee", "lead"]}, {"notify": ["lead"]}]}, assignee=None
    )
    assert result.notify == ("lead-it@example.com",)


def test_the_star_lead_covers_queues_without_their_own() -> None:
    sla = sla_of({**STANDARD, "escalate": [{"notify": ["lead"]}]}, **LEADS)
    ticket = Ticket(sla, "2026-03-02 10:00", queue="infra")
    assert ticket.check(at("2026-03-02 14:30")).notify == ("head@example.com",)


def test_escalation_raises_the_priority_by_steps_or_to_a_level() -> None:
    assert breach({"escalate": [{"raise_priority": 1}]}).priority == "P2"
    assert breach({"escalate": [{"raise_priority": 2}]}).priority == "P1"
    assert breach({"escalate": [{"raise_priority": 3}]}).priority == "P1"  # P1 is the top
    assert breach({"escalate": [{"raise_priority": "P2"}]}).priority == "P2"
    assert (
        breach({"escalate": [{"raise_priority": "P2"}]}, priority="P1").priority is None
    )  # never lowers


def test_escalation_moves_the_ticket_and_tells_the_lead_it_breached_under() -> None:
    result = breach({"escalate": [{"move_to": "infra", "notify": ["lead"]}]})
    assert result.queue == "infra" and result.notify == ("lead-it@example.com",)
    assert breach({"escalate": [{"move_to": "it"}]}).queue is None  # already there


def test_escalations_run_only_on_their_target() -> None:
    policy = {
        "escalate": [
            {"on": "resolution", "raise_priority": 1},
            {"on": "first_response", "notify": ["lead"]},
        ]
    }
    first = breach(policy)
    assert (first.priority, first.notify) == (None, ("lead-it@example.com",))
    both = breach(policy, when="2026-03-05 10:00")  # both targets found breached at once
    assert [e.target for e in both.events] == ["first_response", "resolution"]
    assert (both.priority, both.notify) == ("P2", ("lead-it@example.com",))


def test_two_breaches_in_one_check_raise_twice() -> None:
    assert breach({"escalate": [{"raise_priority": 1}]}, when="2026-03-05 10:00").priority == "P1"


def test_a_raised_priority_does_not_cascade_into_more_breaches() -> None:
    ticket = Ticket(
        sla_of({**STANDARD, "escalate": [{"raise_priority": 1}]}, **LEADS), "2026-03-02 09:00"
    )
    raised = []
    when = at("2026-03-02 09:00")
    while when < at("2026-03-06 17:00"):
        result = ticket.check(when)
        if result.priority:
            ticket.priority = result.priority
            raised.append(result.priority)
        when += 10 * M
    # P3 first response breaches at 13:00 -> P2 (no first-response target, resolution 8h);
    # P2 resolution breaches at 17:00 -> P1; P1 has nothing left that was not breached.
    assert raised == ["P2", "P1"]
    assert [(k, t) for k, t, _ in ticket.log] == [
        ("warning", "first_response"),
        ("breach", "first_response"),
        ("warning", "resolution"),
        ("breach", "resolution"),
    ]


# --- properties ------------------------------------------------------------------------------

STATUSES = ["new", "open", "pending", "on-hold", "resolved", "open", "closed"]
operations = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=36 * 60),  # minutes until this operation
        st.sampled_from(["status", "priority", "check", "policy"]),
        st.integers(min_value=0, max_value=6),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_any_history_warns_and_breaches_at_most_once_and_counts_running_time(
    ops: list[tuple[int, str, int]],
) -> None:
    other = {**STANDARD, "name": "24x7", "default": False, "calendar": "24x7", "warn_at": 0.5}
    sla = sla_of({**STANDARD, "escalate": [{"raise_priority": 1}]}, other)
    now = at("2026-03-02 08:00")
    ticket = Ticket(sla, "2026-03-02 08:00")
    running: list[tuple[datetime, datetime, str]] = []  # (from, to, policy) the clock ran
    since: datetime | None = now
    for minutes, op, pick in ops:
        later = now + minutes * M
        if since is not None:
            running.append((since, later, ticket.state.policy or ""))
        now, since = later, later
        if op == "status":
            ticket.state = set_status(ticket.state, sla, status=STATUSES[pick], now=now)
            ticket.status = STATUSES[pick]
        elif op == "priority":
            ticket.priority = ("P1", "P2", "P3", "P4")[pick % 4]
        elif op == "policy":
            ticket.state = set_policy(
                ticket.state, sla, policy=("standard", "24x7")[pick % 2], now=now
            )
        result = ticket.check(now)
        ticket.priority = result.priority or ticket.priority
        if ticket.state.running_since is None:
            since = None
    expected = sum(
        (sla.calendar_of(p).business_time_between(a, b) for a, b, p in running), timedelta(0)
    )
    assert consumed_at(ticket.state, sla, now) == expected
    for kind in ("warning", "breach"):
        for target in ("first_response", "resolution"):
            assert sum(1 for k, t, _ in ticket.log if (k, t) == (kind, target)) <= 1
    for target in ("first_response", "resolution"):
        kinds = [k for k, t, _ in ticket.log if t == target]
        assert kinds in ([], ["warning"], ["breach"], ["warning", "breach"])


# --- reminders, auto-resolve, auto-close -----------------------------------------------------

AUTO = {"remind_after": 2, "resolve_after": 3, "close_after": "7d"}


def step(
    sla: SlaConfig,
    status: str,
    since: str,
    reminded: str | None = None,
    policy: str | None = "standard",
) -> LifecycleStep | None:
    return next_lifecycle_step(
        sla,
        policy=policy,
        status=status,
        status_since=at(since),
        reminded_at=at(reminded) if reminded else None,
    )


def test_nothing_is_automatic_by_default() -> None:
    sla = sla_of(STANDARD)
    for status in ("new", "open", "pending", "on-hold", "resolved", "closed"):
        assert step(sla, status, "2026-03-02 10:00") is None


def test_a_pending_ticket_is_reminded_then_resolved_in_business_days() -> None:
    sla = sla_of(STANDARD, **AUTO)
    # Pending from Thursday 15:00: reminder two business days later, on Monday 15:00.
    assert step(sla, "pending", "2026-03-05 15:00") == LifecycleStep(
        action="remind", at=at("2026-03-09 15:00")
    )
    # Reminded on Monday 15:20 (the job ran a little late): resolved three business days later.
    assert step(sla, "pending", "2026-03-05 15:00", "2026-03-09 15:20") == LifecycleStep(
        action="resolve", at=at("2026-03-12 15:20")
    )


def test_lifecycle_due_says_what_to_do_now_once() -> None:
    sla = sla_of(STANDARD, **AUTO)
    facts: dict[str, Any] = {
        "policy": "standard",
        "status": "pending",
        "status_since": at("2026-03-05 15:00"),
        "reminded_at": None,
    }
    assert lifecycle_due(sla, **facts, now=at("2026-03-09 14:59")) is None
    due = lifecycle_due(sla, **facts, now=at("2026-03-09 15:00"))
    assert due is not None and due.action == "remind"
    facts["reminded_at"] = at("2026-03-09 15:00")  # the job records the reminder
    assert lifecycle_due(sla, **facts, now=at("2026-03-09 15:00")) is None
    resolve = lifecycle_due(sla, **facts, now=at("2026-03-12 15:00"))
    assert resolve is not None and resolve.action == "resolve"
    closed = {**facts, "status": "resolved", "status_since": at("2026-03-12 15:00")}
    assert lifecycle_due(sla, **closed, now=at("2026-03-19 14:59")) is None
    close = lifecycle_due(sla, **closed, now=at("2026-03-19 15:00"))
    assert close is not None and close.action == "close"
    assert lifecycle_due(sla, **{**closed, "status": "closed"}, now=at("2027-01-01 00:00")) is None


def test_a_reminder_from_an_earlier_pending_spell_does_not_count() -> None:
    sla = sla_of(STANDARD, **AUTO)
    # Reminded once, the requester answered, and the ticket went pending again on Tuesday.
    assert step(sla, "pending", "2026-03-10 09:00", "2026-03-09 15:00") == LifecycleStep(
        action="remind", at=at("2026-03-12 09:00")
    )


def test_without_reminders_auto_resolve_counts_from_going_pending() -> None:
    sla = sla_of(STANDARD, resolve_after=2)
    assert step(sla, "pending", "2026-12-23 11:00") == LifecycleStep(
        action="resolve", at=at("2026-12-28 11:00")
    )


def test_on_hold_tickets_wait_on_someone_else_and_get_no_reminder() -> None:
    assert step(sla_of(STANDARD, **AUTO), "on-hold", "2026-03-02 10:00") is None


def test_auto_close_is_calendar_time() -> None:
    sla = sla_of(STANDARD, close_after="36h")
    assert step(sla, "resolved", "2026-03-06 16:00") == LifecycleStep(
        action="close", at=at("2026-03-08 04:00")
    )


def test_policies_override_and_tickets_without_policy_use_the_desk_calendar() -> None:
    quiet = {**STANDARD, "name": "vip", "default": False, "remind_after": 0, "resolve_after": 0}
    sla = sla_of(STANDARD, quiet, calendar="office", **AUTO)
    assert step(sla, "pending", "2026-03-05 15:00", policy="vip") is None
    assert step(sla, "pending", "2026-03-06 15:00", policy=None) == LifecycleStep(
        action="remind", at=at("2026-03-10 15:00")
    )
    around_the_clock = sla_of(STANDARD, **AUTO)  # [sla] calendar defaults to 24x7
    assert step(around_the_clock, "pending", "2026-03-06 15:00", policy=None) == LifecycleStep(
        action="remind", at=at("2026-03-08 15:00")
    )


def test_state_is_plain_frozen_data() -> None:
    state = SlaState()
    with pytest.raises(FrozenInstanceError):
        state.policy = "x"  # type: ignore[misc]
    assert replace(state, policy="x").policy == "x" and state.running_since is None
