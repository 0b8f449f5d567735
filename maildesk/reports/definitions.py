"""The report's figures, computed from the store's rows (keys: see `maildesk.reports`)."""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from maildesk.config import Config
from maildesk.sla.policy import SlaConfig
from maildesk.store import figures
from maildesk.store.figures import Lifetime, StatusChange, TicketRow
from maildesk.terms import DONE_STATUSES, REOPENABLE_STATUSES, WORKING_STATUSES

REPORT_VERSION = 1
TOP = 10  # rows in the top categories and top requesters
TOP_RULES = 20
GROUPS = ("queue", "priority", "agent")
MEASURES = ("first_response", "resolution")


def compute(
    session: Session, config: Config, start: date, end: date, queue: str | None, now: datetime
) -> dict[str, Any]:
    """The whole report for the days start..end (inclusive) in the desk's timezone."""
    zone = ZoneInfo(config.desk.timezone)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    begin, finish = midnight(start, zone), midnight(end + timedelta(days=1), zone)
    created = figures.tickets_created(session, begin, finish, queue)
    lives = figures.lifetimes(session, begin, finish, queue)
    changes = [c for life in lives for c in life.changes if c.at >= begin]
    mail = figures.mail_times(session, begin, finish, queue)
    times = response_times(created, config.sla)
    sla = compliance(created, config.sla)
    daily = daily_rows(days, zone, created, changes, lives, mail)
    resolved = {c.ticket_id for c in changes if is_resolution(c)}
    reopened = [c for c in changes if is_reopen(c)]
    breaches = breach_rows(
        figures.tickets_breached(session, begin, finish, queue), begin, finish, config
    )
    summary: dict[str, Any] = {
        "created": len(created),
        "resolved": sum(row["resolved"] for row in daily),
        "reopened": len(reopened),
        "reopen_rate": percent(len({c.ticket_id for c in reopened} & resolved), len(resolved)),
        "backlog_start": backlog_at([begin], lives)[0],
        "backlog_end": daily[-1]["backlog"],
        "first_response_breaches": sum(b["target"] == "first_response" for b in breaches),
        "resolution_breaches": sum(b["target"] == "resolution" for b in breaches),
        "mail_in": len(mail.received),
        "mail_out": len(mail.sent),
        "quarantined": len(mail.quarantined),
        **overall_times(created, config.sla),
        **overall_compliance(sla),
    }
    return {
        "version": REPORT_VERSION,
        "generated_at": now.astimezone(UTC).isoformat(),
        "period": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "queue": queue,
            "timezone": config.desk.timezone,
            "days": len(days),
        },
        "summary": summary,
        "daily": daily,
        "times": times,
        "sla": sla,
        "breaches": breaches,
        "top_categories": top_categories(created),
        "top_requesters": top_requesters(created),
        "rules": [
            {"rule": name, "hits": hits}
            for name, hits in ranked(figures.rule_hits(session, begin, finish, queue))[:TOP_RULES]
        ],
        "csat": None,
    }


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant the day begins in the zone, in UTC."""
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def is_done(status: str | None) -> bool:
    return status in DONE_STATUSES


def is_resolution(change: StatusChange) -> bool:
    """A move from working to resolved or closed (not closing a resolved ticket)."""
    return change.new in REOPENABLE_STATUSES and not is_done(change.old)


def is_reopen(change: StatusChange) -> bool:
    return change.old in REOPENABLE_STATUSES and change.new in WORKING_STATUSES


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most first, then by name, so equal counts come out in a stable order."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


# --- per day -------------------------------------------------------------------------------


def daily_rows(
    days: Sequence[date],
    zone: ZoneInfo,
    created: Sequence[TicketRow],
    changes: Sequence[StatusChange],
    lives: Sequence[Lifetime],
    mail: figures.MailTimes,
) -> list[dict[str, Any]]:
    """One row per day: tickets created, resolved, reopened, the backlog at its end, mail."""

    def per_day(instants: Iterable[datetime]) -> Counter[date]:
        return Counter(at.astimezone(zone).date() for at in instants)

    counts = {
        "created": per_day(t.created_at for t in created),
        "resolved": per_day(c.at for c in changes if is_resolution(c)),
        "reopened": per_day(c.at for c in changes if is_reopen(c)),
        "mail_in": per_day(mail.received),
        "mail_out": per_day(mail.sent),
        "quarantined": per_day(mail.quarantined),
    }
    backlog = backlog_at([midnight(d + timedelta(days=1), zone) for d in days], lives)
    rows = []
    for day, open_at_end in zip(days, backlog, strict=True):
        row: dict[str, Any] = {"date": day.isoformat()}
        row.update({name: counts[name][day] for name in ("created", "resolved", "reopened")})
        row["backlog"] = open_at_end
        row.update({name: counts[name][day] for name in ("mail_in", "mail_out", "quarantined")})
        rows.append(row)
    return rows


def backlog_at(instants: Sequence[datetime], lives: Iterable[Lifetime]) -> list[int]:
    """How many tickets were open (created and not done) just before each instant."""
    steps: list[tuple[datetime, int]] = []
    for life in lives:
        steps.append((life.created_at, 1))
        done = False
        for change in life.changes:
            now_done = is_done(change.new)
            if now_done != done:
                steps.append((change.at, -1 if now_done else 1))
                done = now_done
    steps.sort()
    moments = [at for at, _ in steps]
    running = [0]
    for _, delta in steps:
        running.append(running[-1] + delta)
    return [running[bisect_left(moments, at)] for at in instants]


# --- times and compliance ------------------------------------------------------------------


Measured = dict[str, list[tuple[TicketRow, int]]]  # measure -> (ticket, business seconds)


def durations(tickets: Iterable[TicketRow], sla: SlaConfig) -> Measured:
    """Business seconds to the first response and to resolution, per ticket that has one,
    on the calendar of the ticket's SLA policy."""
    found: Measured = {m: [] for m in MEASURES}
    for ticket in tickets:
        calendar = sla.calendar_of(ticket.sla_policy)
        ends = {"first_response": ticket.first_response_at, "resolution": None}
        if ticket.status in REOPENABLE_STATUSES:
            ends["resolution"] = ticket.resolved_at
        for measure, at in ends.items():
            if at is not None:
                spent = calendar.business_time_between(ticket.created_at, at)
                found[measure].append((ticket, int(spent.total_seconds())))
    return found


