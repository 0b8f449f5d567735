"""SLA policies and business-hours calendars: compiled from config, then plain data.

Three sections, all optional (docs/sla.md is the reference):

    [[calendars]]       business hours: timezone, shifts per weekday, holidays
    [[sla_policies]]    targets per priority on a calendar, warning fraction, escalations,
                        which queues and rules pick the policy
    [sla]               desk-wide: queue leads, reminders, auto-resolve, auto-close

`compile_sla` checks everything at once and returns every problem as (place, message), the
place naming the section, the calendar or policy and the key, as `compile_rules` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.routing.conditions import WEEKDAYS, Problems
from maildesk.sla.calendar import ALWAYS, MINUTES_PER_DAY, Calendar, Shift
from maildesk.terms import PRIORITIES

__all__ = [
    "SECTIONS",
    "Escalation",
    "Lifecycle",
    "SlaConfig",
    "SlaPolicy",
    "compile_sla",
    "select_policy",
]

T = TypeVar("T")

SECTIONS = ("calendars", "sla", "sla_policies")  # top-level config sections read here
TARGETS = ("first_response", "resolution")
ALWAYS_NAME = "24x7"  # the built-in calendar: every hour of every day
NOTIFY_ROLES = ("lead", "assignee")
CALENDAR_KEYS = ("name", "timezone", "hours", "holidays")
LIFECYCLE_KEYS = ("remind_after", "resolve_after", "close_after")
POLICY_KEYS = (
    "name",
    "calendar",
    "default",
    "queues",
    "rules",
    *TARGETS,
    "warn_at",
    "escalate",
    *LIFECYCLE_KEYS,
)
DESK_KEYS = ("calendar", "leads", "check_interval", *LIFECYCLE_KEYS)
DEFAULT_CHECK_INTERVAL = timedelta(seconds=30)
ESCALATE_KEYS = ("on", "notify", "raise_priority", "move_to")
MAX_DAYS = 365  # reminders and auto-resolve, in business days
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


def select_policy(sla: SlaConfig, *, queue: str, matched_rules: Sequence[str]) -> SlaPolicy | None:
    """The policy for a ticket: the last matched rule that picks one, its queue's, the default.

    Rules run once, when a ticket is created; when the ticket later moves to another queue,
    pass the rules its `routed` event recorded, so a policy a rule picked stays.
    """
    for rule in reversed(matched_rules):
        found = next((p for p in sla.policies if rule in p.rules), None)
        if found is not None:
            return found
    return next((p for p in sla.policies if queue in p.queues), None) or next(
        (p for p in sla.policies if p.default), None
    )


# --- compiling -------------------------------------------------------------------------


def compile_sla(
    data: Mapping[str, Any],
    *,
    queues: set[str],
    agents: set[str],
    rules: set[str],
    desk_timezone: str,
) -> tuple[SlaConfig, Problems]:
    """Compile [[calendars]], [[sla_policies]] and [sla] from a parsed config document."""
    problems: Problems = []
    try:
        always = Calendar(name=ALWAYS_NAME, zone=ZoneInfo(desk_timezone))
    except (ZoneInfoNotFoundError, ValueError):  # [desk] timezone reports it
        always = ALWAYS
    calendars = {ALWAYS_NAME: always}
    for cal in _calendars(_array(data, "calendars", problems), desk_timezone, problems):
        calendars.setdefault(cal.name, cal)  # a duplicate or "24x7" was reported

    t = _table(data, "sla", problems)
    place = "[sla]"
    calendar = _take(t, place, "calendar", _calendar_named(calendars), always, problems)
    lifecycle = _lifecycle(t, place, Lifecycle(), problems)
    leads = _leads(t.pop("leads", {}), queues, problems)
    interval = _take(t, place, "check_interval", parse_duration, DEFAULT_CHECK_INTERVAL, problems)
    if not timedelta(seconds=1) <= interval <= timedelta(hours=1):
        problems.append((f"{place} key 'check_interval'", "must be from 1s to 1h"))
        interval = DEFAULT_CHECK_INTERVAL
    _unknown(t, place, DESK_KEYS, problems)

    policies = _policies(
        _array(data, "sla_policies", problems),
        calendars=calendars,
        queues=queues,
        agents=agents,
        rules=rules,
        lifecycle=lifecycle,
        problems=problems,
    )
    _check_leads(policies, leads, queues, problems)
    sla = SlaConfig(
        policies=tuple(policies),
        calendars=calendars,
        calendar=calendar,
        lifecycle=lifecycle,
        leads=leads,
        check_interval=interval,
    )
    return sla, problems


def _calendars(tables: list[dict[str, Any]], desk_zone: str, problems: Problems) -> list[Calendar]:
    out: list[Calendar] = []
    for i, t in enumerate(tables):
        place, name = _named(t, "[[calendars]]", i, problems)
        if name == ALWAYS_NAME:
            problems.append((f"{place} key 'name'", f"{ALWAYS_NAME!r} is built in; pick another"))
        elif name in {c.name for c in out}:
            problems.append((place, "duplicate calendar name"))
        zone = _take(t, place, "timezone", _zone, None, problems) or _zone_or_utc(desk_zone)
        before = len(problems)
        if "hours" not in t:
            problems.append((f"{place} key 'hours'", "is required (or use calendar = '24x7')"))
        week = _hours(t.pop("hours", {}), place, problems)
        if len(problems) == before and not any(week):
            problems.append((f"{place} key 'hours'", "no working time in the week"))
        holidays = _take(t, place, "holidays", _holidays, frozenset[date](), problems)
        _unknown(t, place, CALENDAR_KEYS, problems)
        if any(week):
            out.append(Calendar(name=name, zone=zone, week=week, holidays=holidays))
        else:  # reported above; a stand-in keeps policies that name it from piling on errors
            out.append(Calendar(name=name, zone=zone))
    return out


_SHIFT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _hours(value: object, place: str, problems: Problems) -> tuple[tuple[Shift, ...], ...]:
    """hours = { "mon-fri" = "09:00-17:00", sat = ["09:00-12:00", "13:00-15:00"] }."""
    week: list[list[Shift]] = [[] for _ in WEEKDAYS]
    if not isinstance(value, Mapping):
        problems.append((f"{place} key 'hours'", "must be a table of day = shifts"))
        return tuple(() for _ in WEEKDAYS)
    given: dict[int, str] = {}
    for key, shifts in value.items():
        where = f"{place} key 'hours.{key}'"
        try:
            days = _day_range(key)
            parsed = [_shift(s) for s in _strings(shifts)]
        except ValueError as exc:
            problems.append((where, str(exc)))
            continue
        for day in days:
            if day in given:
                problems.append((where, f"{WEEKDAYS[day]} is already given by {given[day]!r}"))
                continue
            given[day] = key
            week[day] = sorted(parsed, key=lambda s: s.start)
    return tuple(tuple(shifts) for shifts in week)


def _day_range(key: str) -> list[int]:
    """'mon' -> [0]; 'mon-fri' -> [0..4]; 'fri-mon' wraps over the weekend."""
    first, _, last = key.lower().partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise ValueError(f"unknown day {key!r} (use {', '.join(WEEKDAYS)} or a range like mon-fri)")
    a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    return [(a + k) % 7 for k in range((b - a) % 7 + 1)]


def _shift(value: str) -> Shift:
    """'09:00-17:00'; '22:00-06:00' runs overnight; '00:00-24:00' is the whole day."""
    m = _SHIFT.match(value)
    if not m:
        raise ValueError(f"expected a shift like '09:00-17:00', got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"not a time of day in {value!r}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end or (start == 0 and end == MINUTES_PER_DAY and h2 != 24):
        raise ValueError(f"shift {value!r} is empty (a whole day is '00:00-24:00')")
    return Shift(start, end if end > start else end + MINUTES_PER_DAY)


def _holidays(value: object) -> frozenset[date]:
    """Dates ("2026-12-25" or bare TOML dates) and inclusive ranges "2026-12-24..2026-12-31"."""
    if not isinstance(value, list):
        raise ValueError(f"must be a list of dates, got {value!r}")
    out: set[date] = set()
    for item in value:
        if isinstance(item, date) and not isinstance(item, datetime):
            out.add(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"expected a date like 2026-12-25, got {item!r}")
        first, _, last = item.partition("..")
        try:
            a = date.fromisoformat(first.strip())
            b = date.fromisoformat(last.strip()) if last else a
        except ValueError:
            raise ValueError(
                f"expected a date like '2026-12-25' or a range '2026-12-24..2026-12-31', "
                f"got {item!r}"
            ) from None
        if not a <= b <= a + timedelta(days=MAX_DAYS):
            raise ValueError(f"range {item!r} must run forwards, at most a year")
        out.update(a + timedelta(days=k) for k in range((b - a).days + 1))
    return frozenset(out)


def _policies(
    tables: list[dict[str, Any]],
    *,
    calendars: Mapping[str, Calendar],
    queues: set[str],
    agents: set[str],
    rules: set[str],
    lifecycle: Lifecycle,
    problems: Problems,
) -> list[SlaPolicy]:
    out: list[SlaPolicy] = []
    queue_owner: dict[str, str] = {}
    rule_owner: dict[str, str] = {}
    for i, t in enumerate(tables):
        place, name = _named(t, "[[sla_policies]]", i, problems)
        if name in {p.name for p in out}:
            problems.append((place, "duplicate policy name"))
        cal = _take(
            t, place, "calendar", _calendar_named(calendars), calendars[ALWAYS_NAME], problems
        )
        default = _take(t, place, "default", _bool, False, problems)
        if default and any(p.default for p in out):
            problems.append((f"{place} key 'default'", "another policy is already the default"))
        none: tuple[str, ...] = ()
        own_queues = _take(t, place, "queues", _names(queues, "queue"), none, problems)
        own_rules = _take(t, place, "rules", _names(rules, "rule"), none, problems)
        for key, names, owner in (
            ("queues", own_queues, queue_owner),
            ("rules", own_rules, rule_owner),
        ):
            for n in names:
                if n in owner:
                    problems.append((f"{place} key '{key}'", f"{n!r} already picks {owner[n]!r}"))
                owner.setdefault(n, name)
        if not any(k in t for k in TARGETS):
            problems.append((place, "needs first_response or resolution targets"))
        targets = {k: _targets(t.pop(k, {}), place, k, cal, problems) for k in TARGETS}
        warn_at = _take(t, place, "warn_at", _fraction, DEFAULT_WARN_AT, problems)
        escalations = _escalations(t.pop("escalate", []), place, queues, agents, problems)
        own = _lifecycle(t, place, lifecycle, problems)
        _unknown(t, place, POLICY_KEYS, problems)
        out.append(
            SlaPolicy(
                name=name,
                calendar=cal,
                first_response=targets["first_response"],
                resolution=targets["resolution"],
                warn_at=warn_at,
                escalations=escalations,
                lifecycle=own,
                queues=own_queues,
                rules=own_rules,
                default=default,
            )
        )
    return out


def _targets(
    value: object, place: str, key: str, cal: Calendar, problems: Problems
) -> dict[str, timedelta]:
    """first_response = { P1 = "1h", P2 = "4h" }: working time on the policy's calendar."""
    if not isinstance(value, Mapping):
        problems.append((f"{place} key '{key}'", "must be a table of priority = duration"))
        return {}
    out: dict[str, timedelta] = {}
    for priority, text in value.items():
        here = f"{place} key '{key}.{priority}'"
        if priority not in PRIORITIES:
            problems.append((here, f"unknown priority (known: {', '.join(PRIORITIES)})"))
            continue
        try:
            target = parse_duration(text)
        except ValueError as exc:
            problems.append((here, str(exc)))
            continue
        if target <= timedelta(0):
            problems.append((here, "must be more than zero"))
        elif isinstance(text, str) and text.strip()[-1:] in ("d", "w") and not cal.whole_days:
            problems.append(
                (
                    here,
                    f"targets count working time on calendar {cal.name!r}, where a day is not "
                    f"24 hours: write hours, e.g. '16h' for two 8-hour working days",
                )
            )
        else:
            out[priority] = target
    return out


