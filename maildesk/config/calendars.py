"""The [[calendars]] section: business hours compiled into `maildesk.sla.calendar.Calendar`s.

    [[calendars]]
    name = "office"
    timezone = "Europe/Berlin"          # default: the desk's
    hours = { "mon-fri" = "09:00-17:00", sat = ["09:00-12:00", "13:00-15:00"] }
    holidays = ["2026-12-25", "2026-12-24..2026-12-31"]

The built-in "24x7" calendar (every hour of every day, in the desk's timezone) is always there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.config.reader import Reader, parse_strings, parse_zone
from maildesk.routing.conditions import WEEKDAYS
from maildesk.sla.calendar import ALWAYS, MINUTES_PER_DAY, Calendar, Shift

ALWAYS_NAME = "24x7"  # the built-in calendar: every hour of every day
CALENDAR_KEYS = ("name", "timezone", "hours", "holidays")
MAX_DAYS = 365  # holiday ranges, reminders and auto-resolve: at most a year (of days)

_SHIFT = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def read_calendars(r: Reader, data: Mapping[str, Any], desk_timezone: str) -> dict[str, Calendar]:
    """Every calendar by name, "24x7" first; a duplicate name is reported, the first kept."""
    try:
        always = Calendar(name=ALWAYS_NAME, zone=ZoneInfo(desk_timezone))
    except (ZoneInfoNotFoundError, ValueError):  # [desk] timezone reports it
        always = ALWAYS
    calendars = {ALWAYS_NAME: always}
    for cal in _calendars(r, r.array(data, "calendars"), desk_timezone):
        calendars.setdefault(cal.name, cal)  # a duplicate or "24x7" was reported
    return calendars


def _calendars(r: Reader, tables: list[dict[str, Any]], desk_zone: str) -> list[Calendar]:
    out: list[Calendar] = []
    for i, t in enumerate(tables):
        place, name = r.named(t, "[[calendars]]", i)
        if name == ALWAYS_NAME:
            r.problem(f"{place} key 'name'", f"{ALWAYS_NAME!r} is built in; pick another")
        elif name in {c.name for c in out}:
            r.problem(place, "duplicate calendar name")
        zone = r.take(t, place, "timezone", parse_zone, None) or _zone_or_utc(desk_zone)
        before = len(r.problems)
        if "hours" not in t:
            r.problem(f"{place} key 'hours'", "is required (or use calendar = '24x7')")
        week = _hours(r, t.pop("hours", {}), place)
        if len(r.problems) == before and not any(week):
            r.problem(f"{place} key 'hours'", "no working time in the week")
        holidays = r.take(t, place, "holidays", _holidays, frozenset[date]())
        r.done(t, place, CALENDAR_KEYS)
        if any(week):
            out.append(Calendar(name=name, zone=zone, week=week, holidays=holidays))
        else:  # reported above; a stand-in keeps policies that name it from piling on errors
            out.append(Calendar(name=name, zone=zone))
    return out


def _zone_or_utc(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _hours(r: Reader, value: object, place: str) -> tuple[tuple[Shift, ...], ...]:
    """hours = { "mon-fri" = "09:00-17:00", sat = ["09:00-12:00", "13:00-15:00"] }."""
    week: list[list[Shift]] = [[] for _ in WEEKDAYS]
    if not isinstance(value, Mapping):
        r.problem(f"{place} key 'hours'", "must be a table of day = shifts")
        return tuple(() for _ in WEEKDAYS)
    given: dict[int, str] = {}
    for key, shifts in value.items():
        where = f"{place} key 'hours.{key}'"
        try:
            days = _day_range(key)
            parsed = [_shift(s) for s in parse_strings(shifts)]
        except ValueError as exc:
            r.problem(where, str(exc))
            continue
        for day in days:
            if day in given:
                r.problem(where, f"{WEEKDAYS[day]} is already given by {given[day]!r}")
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
        out.update(_date_range(item))
    return frozenset(out)


def _date_range(item: str) -> list[date]:
    """'2026-12-25' -> that day; '2026-12-24..2026-12-31' -> every day from one to the other."""
    first, _, last = item.partition("..")
    try:
        a = date.fromisoformat(first.strip())
        b = date.fromisoformat(last.strip()) if last else a
    except ValueError:
        raise ValueError(
            f"expected a date like '2026-12-25' or a range '2026-12-24..2026-12-31', got {item!r}"
        ) from None
    if not a <= b <= a + timedelta(days=MAX_DAYS):
        raise ValueError(f"range {item!r} must run forwards, at most a year")
    return [a + timedelta(days=k) for k in range((b - a).days + 1)]
