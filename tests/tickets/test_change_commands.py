"""`#schedule` windows as agents write them, in the desk's timezone or with an offset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from maildesk.tickets.change_commands import parse_window
from maildesk.tickets.commands import CommandContext, parse_reply

BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("2026-12-05 22:00 23:30", (utc(2026, 12, 5, 21, 0), utc(2026, 12, 5, 22, 30))),
        ("2026-12-05 23:00 1:30", (utc(2026, 12, 5, 22, 0), utc(2026, 12, 6, 0, 30))),
        ("2026-12-05 22:00 2026-12-06 01:00", (utc(2026, 12, 5, 21, 0), utc(2026, 12, 6, 0, 0))),
        (
            "2026-12-05T22:00+01:00 2026-12-05T23:30+01:00",
            (utc(2026, 12, 5, 21, 0), utc(2026, 12, 5, 22, 30)),
        ),
        ("2026-12-05T22:00Z/2026-12-05T23:00Z", (utc(2026, 12, 5, 22, 0), utc(2026, 12, 5, 23, 0))),
        ("none", None),
    ],
)
def test_windows_are_read_in_the_desk_timezone(
    text: str, window: tuple[datetime, datetime] | None
) -> None:
    assert parse_window(text, BERLIN) == window


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "needs a window"),
        ("tomorrow", "needs a window"),
        ("2026-12-05 22:00", "needs a window"),
        ("2026-12-05T23:00 2026-12-05T22:00", "must end after it starts"),
        ("soon later", "'soon' is not a date and time"),
    ],
)
def test_bad_windows_are_command_errors(text: str, reason: str) -> None:
    ctx = CommandContext(actor=None, queues=["it"], agents=[], ref_prefix="MD", timezone=BERLIN)
    parsed = parse_reply(f"#schedule {text}\n\nThanks", ctx)
    (error,) = parsed.errors
    assert reason in error.reason and not parsed.commands


def test_implemented_and_failed_are_commands() -> None:
    ctx = CommandContext(actor=None, queues=["it"], agents=[], ref_prefix="MD")
    parsed = parse_reply("#implemented\n#failed rollback done", ctx)
    assert [(c.name, c.value) for c in parsed.commands] == [
        ("implemented", None),
        ("failed", "rollback done"),
    ]
    (error,) = parse_reply("#failed", ctx).errors
    assert "needs the reason" in error.reason