def _escalations(
    value: object, place: str, queues: set[str], agents: set[str], problems: Problems
) -> tuple[Escalation, ...]:
    """escalate = [ { on = "resolution", notify = ["lead"], raise_priority = 1 }, ... ]."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        problems.append((f"{place} key 'escalate'", "must be a list of tables"))
        return ()
    out = []
    for i, entry in enumerate(value):
        t = dict(entry)
        here = f"{place} key 'escalate[{i}]"
        if not any(k in t for k in ESCALATE_KEYS[1:]) and set(t) <= {"on"}:
            problems.append((f"{here}'", "needs notify, raise_priority or move_to"))
        on = t.pop("on", "any")
        if on not in (*TARGETS, "any"):
            problems.append((f"{here}.on'", f"must be {', '.join(TARGETS)} or any, got {on!r}"))
        notify = _notify(t.pop("notify", []), f"{here}.notify'", agents, problems)
        steps, to = _raise(t.pop("raise_priority", None), f"{here}.raise_priority'", problems)
        move_to = t.pop("move_to", None)
        if move_to is not None and move_to not in queues:
            known = ", ".join(sorted(queues))
            problems.append((f"{here}.move_to'", f"unknown queue {move_to!r} (known: {known})"))
            move_to = None
        for key in t:
            known = ", ".join(ESCALATE_KEYS)
            problems.append((f"{here}.{key}'", f"unknown key (known: {known})"))
        out.append(
            Escalation(on=str(on), notify=notify, raise_steps=steps, raise_to=to, move_to=move_to)
        )
    return tuple(out)


def _notify(value: object, where: str, agents: set[str], problems: Problems) -> tuple[str, ...]:
    try:
        names = _strings(value)
    except ValueError as exc:
        problems.append((where, str(exc)))
        return ()
    out = []
    for n in names:
        who = n.lower()
        if who in NOTIFY_ROLES or who in agents:
            out.append(who)
        else:
            problems.append(
                (
                    where,
                    f"{n!r} is not 'lead', 'assignee' or an agent's address "
                    "(someone who is not an agent can be a queue lead in [sla] leads)",
                )
            )
    return tuple(out)


def _raise(value: object, where: str, problems: Problems) -> tuple[int, str | None]:
    """raise_priority = 1 (steps towards P1) or "P1" (straight there)."""
    if value is None:
        return 0, None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < len(PRIORITIES):
        return value, None
    if isinstance(value, str) and value in PRIORITIES:
        return 0, value
    problems.append(
        (where, f"must be a number of steps (1-{len(PRIORITIES) - 1}) or a priority, got {value!r}")
    )
    return 0, None


def _lifecycle(t: dict[str, Any], place: str, inherit: Lifecycle, problems: Problems) -> Lifecycle:
    days = _whole_days
    return Lifecycle(
        remind_after=_take(t, place, "remind_after", days, inherit.remind_after, problems),
        resolve_after=_take(t, place, "resolve_after", days, inherit.resolve_after, problems),
        close_after=_take(t, place, "close_after", _off_or_duration, inherit.close_after, problems),
    )


def _leads(value: object, queues: set[str], problems: Problems) -> dict[str, str]:
    """leads = { it = "alice@example.com", "*" = "head@example.com" }."""
    if not isinstance(value, Mapping):
        problems.append(("[sla] key 'leads'", "must be a table of queue = address"))
        return {}
    out = {}
    for queue, address in value.items():
        where = f"[sla] key 'leads.{queue}'"
        if queue != "*" and queue not in queues:
            known = ", ".join(sorted(queues))
            problems.append((where, f"unknown queue {queue!r} (known: {known}, or '*' for all)"))
        elif not isinstance(address, str) or not _EMAIL.match(address):
            problems.append((where, f"expected an email address, got {address!r}"))
        else:
            out[queue] = address.lower()
    return out


def _check_leads(
    policies: Iterable[SlaPolicy], leads: Mapping[str, str], queues: set[str], problems: Problems
) -> None:
    """A policy that notifies 'lead' needs a lead for every queue its tickets can be in."""
    if "*" in leads:
        return
    for p in policies:
        for i, e in enumerate(p.escalations):
            if "lead" not in e.notify:
                continue
            # A policy picked only by queues applies to tickets in those queues; one picked by
            # rules or as the default can meet a ticket in any queue.
            reach = set(p.queues) if p.queues and not (p.rules or p.default) else queues
            missing = sorted(reach - set(leads))
            if missing:
                problems.append(
                    (
                        f"[[sla_policies]] '{p.name}' key 'escalate[{i}].notify'",
                        f"'lead' needs a lead in [sla] leads for {', '.join(map(repr, missing))} "
                        "(or a '*' lead)",
                    )
                )


# --- small parsers ------------------------------------------------------------------------

# The duration grammar of maildesk.config (which imports this module, so it is repeated here).
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def parse_duration(value: object) -> timedelta:
    """'4h' -> 4 hours; units ms, s, m, h, d, w; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"expected a duration like '30m', '4h' or '14d', got {value!r}")
    return timedelta(seconds=float(m.group(1)) * _DURATION_UNITS[m.group(2)])