def median_p90(seconds: Sequence[int]) -> tuple[int | None, int | None]:
    """The median and the 90th percentile (interpolated, inclusive), in whole seconds."""
    if not seconds:
        return None, None
    if len(seconds) == 1:
        return seconds[0], seconds[0]
    p90 = statistics.quantiles(seconds, n=10, method="inclusive")[8]
    return round(statistics.median(seconds)), round(p90)


GROUP_KEY: dict[str, Callable[[TicketRow], str | None]] = {
    "queue": lambda t: t.queue,
    "priority": lambda t: t.priority,
    "agent": lambda t: t.assignee,
}


def response_times(tickets: Sequence[TicketRow], sla: SlaConfig) -> list[dict[str, Any]]:
    """Median and p90 of first response and resolution, by queue, priority and agent."""
    rows = []
    for measure, measured in durations(tickets, sla).items():
        for group in GROUPS:
            buckets: dict[str | None, list[int]] = {}
            for ticket, seconds in measured:
                buckets.setdefault(GROUP_KEY[group](ticket), []).append(seconds)
            for key in sorted(buckets, key=lambda k: (k is None, k or "")):
                median, p90 = median_p90(sorted(buckets[key]))
                rows.append(
                    {
                        "measure": measure,
                        "group": group,
                        "key": key,
                        "count": len(buckets[key]),
                        "median_seconds": median,
                        "p90_seconds": p90,
                    }
                )
    return rows


def overall_times(tickets: Sequence[TicketRow], sla: SlaConfig) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for measure, measured in durations(tickets, sla).items():
        median, p90 = median_p90(sorted(seconds for _, seconds in measured))
        out[f"{measure}_median_seconds"], out[f"{measure}_p90_seconds"] = median, p90
    return out


def outcome(ticket: TicketRow, measure: str, sla: SlaConfig) -> bool | None:
    """Whether the ticket met its policy's target (None: no target, or not settled yet)."""
    if ticket.sla_policy is None:
        return None
    policy = sla.policy(ticket.sla_policy)
    if policy is not None and policy.target(measure, ticket.priority) is None:
        return None
    if measure == "first_response":
        breached, done = ticket.response_breached_at, ticket.first_response_at
    else:
        breached = ticket.resolution_breached_at
        done = ticket.resolved_at if ticket.status in REOPENABLE_STATUSES else None
    if breached is not None:
        return False
    return True if done is not None else None


def compliance(tickets: Sequence[TicketRow], sla: SlaConfig) -> list[dict[str, Any]]:
    """SLA compliance by queue and by policy: targets met of those settled."""
    rows = []
    for group in ("queue", "policy"):
        keys = sorted({t.queue if group == "queue" else t.sla_policy or "" for t in tickets})
        for key in keys:
            if not key:
                continue  # tickets without a policy have no targets
            mine = [t for t in tickets if (t.queue if group == "queue" else t.sla_policy) == key]
            row: dict[str, Any] = {"group": group, "key": key}
            for measure in MEASURES:
                results = [r for t in mine if (r := outcome(t, measure, sla)) is not None]
                row[f"{measure}_measured"] = len(results)
                row[f"{measure}_met"] = sum(results)
                row[f"{measure}_compliance"] = percent(sum(results), len(results))
            rows.append(row)
    return rows


def overall_compliance(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    by_queue = [r for r in rows if r["group"] == "queue"]
    return {
        f"{m}_compliance": percent(
            sum(r[f"{m}_met"] for r in by_queue), sum(r[f"{m}_measured"] for r in by_queue)
        )
        for m in MEASURES
    }


# --- lists ---------------------------------------------------------------------------------


def breach_rows(
    tickets: Sequence[TicketRow], begin: datetime, finish: datetime, config: Config
) -> list[dict[str, Any]]:
    """Each breach crossed in [begin, finish), oldest first."""
    rows = []
    for t in tickets:
        for target, at in (
            ("first_response", t.response_breached_at),
            ("resolution", t.resolution_breached_at),
        ):
            if at is not None and begin <= at < finish:
                rows.append(
                    {
                        "ref": f"{config.desk.ref_prefix}-{t.id}",
                        "queue": t.queue,
                        "priority": t.priority,
                        "policy": t.sla_policy,
                        "target": target,
                        "breached_at": at.astimezone(UTC).isoformat(),
                        "assignee": t.assignee,
                    }
                )
    return sorted(rows, key=lambda r: (r["breached_at"], r["ref"], r["target"]))


def top_categories(tickets: Sequence[TicketRow]) -> list[dict[str, Any]]:
    counts = Counter(t.category or "" for t in tickets)
    return [{"category": name or None, "tickets": n} for name, n in ranked(counts)[:TOP]]


def top_requesters(tickets: Sequence[TicketRow]) -> list[dict[str, Any]]:
    counts = Counter(t.requester for t in tickets)
    names = {t.requester: t.requester_name for t in tickets}
    return [
        {"requester": email, "name": names[email], "tickets": n}
        for email, n in ranked(counts)[:TOP]
    ]
