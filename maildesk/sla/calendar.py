"""Business-hours calendars: working time between two instants, and instants after working time.

A calendar is a timezone, per-weekday shifts in local wall-clock time (several a day, and
overnight ones like 22:00-06:00, which belong to the day they start on) and holidays (local
dates; a holiday cancels the shifts that start on it). The 24x7 calendar has no shifts: all
time is working time.

Instants go in and out as aware datetimes (results in UTC). A shift boundary is the *first
instant at which the local clock reads that time or later*: a time skipped by a spring-forward
change means the moment the clocks jump, a time repeated by a fall-back change means its first
occurrence. That mapping never runs backwards, so shifts never invert, and working time is
real elapsed time: 09:00-17:00 is 8 hours on every day, and a 22:00-06:00 night shift is 7
hours on the night the clocks spring forward and 9 on the night they fall back.

Arithmetic walks working intervals, not minutes, so a month-long target costs a few hundred
microseconds at most.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo

__all__ = ["ALWAYS", "Calendar", "Shift"]

DAY = timedelta(days=1)
MINUTES_PER_DAY = 24 * 60
ZERO = timedelta(0)
MEMO_SIZE = 20_000  # memo entries per calendar (years of dates), then it starts afresh


@dataclass(frozen=True)
class Shift:
    """Working time on one weekday: minutes after local midnight; end may pass midnight."""

    start: int  # 0 .. 1439
    end: int  # start+1 .. start+1440: 1440 is midnight, more is the next morning

    def __post_init__(self) -> None:
        if not (0 <= self.start < MINUTES_PER_DAY and self.start < self.end):
            raise ValueError(f"bad shift {self.start}-{self.end}")
        if self.end - self.start > MINUTES_PER_DAY:
            raise ValueError(f"a shift lasts at most 24 hours, got {self.start}-{self.end}")

    def __str__(self) -> str:
        end = self.end if self.end <= MINUTES_PER_DAY else self.end - MINUTES_PER_DAY
        return f"{_hhmm(self.start)}-{_hhmm(end)}"


@dataclass(frozen=True, kw_only=True)
class Calendar:
    """Working time in a timezone; week=None is the 24x7 calendar (all time is working)."""

    name: str
    zone: ZoneInfo
    week: tuple[tuple[Shift, ...], ...] | None = None  # Monday first, 7 entries
    holidays: frozenset[date] = frozenset()
    # Per-date offsets and shift instants, computed once: a pure cache, not state.
    _memo: dict[object, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.week is not None:
            if len(self.week) != 7:
                raise ValueError("week needs 7 days, Monday first")
            if not any(self.week):
                raise ValueError(f"calendar {self.name!r} has no working time in the week")

    @property
    def always(self) -> bool:
        """True for the 24x7 calendar."""
        return self.week is None

    @property
    def whole_days(self) -> bool:
        """True when every day is worked around the clock (days of working time are days)."""
        return self.week is None or all(
            any(s.start == 0 and s.end >= MINUTES_PER_DAY for s in shifts) for shifts in self.week
        )

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of working time has passed since `start` (UTC)."""
        start = _utc(start)
        if duration < ZERO:
            raise ValueError(f"negative duration {duration}")
        if duration == ZERO:
            return start
        if self.week is None:
            return start + duration
        remaining = duration
        for begin, _, work in self._spans(start):
            if remaining <= work:
                return self._walk_add(begin, remaining)
            remaining -= work
        raise AssertionError("unreachable: spans never end")

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time in [a, b); zero when b is not after a."""
        a, b = _utc(a), _utc(b)
        if b <= a:
            return ZERO
        if self.week is None:
            return b - a
        total = ZERO
        for begin, end, work in self._spans(a):
            if end >= b:
                return total + self._walk_between(begin, b)
            total += work
        raise AssertionError("unreachable: spans never end")

    def next_working_instant(self, at: datetime) -> datetime:
        """`at` itself if it is working time, else the start of the next working interval."""
        at = _utc(at)
        if self.week is None:
            return at
        begin, _ = next(self._intervals_from(at))
        return max(begin, at)

    def is_working(self, at: datetime) -> bool:
        """Whether `at` falls inside working time."""
        at = _utc(at)
        return self.next_working_instant(at) == at

    def is_working_day(self, day: date) -> bool:
        """A local date that is no holiday and has shifts of its own."""
        if day in self.holidays:
            return False
        return self.week is None or bool(self.week[day.weekday()])

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """`days` working days after the next working instant, at the same local time.

        Saturday 10:00 and Sunday 23:00 plus one business day are both Tuesday 09:00 on a
        Monday-Friday 09:00-17:00 calendar; Friday 16:00 plus one is Monday 16:00. A result
        outside working time (a shorter day) moves on to the next working instant.
        """
        start = _utc(start)
        if days < 0:
            raise ValueError(f"negative number of days {days}")
        if days == 0:
            return start
        local = self.next_working_instant(start).astimezone(self.zone)
        day = local.date()
        while days:
            day += DAY
            if self.is_working_day(day):
                days -= 1
        wall = datetime.combine(day, local.time())
        return self.next_working_instant(_first_instant(wall, self.zone))

    # --- working time, coarse: whole weeks where nothing is special, else days ----------

    @cached_property
    def _week_total(self) -> timedelta:
        """Working time in any 7 days without holidays or clock changes: the shifts' union."""
        assert self.week is not None
        week = 7 * MINUTES_PER_DAY
        pieces = []
        for weekday, shifts in enumerate(self.week):
            for shift in shifts:
                begin, end = (
                    weekday * MINUTES_PER_DAY + shift.start,
                    weekday * MINUTES_PER_DAY + shift.end,
                )
                pieces += [(begin, min(end, week))] + ([(0, end - week)] if end > week else [])
        total = covered = 0
        for begin, end in sorted(pieces):
            begin = max(begin, covered)
            if end > begin:
                total, covered = total + end - begin, end
        return timedelta(minutes=total)

    def _spans(self, start: datetime) -> Iterator[tuple[datetime, datetime, timedelta]]:
        """Consecutive spans [begin, end) from `start` on, each with its working time.

        The first runs to the next local midnight; then come whole days, or whole weeks when
        they hold no holiday and no change of UTC offset (their working time is then the
        calendar's weekly total), which is what makes long targets cheap.
        """
        day = start.astimezone(self.zone).date() + DAY
        end = self._midnight(day)
        while end <= start:  # a fall-back change at midnight repeats the previous day's end
            day += DAY
            end = self._midnight(day)
        yield start, end, self._walk_between(start, end)
        while True:
            begin = end
            if self._plain_week(day):
                day += 7 * DAY
                end = self._midnight(day)
                yield begin, end, self._week_total
            else:
                yield begin, self._midnight(day + DAY), self._day_work(day)
                day += DAY
                end = self._midnight(day)

    def _plain_week(self, day: date) -> bool:
        """No holiday on the 7 days from `day` (nor the night before), one UTC offset."""
        key = (day, "plain")
        known = self._memo.get(key)
        if known is None:
            holidays = self._sorted_holidays
            i = bisect_left(holidays, day - DAY)
            known = not (i < len(holidays) and holidays[i] <= day + 6 * DAY) and not any(
                _offset_changes_on(self.zone, day + k * DAY) for k in range(-1, 8)
            )
            self._remember(key, known)
        return bool(known)

    @cached_property
    def _sorted_holidays(self) -> tuple[date, ...]:
        return tuple(sorted(self.holidays))

    def _day_work(self, day: date) -> timedelta:
        """Working time from this local midnight to the next (memoised)."""
        key = (day, "work")
        known = self._memo.get(key)
        if known is None:
            known = self._walk_between(self._midnight(day), self._midnight(day + DAY))
            self._remember(key, known)
        return cast(timedelta, known)

    def _midnight(self, day: date) -> datetime:
        key = (day, "midnight")
        known = self._memo.get(key)
        if known is None:
            known = _first_instant(datetime.combine(day, time()), self.zone)
            self._remember(key, known)
        return cast(datetime, known)

    # --- working time, fine: interval by interval -------------------------------------------

    def _walk_add(self, start: datetime, duration: timedelta) -> datetime:
        remaining = duration
        for begin, end in self._intervals_from(start):
            span = end - begin
            if remaining <= span:
                return begin + remaining
            remaining -= span
        raise AssertionError("unreachable: a calendar always has more working time")

    def _walk_between(self, a: datetime, b: datetime) -> timedelta:
        total = ZERO
        for begin, end in self._intervals_from(a):
            if begin >= b:
                break
            total += min(end, b) - begin
        return total

    def _intervals_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (UTC, half-open, disjoint) that end after `start`, in order."""
        assert self.week is not None
        day = start.astimezone(self.zone).date() - DAY  # yesterday's night shift may still run
        covered = start  # shifts may overlap (a night shift into the next morning's): clip
        while True:
            for begin, end in self._day(day):
                begin = max(begin, covered)
                if end > begin:
                    yield begin, end
                    covered = end
            day += DAY

    def _day(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The shifts starting on a local date, as UTC intervals, empty ones dropped."""
        assert self.week is not None
        shifts = self.week[day.weekday()]
        if not shifts or day in self.holidays:
            return ()
        key = (day, "shifts")
        known = self._memo.get(key)
        if known is not None:
            return cast(tuple[tuple[datetime, datetime], ...], known)
        midnight = datetime.combine(day, time())
        out: list[tuple[datetime, datetime]] = []
        for shift in shifts:
            begin = _first_instant(midnight + timedelta(minutes=shift.start), self.zone)
            end = _first_instant(midnight + timedelta(minutes=shift.end), self.zone)
            if end > begin:
                out.append((begin, end))
        intervals = tuple(sorted(out))
        self._remember(key, intervals)
        return intervals

    def _remember(self, key: object, value: Any) -> None:
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = value


ALWAYS = Calendar(name="24x7", zone=ZoneInfo("UTC"))


def _first_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the clock in `zone` reads `wall` (naive) or later."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # fold=0: the earlier reading
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # `wall` falls in a gap: fold=0 lands after the jump, fold=1 before it; the clocks jumped
    # at a whole second between the two, which a bisection finds.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp()) - 1
    after = int(first.timestamp()) + 1
    offset_after = first.astimezone(zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def _offset_changes_on(zone: ZoneInfo, day: date) -> bool:
    """Whether the UTC offset at the next local midnight differs from this one's."""
    return day in _offset_changes(zone, day.year, day.month)


@lru_cache(maxsize=1024)
def _offset_changes(zone: ZoneInfo, year: int, month: int) -> frozenset[date]:
    """The local dates of a month during which the clocks change (offset at midnight vs next)."""
    day = date(year, month, 1)
    changes = set()
    offset = datetime.combine(day, time(), tzinfo=zone).utcoffset()
    while day.month == month:
        following = datetime.combine(day + DAY, time(), tzinfo=zone).utcoffset()
        if following != offset:
            changes.add(day)
        offset, day = following, day + DAY
    return frozenset(changes)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at}; give an aware one (UTC)")
    return at.astimezone(UTC)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