def _off_or_duration(value: object) -> timedelta | None:
    """A duration above zero, or false (or "0") for never."""
    if value is False:
        return None
    duration = parse_duration(value)
    return duration if duration > timedelta(0) else None


def _whole_days(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
        raise ValueError(
            f"expected a whole number of business days from 0 (never) to {MAX_DAYS}, got {value!r}"
        )
    return value


def _fraction(value: object) -> float | None:
    """warn_at: a fraction of the target, strictly between 0 and 1, or false for none."""
    if value is False:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1:
        return float(value)
    raise ValueError(f"expected a fraction between 0 and 1 like 0.8, or false, got {value!r}")


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _zone(value: object) -> ZoneInfo:
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}") from None


def _zone_or_utc(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _strings(value: object) -> list[str]:
    """One string or a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"must be a string or a list of strings, got {value!r}")


def _calendar_named(known: Mapping[str, Calendar]) -> Callable[[object], Calendar]:
    def pick(value: object) -> Calendar:
        if not isinstance(value, str) or value not in known:
            raise ValueError(f"unknown calendar {value!r} (known: {', '.join(known)})")
        return known[value]

    return pick


def _names(known: set[str], what: str) -> Callable[[object], tuple[str, ...]]:
    def check(value: object) -> tuple[str, ...]:
        names = _strings(value)
        unknown = [n for n in names if n not in known]
        if unknown:
            listing = ", ".join(map(repr, sorted(known))) or "none configured"
            raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))} (known: {listing})")
        return tuple(names)

    return check


# --- table plumbing, in the manner of config._Reader ---------------------------------------


def _table(data: Mapping[str, Any], key: str, problems: Problems) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        problems.append((f"[{key}]", "must be a table"))
        return {}
    return dict(value)


def _array(data: Mapping[str, Any], key: str, problems: Problems) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        problems.append((f"[[{key}]]", "must be an array of tables"))
        return []
    return [dict(v) for v in value]


def _named(t: dict[str, Any], section: str, i: int, problems: Problems) -> tuple[str, str]:
    """The entry's place ("[[section]] 'name'", or "#n" without a usable name) and name."""
    name = t.pop("name", None)
    if isinstance(name, str) and name.strip():
        return f"{section} '{name}'", name
    problems.append(
        (f"{section} #{i + 1} key 'name'", "is required and must be a non-empty string")
    )
    return f"{section} #{i + 1}", f"#{i + 1}"


def _take(
    t: dict[str, Any],
    place: str,
    key: str,
    parse: Callable[[object], T],
    default: T,
    problems: Problems,
) -> T:
    if key not in t:
        return default
    try:
        return parse(t.pop(key))
    except ValueError as exc:
        problems.append((f"{place} key '{key}'", str(exc)))
        return default


def _unknown(t: Mapping[str, Any], place: str, known: Sequence[str], problems: Problems) -> None:
    for key in t:
        problems.append((f"{place} key '{key}'", f"unknown key (known: {', '.join(known)})"))
