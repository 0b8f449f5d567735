"""The service-level sections, compiled into the pure types of `maildesk.sla.policy`.

Three sections, all optional (docs/sla.md is the reference):

    [[calendars]]       business hours: timezone, shifts per weekday, holidays (calendars.py)
    [[sla_policies]]    targets per priority on a calendar, warning fraction, escalations,
                        which queues and rules pick the policy
    [sla]               desk-wide: queue leads, reminders, auto-resolve, auto-close

`compile_sla` checks everything at once and returns every problem as (place, message), the
place naming the section, the calendar or policy and the key, as `compile_rules` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from maildesk.config.calendars import ALWAYS_NAME, MAX_DAYS, read_calendars
from maildesk.config.reader import EMAIL, Reader, parse_bool, parse_duration, parse_strings
from maildesk.routing.conditions import Problems
from maildesk.sla.calendar import Calendar
from maildesk.sla.policy import (
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_WARN_AT,
    NOTIFY_ROLES,
    TARGETS,
    Escalation,
    Lifecycle,
    SlaConfig,
    SlaPolicy,
)
from maildesk.terms import PRIORITIES

__all__ = ["SECTIONS", "compile_sla"]

SECTIONS = ("calendars", "sla", "sla_policies")  # top-level config sections read here
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
ESCALATE_KEYS = ("on", "notify", "raise_priority", "move_to")
DURATION_EXAMPLES = "'30m', '4h' or '14d'"  # SLA times are minutes, hours and days


def compile_sla(
    data: Mapping[str, Any],
    *,
    queues: set[str],
    agents: set[str],
    rules: set[str],
    desk_timezone: str,
) -> tuple[SlaConfig, Problems]:
    """Compile [[calendars]], [[sla_policies]] and [sla] from a parsed config document."""
    r = Reader()
    calendars = read_calendars(r, data, desk_timezone)
    t = r.table(data, "sla")
    place = "[sla]"
    calendar = r.take(t, place, "calendar", _calendar_named(calendars), calendars[ALWAYS_NAME])
    lifecycle = _lifecycle(r, t, place, Lifecycle())
    leads = _leads(r, t.pop("leads", {}), queues)
    interval = r.take(t, place, "check_interval", _duration, DEFAULT_CHECK_INTERVAL)
    if not timedelta(seconds=1) <= interval <= timedelta(hours=1):
        r.problem(f"{place} key 'check_interval'", "must be from 1s to 1h")
        interval = DEFAULT_CHECK_INTERVAL
    r.done(t, place, DESK_KEYS)

    policies = _policies(
        r,
        r.array(data, "sla_policies"),
        calendars=calendars,
        queues=queues,
        agents=agents,
        rules=rules,
        lifecycle=lifecycle,
    )
    _check_leads(r, policies, leads, queues)
    sla = SlaConfig(
        policies=tuple(policies),
        calendars=calendars,
        calendar=calendar,
        lifecycle=lifecycle,
        leads=leads,
        check_interval=interval,
    )
    return sla, r.problems


def _policies(
    r: Reader,
    tables: list[dict[str, Any]],
    *,
    calendars: Mapping[str, Calendar],
    queues: set[str],
    agents: set[str],
    rules: set[str],
    lifecycle: Lifecycle,
) -> list[SlaPolicy]:
    out: list[SlaPolicy] = []
    owners: dict[str, dict[str, str]] = {"queues": {}, "rules": {}}  # key -> name -> policy
    for i, t in enumerate(tables):
        place, name = r.named(t, "[[sla_policies]]", i)
        if name in {p.name for p in out}:
            r.problem(place, "duplicate policy name")
        cal = r.take(t, place, "calendar", _calendar_named(calendars), calendars[ALWAYS_NAME])
        default = r.take(t, place, "default", parse_bool, False)
        if default and any(p.default for p in out):
            r.problem(f"{place} key 'default'", "another policy is already the default")
        none: tuple[str, ...] = ()
        own_queues = r.take(t, place, "queues", _names(queues, "queue"), none)
        own_rules = r.take(t, place, "rules", _names(rules, "rule"), none)
        for key, names in (("queues", own_queues), ("rules", own_rules)):
            _claim(r, f"{place} key '{key}'", names, owners[key], name)
        if not any(k in t for k in TARGETS):
            r.problem(place, "needs first_response or resolution targets")
        targets = {k: _targets(r, t.pop(k, {}), place, k, cal) for k in TARGETS}
        out.append(
            SlaPolicy(
                name=name,
                calendar=cal,
                first_response=targets["first_response"],
                resolution=targets["resolution"],
                warn_at=r.take(t, place, "warn_at", _fraction, DEFAULT_WARN_AT),
                escalations=_escalations(r, t.pop("escalate", []), place, queues, agents),
                lifecycle=_lifecycle(r, t, place, lifecycle),
                queues=own_queues,
                rules=own_rules,
                default=default,
            )
        )
        r.done(t, place, POLICY_KEYS)
    return out


def _claim(r: Reader, where: str, names: Iterable[str], owner: dict[str, str], name: str) -> None:
    """A queue or rule picks one policy: the first that names it."""
    for n in names:
        if n in owner:
            r.problem(where, f"{n!r} already picks {owner[n]!r}")
        owner.setdefault(n, name)


def _targets(r: Reader, value: object, place: str, key: str, cal: Calendar) -> dict[str, timedelta]:
    """first_response = { P1 = "1h", P2 = "4h" }: working time on the policy's calendar."""
    if not isinstance(value, Mapping):
        r.problem(f"{place} key '{key}'", "must be a table of priority = duration")
        return {}
    out: dict[str, timedelta] = {}
    for priority, text in value.items():
        here = f"{place} key '{key}.{priority}'"
        if priority not in PRIORITIES:
            r.problem(here, f"unknown priority (known: {', '.join(PRIORITIES)})")
            continue
        try:
            target = _duration(text)
        except ValueError as exc:
            r.problem(here, str(exc))
            continue
        if target <= timedelta(0):
            r.problem(here, "must be more than zero")
        elif isinstance(text, str) and text.strip()[-1:] in ("d", "w") and not cal.whole_days:
            r.problem(
                here,
                f"targets count working time on calendar {cal.name!r}, where a day is not "
                f"24 hours: write hours, e.g. '16h' for two 8-hour working days",
            )
        else:
            out[priority] = target
    return out


