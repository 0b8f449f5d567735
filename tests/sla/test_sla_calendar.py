"""maildesk.sla.calendar: working time on business-hours calendars, across weekends, holidays,
night shifts and clock changes; checked by hand and against a brute-force oracle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildesk.config.sla import compile_sla
from maildesk.sla.calendar import ALWAYS, Calendar, Shift

H = timedelta(hours=1)
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
OFFICE = {"mon-fri": "09:00-17:00"}


def calendar(
    hours: Mapping[str, str | list[str]],
    *,
    zone: str = BERLIN,
    holidays: Iterable[str] = (),
) -> Calendar:
    """A calendar as config builds it."""
    table = {"name": "c", "timezone": zone, "hours": dict(hours), "holidays": list(holidays)}
    sla, problems = compile_sla(
        {"calendars": [table]}, queues=set(), agents=set(), rules=set(), desk_timezone="UTC"
    )
    assert problems == []
    return sla.calendars["c"]


def at(text: str, zone: str = BERLIN, *, fold: int = 0) -> datetime:
    """Local wall time in `zone` ("2026-03-02 09:00") as an aware UTC instant."""
    local = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold)
    return local.astimezone(UTC)


# --- ordinary days ---------------------------------------------------------------------------

# 2026-03-02 is a Monday.
ADD_CASES = [
    ("within the day", "2026-03-02 10:00", 4 * H, "2026-03-02 14:00"),
    ("into the next morning", "2026-03-02 15:00", 4 * H, "2026-03-03 11:00"),
    ("over the weekend", "2026-03-06 15:00", 4 * H, "2026-03-09 11:00"),
    ("before opening", "2026-03-02 07:00", 1 * H, "2026-03-02 10:00"),
    ("on a Saturday", "2026-03-07 12:00", 1 * H, "2026-03-09 10:00"),
    ("exactly to closing, not the next opening", "2026-03-02 09:00", 8 * H, "2026-03-02 17:00"),
    ("a week of working time", "2026-03-02 09:00", 40 * H, "2026-03-06 17:00"),
    ("a minute", "2026-03-02 16:59", timedelta(minutes=1), "2026-03-02 17:00"),
    ("after closing", "2026-03-02 17:00", timedelta(minutes=1), "2026-03-03 09:01"),
]


@pytest.mark.parametrize(
    ("why", "start", "duration", "due"), ADD_CASES, ids=[c[0] for c in ADD_CASES]
)
def test_add_business_time_on_an_office_calendar(
    why: str, start: str, duration: timedelta, due: str
) -> None:
    office = calendar(OFFICE)
    assert office.add_business_time(at(start), duration) == at(due)
    assert office.business_time_between(at(start), at(due)) == duration


def test_results_are_utc_and_inputs_may_be_in_any_zone() -> None:
    office = calendar(OFFICE)
    start = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo(BERLIN))
    due = office.add_business_time(start, 2 * H)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        calendar(OFFICE).add_business_time(datetime(2026, 3, 2, 10), H)


def test_zero_duration_is_the_start_itself_even_out_of_hours() -> None:
    saturday = at("2026-03-07 12:00")
    assert calendar(OFFICE).add_business_time(saturday, timedelta(0)) == saturday


def test_negative_duration_is_an_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        calendar(OFFICE).add_business_time(at("2026-03-02 10:00"), -H)


def test_between_is_zero_backwards_and_outside_hours() -> None:
    office = calendar(OFFICE)
    assert office.business_time_between(at("2026-03-03 10:00"), at("2026-03-02 10:00")) == 0 * H
    assert office.business_time_between(at("2026-03-07 08:00"), at("2026-03-08 20:00")) == 0 * H
    assert office.business_time_between(at("2026-03-06 16:00"), at("2026-03-09 10:00")) == 2 * H


def test_several_shifts_a_day_skip_the_lunch_break() -> None:
    lunch = calendar({"mon-fri": ["09:00-12:00", "13:00-17:00"]})
    assert lunch.add_business_time(at("2026-03-02 11:00"), 2 * H) == at("2026-03-02 14:00")
    assert lunch.business_time_between(at("2026-03-02 00:00"), at("2026-03-03 00:00")) == 7 * H
    assert not lunch.is_working(at("2026-03-02 12:30"))
    assert lunch.next_working_instant(at("2026-03-02 12:30")) == at("2026-03-02 13:00")


def test_days_can_differ_and_ranges_wrap_over_the_weekend() -> None:
    shop = calendar({"thu-sat": "10:00-18:00", "mon": "12:00-14:00"})
    # Saturday 17:00 + 3h: 1h on Saturday, Sunday closed, 2h on Monday from noon.
    assert shop.add_business_time(at("2026-03-07 17:00"), 3 * H) == at("2026-03-09 14:00")
    # "fri-mon" runs over the weekend: Friday, Saturday, Sunday and Monday, 8h each.
    weekend = calendar({"fri-mon": "10:00-18:00"})
    assert weekend.business_time_between(at("2026-03-06 00:00"), at("2026-03-10 00:00")) == 32 * H


# --- night shifts ----------------------------------------------------------------------------


def test_a_night_shift_belongs_to_the_day_it_starts() -> None:
    nights = calendar({"mon-fri": "22:00-06:00"})
    # Tuesday 05:00 is in Monday's night: 1h to 06:00, then Tuesday night from 22:00.
    assert nights.add_business_time(at("2026-03-03 05:00"), 2 * H) == at("2026-03-03 23:00")
    # Saturday 05:00 is still Friday's night; Saturday night is off.
    assert nights.is_working(at("2026-03-07 05:00"))
    assert not nights.is_working(at("2026-03-07 23:00"))
    assert nights.business_time_between(at("2026-03-02 00:00"), at("2026-03-09 00:00")) == 40 * H


def test_overlapping_shifts_count_once() -> None:
    both = calendar({"mon-fri": ["22:00-06:00", "05:00-13:00"]})
    # Monday 22:00 to Tuesday 13:00 is 15 hours of work, not 16.
    assert both.business_time_between(at("2026-03-02 22:00"), at("2026-03-03 13:00")) == 15 * H
    assert both.add_business_time(at("2026-03-02 22:00"), 15 * H) == at("2026-03-03 13:00")


def test_whole_days_and_midnight_ends() -> None:
    late = calendar({"mon-fri": "18:00-24:00", "sat": "00:00-24:00"})
    assert late.business_time_between(at("2026-03-06 18:00"), at("2026-03-08 00:00")) == 30 * H
    assert late.add_business_time(at("2026-03-06 23:00"), 2 * H) == at("2026-03-07 01:00")


# --- holidays --------------------------------------------------------------------------------


def test_holidays_are_skipped() -> None:
    office = calendar(OFFICE, holidays=["2026-12-25"])
    # Thursday 24 December 15:00 + 4h: 2h that day, Friday is a holiday, 2h on Monday.
    assert office.add_business_time(at("2026-12-24 15:00"), 4 * H) == at("2026-12-28 11:00")
    assert not office.is_working_day(date(2026, 12, 25))


def test_holiday_ranges_close_the_office_for_days() -> None:
    office = calendar(OFFICE, holidays=["2026-12-24..2027-01-01"])
    assert office.add_business_time(at("2026-12-23 16:00"), 2 * H) == at("2027-01-04 10:00")


def test_a_holiday_cancels_the_night_shift_starting_on_it_not_the_one_ending_on_it() -> None:
    nights = calendar({"mon-sun": "22:00-06:00"}, holidays=["2026-12-25"])
    day = nights.business_time_between(at("2026-12-25 00:00"), at("2026-12-26 00:00"))
    assert day == 6 * H  # 00:00-06:00 from the 24th's night; the 25th's night is off
    assert nights.next_working_instant(at("2026-12-25 07:00")) == at("2026-12-26 22:00")


def test_long_targets_cross_weeks_holidays_and_clock_changes() -> None:
    office = calendar(OFFICE, holidays=["2026-04-03", "2026-04-06", "2026-05-01"])
    start = at("2026-03-02 09:00")
    due = office.add_business_time(start, 240 * H)  # 30 working days of 8 hours
    # March has 22 working days from the 2nd; April 1-2, 7-10 and 13-14 are the other 8.
    assert due == at("2026-04-14 17:00")
    # The same sum taken day by day.
    total, day = timedelta(0), start
    while day < due:
        total += office.business_time_between(day, min(day + 24 * H, due))
        day += 24 * H
    assert total == 240 * H


# --- clock changes (2026: Europe springs forward on 29 March and falls back on 25 October,
# --- New York on 8 March and 1 November) -----------------------------------------------------

EVERY_DAY = {"mon-sun": "09:00-17:00"}
NIGHTS = {"mon-sun": "22:00-06:00"}


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        (BERLIN, "2026-03-29"),
        (BERLIN, "2026-10-25"),
        (NEW_YORK, "2026-03-08"),
        (NEW_YORK, "2026-11-01"),
    ],
)
def test_a_nine_to_five_day_is_eight_hours_on_clock_change_days(zone: str, day: str) -> None:
    cal = calendar(EVERY_DAY, zone=zone)
    assert cal.business_time_between(at(f"{day} 00:00", zone), at(f"{day} 23:59", zone)) == 8 * H
    assert cal.add_business_time(at(f"{day} 09:00", zone), 8 * H) == at(f"{day} 17:00", zone)


@pytest.mark.parametrize(
    ("zone", "night", "hours"),
    [
        (BERLIN, "2026-03-28", 7),  # clocks jump from 02:00 to 03:00
        (BERLIN, "2026-10-24", 9),  # 03:00 back to 02:00: the hour is worked twice
        (NEW_YORK, "2026-03-07", 7),
        (NEW_YORK, "2026-10-31", 9),
        (BERLIN, "2026-06-13", 8),
    ],
)
def test_night_shifts_over_a_clock_change_are_real_elapsed_time(
    zone: str, night: str, hours: int
) -> None:
    cal = calendar(NIGHTS, zone=zone)
    evening = at(f"{night} 12:00", zone)
    assert cal.business_time_between(evening, evening + 24 * H) == hours * H
    morning = (datetime.fromisoformat(night) + timedelta(days=1)).date().isoformat()
    assert cal.add_business_time(at(f"{night} 22:00", zone), hours * H) == at(
        f"{morning} 06:00", zone
    )


def test_a_shift_starting_in_the_skipped_hour_starts_when_the_clocks_jump() -> None:
    early = calendar({"sun": "02:30-04:00"})
    # 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
    start = early.next_working_instant(at("2026-03-29 00:00"))
    assert start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert early.business_time_between(at("2026-03-29 00:00"), at("2026-03-29 12:00")) == H


def test_a_shift_inside_the_skipped_hour_does_not_happen() -> None:
    gap = calendar({"sun": "02:00-03:00", "mon": "09:00-10:00"})
    assert gap.business_time_between(at("2026-03-29 00:00"), at("2026-03-29 12:00")) == 0 * H
    assert gap.next_working_instant(at("2026-03-29 00:00")) == at("2026-03-30 09:00")
    # A week later it is an ordinary hour again.
    assert gap.business_time_between(at("2026-04-05 00:00"), at("2026-04-05 12:00")) == H


def test_repeated_times_mean_their_first_occurrence() -> None:
    # 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC, so 02:30 happens twice.
    ends = calendar({"sun": "00:00-02:30"})
    assert ends.business_time_between(at("2026-10-25 00:00"), at("2026-10-26 00:00")) == 2.5 * H
    assert not ends.is_working(at("2026-10-25 02:15", fold=1))
    starts = calendar({"sun": "02:30-05:00"})
    assert starts.next_working_instant(at("2026-10-25 00:00")) == at("2026-10-25 02:30", fold=0)
    assert starts.business_time_between(at("2026-10-25 00:00"), at("2026-10-26 00:00")) == 3.5 * H


def test_the_new_york_skipped_hour() -> None:
    early = calendar({"sun": "02:15-03:15"}, zone=NEW_YORK)
    # 8 March 2026: 02:00 EST becomes 03:00 EDT at 07:00 UTC.
    assert early.next_working_instant(at("2026-03-08 00:00", NEW_YORK)) == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )
    assert early.business_time_between(
        at("2026-03-08 00:00", NEW_YORK), at("2026-03-08 12:00", NEW_YORK)
    ) == timedelta(minutes=15)


# --- business days ---------------------------------------------------------------------------

BUSINESS_DAY_CASES = [
    ("Tuesday afternoon + 2", "2026-03-03 15:00", 2, "2026-03-05 15:00"),
    ("Friday afternoon + 1", "2026-03-06 16:00", 1, "2026-03-09 16:00"),
    ("Saturday starts on Monday morning", "2026-03-07 10:00", 1, "2026-03-10 09:00"),
    ("Sunday night starts on Monday morning", "2026-03-08 23:00", 1, "2026-03-10 09:00"),
    ("after closing starts the next morning", "2026-03-02 18:00", 1, "2026-03-04 09:00"),
    ("over a holiday", "2026-12-24 10:00", 1, "2026-12-28 10:00"),
    ("over the spring clock change", "2026-03-27 10:00", 1, "2026-03-30 10:00"),
]


@pytest.mark.parametrize(
    ("why", "start", "days", "due"), BUSINESS_DAY_CASES, ids=[c[0] for c in BUSINESS_DAY_CASES]
)
def test_add_business_days(why: str, start: str, days: int, due: str) -> None:
    office = calendar(OFFICE, holidays=["2026-12-25"])
    assert office.add_business_days(at(start), days) == at(due)


def test_a_shorter_day_moves_a_business_day_on_to_the_next_opening() -> None:
    fridays_short = calendar({"mon-thu": "09:00-17:00", "fri": "09:00-12:00"})
    assert fridays_short.add_business_days(at("2026-03-05 15:00"), 1) == at("2026-03-09 09:00")


def test_business_days_on_24x7_are_calendar_days_in_the_zone() -> None:
    always = Calendar(name="24x7", zone=ZoneInfo(BERLIN))
    # Over the spring change one day is 23 hours: the same wall time the next day.
    assert always.add_business_days(at("2026-03-28 10:00"), 1) == at("2026-03-29 10:00")
    assert always.add_business_days(at("2026-03-28 10:00"), 0) == at("2026-03-28 10:00")


# --- 24x7 ------------------------------------------------------------------------------------


def test_24x7_is_plain_elapsed_time() -> None:
    start = at("2026-10-24 20:00")
    assert ALWAYS.add_business_time(start, 30 * H) == start + 30 * H
    assert ALWAYS.business_time_between(start, start + 30 * H) == 30 * H
    assert ALWAYS.is_working(start) and ALWAYS.whole_days


def test_a_calendar_needs_working_time() -> None:
    with pytest.raises(ValueError, match="no working time"):
        Calendar(name="never", zone=ZoneInfo("UTC"), week=((),) * 7)
    with pytest.raises(ValueError, match="at most 24 hours"):
        Shift(60, 60 + 24 * 60 + 1)


# --- properties ------------------------------------------------------------------------------

STEP = timedelta(minutes=30)  # every shift boundary and clock change below is on this grid
ZONES = [BERLIN, NEW_YORK, "UTC", "Australia/Lord_Howe"]  # Lord Howe moves by 30 minutes
# Windows around the clock changes of 2026 in these zones, and an ordinary one.
WINDOWS = [
    date(2026, 3, 25),
    date(2026, 10, 21),
    date(2026, 3, 4),
    date(2026, 10, 28),
    date(2026, 4, 1),
    date(2026, 9, 30),
    date(2026, 6, 10),
]

half_hours = st.integers(min_value=0, max_value=47)
shifts = st.tuples(half_hours, st.integers(min_value=1, max_value=48)).map(
    lambda p: Shift(p[0] * 30, p[0] * 30 + p[1] * 30)
)
weeks = st.lists(st.lists(shifts, max_size=2), min_size=7, max_size=7).filter(any)


def oracle_between(cal: Calendar, a: datetime, b: datetime) -> timedelta:
    """Working time by the definition, on a half-hour grid: a grid slot works when it lies
    in a shift, whose boundaries are the first grid instants whose wall clock reads them."""
    zone = cal.zone
    assert cal.week is not None
    grid_start = a - timedelta(days=3)
    grid = [grid_start + k * STEP for k in range(int((b - grid_start) / STEP) + 150)]
    walls = [u.astimezone(zone).replace(tzinfo=None) for u in grid]

    def first(wall: datetime) -> datetime:
        return next(u for u, w in zip(grid, walls, strict=True) if w >= wall)

    intervals = []
    day = (a - timedelta(days=2)).astimezone(zone).date()
    while datetime.combine(day, time()) <= b.astimezone(zone).replace(tzinfo=None):
        if day not in cal.holidays:
            midnight = datetime.combine(day, time())
            for s in cal.week[day.weekday()]:
                begin = first(midnight + timedelta(minutes=s.start))
                end = first(midnight + timedelta(minutes=s.end))
                intervals.append((begin, end))
        day += timedelta(days=1)
    slots = [u for u in grid if a <= u < b]
    return sum((STEP for u in slots if any(s <= u < e for s, e in intervals)), timedelta(0))


@settings(max_examples=150, deadline=None)
@given(
    week=weeks,
    zone=st.sampled_from(ZONES),
    window=st.sampled_from(WINDOWS),
    holiday_offsets=st.sets(st.integers(min_value=-2, max_value=12), max_size=3),
    a_slot=st.integers(min_value=0, max_value=10 * 48),
    length=st.integers(min_value=0, max_value=10 * 48),
)
def test_between_matches_the_definition(
    week: list[list[Shift]],
    zone: str,
    window: date,
    holiday_offsets: set[int],
    a_slot: int,
    length: int,
) -> None:
    cal = Calendar(
        name="random",
        zone=ZoneInfo(zone),
        week=tuple(tuple(day) for day in week),
        holidays=frozenset(window + timedelta(days=k) for k in holiday_offsets),
    )
    a = datetime.combine(window, time(), tzinfo=UTC) + a_slot * STEP
    b = a + length * STEP
    expected = oracle_between(cal, a, b)
    assert cal.business_time_between(a, b) == expected
    if expected:
        due = cal.add_business_time(a, expected)
        assert due <= b and cal.business_time_between(a, due) == expected


@settings(max_examples=200, deadline=None)
@given(
    week=weeks,
    zone=st.sampled_from(ZONES),
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=0, max_value=200 * 24 * 60),
    split=st.floats(min_value=0, max_value=1),
)
def test_add_and_between_agree_over_long_spans(
    week: list[list[Shift]], zone: str, start: datetime, minutes: int, split: float
) -> None:
    cal = Calendar(
        name="random",
        zone=ZoneInfo(zone),
        week=tuple(tuple(d) for d in week),
        holidays=frozenset({date(2026, 12, 25), date(2027, 1, 1)}),
    )
    duration = timedelta(minutes=minutes)
    due = cal.add_business_time(start, duration)
    assert cal.business_time_between(start, due) == duration
    # Additive at any point in between, and nothing is due earlier.
    middle = start + (due - start) * split
    assert (
        cal.business_time_between(start, middle) + cal.business_time_between(middle, due)
        == duration
    )
    if duration:
        assert cal.business_time_between(start, due - timedelta(microseconds=1)) < duration
        assert cal.is_working(due - timedelta(microseconds=1))
