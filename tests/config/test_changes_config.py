"""[[change_freeze]]: read in the desk's timezone or with an offset, limited to queues and
services; every problem names the file, the entry and the key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from maildesk.config import load_config
from tests.config.test_config import MINIMAL, problems, write

BERLIN = MINIMAL.replace("[desk]\n", '[desk]\ntimezone = "Europe/Berlin"\n', 1)
SERVICES = """
[[services]]
name = "email"
queue = "infra"
depends_on = ["network"]

[[services]]
name = "network"
queue = "infra"
"""


def test_freezes_are_read_in_the_desk_timezone_or_with_an_offset(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            BERLIN
            + """
            [[change_freeze]]
            name = "year end"
            start = "2026-12-20T00:00"
            end = "2027-01-04 00:00"

            [[change_freeze]]
            name = "release"
            start = "2026-12-10T08:00+00:00"
            end = 2026-12-11T08:00:00Z
            queues = ["it"]
            """,
        )
    )
    year_end, release = config.change_freezes
    assert (year_end.start, year_end.end) == (
        datetime(2026, 12, 19, 23, 0, tzinfo=UTC),
        datetime(2027, 1, 3, 23, 0, tzinfo=UTC),
    )
    assert year_end.queues == ()
    assert release.start == datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
    assert release.end == datetime(2026, 12, 11, 8, 0, tzinfo=UTC)
    assert release.blocks("it", release.start, release.end)
    assert not release.blocks("infra", release.start, release.end)


@pytest.mark.parametrize(
    ("entry", "place", "words"),
    [
        (
            'start = "2026-12-20T00:00"\nend = "2027-01-04T00:00"',
            "[[change_freeze]] #1 key 'name'",
            ["required"],
        ),
        ('name = "x"\nend = "2027-01-04T00:00"', "[[change_freeze]] 'x' key 'start'", ["required"]),
        ('name = "x"\nstart = "2026-12-20T00:00"', "[[change_freeze]] 'x' key 'end'", ["required"]),
        (
            'name = "x"\nstart = "soon"\nend = "2027-01-04T00:00"',
            "[[change_freeze]] 'x' key 'start'",
            ["'soon'", "date and time"],
        ),
        (
            'name = "x"\nstart = "2026-12-20T00:00"\nend = 5',
            "[[change_freeze]] 'x' key 'end'",
            ["date and time"],
        ),
        (
            'name = "x"\nstart = "2026-12-20T00:00"\nend = "2026-12-19T00:00"',
            "[[change_freeze]] 'x' key 'end'",
            ["after start"],
        ),
        (
            'name = "x"\nstart = "2026-12-20T00:00"\nend = "2027-01-04T00:00"\nqueues = ["nope"]',
            "[[change_freeze]] 'x' key 'queues'",
            ["unknown queue 'nope'"],
        ),
        (
            'name = "x"\nstart = "2026-12-20T00:00"\nend = "2027-01-04T00:00"\nqueues = "it"',
            "[[change_freeze]] 'x' key 'queues'",
            ["list of strings"],
        ),
        (
            'name = "x"\nstart = "2026-12-20T00:00"\nend = "2027-01-04T00:00"\nservices = ["mail"]',
            "[[change_freeze]] 'x' key 'services'",
            ["unknown service 'mail'", "(services: email, network)"],
        ),
        (
            'name = "x"\nstart = "2026-12-20T00:00"\nend = "2027-01-04T00:00"\nservices = "email"',
            "[[change_freeze]] 'x' key 'services'",
            ["list of strings"],
        ),
        (
            'name = "x"\nstart = "2026-12-20T00:00"\nend = "2027-01-04T00:00"\nstrat = 1',
            "[[change_freeze]] 'x' key 'strat'",
            ["unknown key", "start"],
        ),
    ],
)
def test_every_freeze_key_is_checked(
    tmp_path: Path, entry: str, place: str, words: list[str]
) -> None:
    text = MINIMAL + SERVICES + "\n[[change_freeze]]\n" + entry + "\n"
    [problem] = [p for p in problems(write(tmp_path, text)) if p.place == place]
    assert all(w in problem.message for w in words), problem.message


def test_two_freezes_of_one_name_are_an_error(tmp_path: Path) -> None:
    entry = '[[change_freeze]]\nname = "x"\nstart = "2026-12-20T00:00"\nend = "2026-12-21T00:00"\n'
    found = problems(write(tmp_path, MINIMAL + "\n" + entry + entry))
    assert [p.message for p in found if p.place == "[[change_freeze]] 'x'"] == [
        "duplicate change freeze name"
    ]


def test_change_freeze_must_be_an_array_of_tables(tmp_path: Path) -> None:
    found = problems(write(tmp_path, MINIMAL + '\n[change_freeze]\nname = "x"\n'))
    assert [p.place for p in found] == ["[[change_freeze]]"]


def test_a_freeze_limited_to_services_blocks_only_changes_touching_them(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            MINIMAL
            + SERVICES
            + """
            [[change_freeze]]
            name = "mail"
            start = "2026-12-10T00:00"
            end = "2026-12-11T00:00"
            services = ["email"]
            queues = ["infra"]
            """,
        )
    )
    [freeze] = config.change_freezes
    assert (freeze.services, freeze.queues) == (("email",), ("infra",))
    window = (freeze.start, freeze.end)
    assert freeze.blocks("infra", *window, ("network", "email"))
    assert freeze.frozen_service(("network", "email")) == "email"
    assert not freeze.blocks("infra", *window, ("network",))
    assert not freeze.blocks("it", *window, ("email",))
    assert not freeze.blocks("infra", *window)