def _escalations(
    r: Reader, value: object, place: str, queues: set[str], agents: set[str]
) -> tuple[Escalation, ...]:
    """escalate = [ { on = "resolution", notify = ["lead"], raise_priority = 1 }, ... ]."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        r.problem(f"{place} key 'escalate'", "must be a list of tables")
        return ()
    return tuple(
        _escalation(r, dict(entry), f"{place} key 'escalate[{i}]", queues, agents)
        for i, entry in enumerate(value)
    )


def _escalation(
    r: Reader, t: dict[str, Any], here: str, queues: set[str], agents: set[str]
) -> Escalation:
    """One escalation; `here` is its place up to the key path, which each problem closes."""
    if not any(k in t for k in ESCALATE_KEYS[1:]) and set(t) <= {"on"}:
        r.problem(f"{here}'", "needs notify, raise_priority or move_to")
    on = t.pop("on", "any")
    if on not in (*TARGETS, "any"):
        r.problem(f"{here}.on'", f"must be {', '.join(TARGETS)} or any, got {on!r}")
    notify = _notify(r, t.pop("notify", []), f"{here}.notify'", agents)
    steps, to = _raise(r, t.pop("raise_priority", None), f"{here}.raise_priority'")
    move_to = t.pop("move_to", None)
    if move_to is not None and move_to not in queues:
        known = ", ".join(sorted(queues))
        r.problem(f"{here}.move_to'", f"unknown queue {move_to!r} (known: {known})")
        move_to = None
    for key in t:
        known = ", ".join(ESCALATE_KEYS)
        r.problem(f"{here}.{key}'", f"unknown key (known: {known})")
    return Escalation(on=str(on), notify=notify, raise_steps=steps, raise_to=to, move_to=move_to)


def _notify(r: Reader, value: object, where: str, agents: set[str]) -> tuple[str, ...]:
    try:
        names = parse_strings(value)
    except ValueError as exc:
        r.problem(where, str(exc))
        return ()
    out = []
    for n in names:
        who = n.lower()
        if who in NOTIFY_ROLES or who in agents:
            out.append(who)
        else:
            r.problem(
                where,
                f"{n!r} is not 'lead', 'assignee' or an agent's address "
                "(someone who is not an agent can be a queue lead in [sla] leads)",
            )
    return tuple(out)


def _raise(r: Reader, value: object, where: str) -> tuple[int, str | None]:
    """raise_priority = 1 (steps towards P1) or "P1" (straight there)."""
    if value is None:
        return 0, None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < len(PRIORITIES):
        return value, None
    if isinstance(value, str) and value in PRIORITIES:
        return 0, value
    r.problem(
        where, f"must be a number of steps (1-{len(PRIORITIES) - 1}) or a priority, got {value!r}"
    )
    return 0, None


def _lifecycle(r: Reader, t: dict[str, Any], place: str, inherit: Lifecycle) -> Lifecycle:
    days = _whole_days
    return Lifecycle(
        remind_after=r.take(t, place, "remind_after", days, inherit.remind_after),
        resolve_after=r.take(t, place, "resolve_after", days, inherit.resolve_after),
        close_after=r.take(t, place, "close_after", _off_or_duration, inherit.close_after),
    )


def _leads(r: Reader, value: object, queues: set[str]) -> dict[str, str]:
    """leads = { it = "alice@example.com", "*" = "head@example.com" }."""
    if not isinstance(value, Mapping):
        r.problem("[sla] key 'leads'", "must be a table of queue = address")
        return {}
    out = {}
    for queue, address in value.items():
        where = f"[sla] key 'leads.{queue}'"
        if queue != "*" and queue not in queues:
            known = ", ".join(sorted(queues))
            r.problem(where, f"unknown queue {queue!r} (known: {known}, or '*' for all)")
        elif not isinstance(address, str) or not EMAIL.match(address):
            r.problem(where, f"expected an email address, got {address!r}")
        else:
            out[queue] = address.lower()
    return out


def _check_leads(
    r: Reader, policies: Iterable[SlaPolicy], leads: Mapping[str, str], queues: set[str]
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
                r.problem(
                    f"[[sla_policies]] '{p.name}' key 'escalate[{i}].notify'",
                    f"'lead' needs a lead in [sla] leads for {', '.join(map(repr, missing))} "
                    "(or a '*' lead)",
                )


# --- value kinds of these sections -----------------------------------------------------------


def _duration(value: object) -> timedelta:
    """'4h' -> 4 hours, as parse_duration reads it, suggesting SLA-sized examples."""
    return parse_duration(value, examples=DURATION_EXAMPLES)


def _off_or_duration(value: object) -> timedelta | None:
    """A duration above zero, or false (or "0") for never."""
    if value is False:
        return None
    duration = _duration(value)
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


def _calendar_named(known: Mapping[str, Calendar]) -> Callable[[object], Calendar]:
    def pick(value: object) -> Calendar:
        if not isinstance(value, str) or value not in known:
            raise ValueError(f"unknown calendar {value!r} (known: {', '.join(known)})")
        return known[value]

    return pick


def _names(known: set[str], what: str) -> Callable[[object], tuple[str, ...]]:
    def check(value: object) -> tuple[str, ...]:
        names = parse_strings(value)
        unknown = [n for n in names if n not in known]
        if unknown:
            listing = ", ".join(map(repr, sorted(known))) or "none configured"
            raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))} (known: {listing})")
        return tuple(names)

    return check
