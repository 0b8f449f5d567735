"""`#schedule START END`, `#implemented` and `#failed REASON`: parsed here, checked and
applied by maildesk.tickets.changes. Pure.

A window is written in the desk's timezone or in ISO 8601 with an offset:

    #schedule 2026-12-05 22:00 23:30                 (an end before the start: the next day)
    #schedule 2026-12-05 22:00 2026-12-06 01:00
    #schedule 2026-12-05T22:00+01:00 2026-12-05T23:30+01:00
    #schedule 2026-12-05T22:00/2026-12-05T23:30      (`ticket set ID window=START/END`)
    #schedule none                                   (no window any more)
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from maildesk.config.changes import parse_moment

if TYPE_CHECKING:
    from maildesk.tickets.commands import Command, CommandContext

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{1,2}:\d{2}$")
USAGE = "#schedule 2026-12-05 22:00 23:30 (desk timezone) or two ISO 8601 instants"


def parse_window(arg: str, timezone: str) -> tuple[datetime, datetime] | None:
    """The window `arg` says, in UTC; None for `none`. ValueError names what is wrong."""
    words = arg.replace("/", " ").split()
    if len(words) == 1 and words[0].lower() in ("none", "-"):
        return None
    if len(words) == 3 and _DATE.match(words[0]) and all(_TIME.match(w) for w in words[1:]):
        start = parse_moment(f"{words[0]} {words[1]:0>5}", timezone)
        end = parse_moment(f"{words[0]} {words[2]:0>5}", timezone)
        if end <= start:
            end = parse_moment(f"{words[0]} {words[2]:0>5}", timezone) + timedelta(days=1)
    elif len(words) == 4 and _DATE.match(words[0]) and _DATE.match(words[2]):
        start = parse_moment(f"{words[0]} {words[1]}", timezone)
        end = parse_moment(f"{words[2]} {words[3]}", timezone)
    elif len(words) == 2 and _DATE.match(words[0]) and _TIME.match(words[1]):
        raise ValueError(f"needs a window with its end: {USAGE}")
    elif len(words) == 2:
        start = parse_moment(words[0], timezone)
        end = parse_moment(words[1], timezone)
    else:
        raise ValueError(f"needs a window: {USAGE}")
    if end <= start:
        raise ValueError("the window must end after it starts")
    return start, end


def parse_schedule(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    from maildesk.tickets.commands import Command

    if not arg:
        raise ValueError(f"needs a window: {USAGE}")
    window = parse_window(arg, ctx.timezone)
    value = None if window is None else f"{window[0].isoformat()}/{window[1].isoformat()}"
    return Command(name="schedule", line=line, text=text, value=value)


def parse_implemented(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    from maildesk.tickets.commands import Command

    return Command(name="implemented", line=line, text=text, value=arg.strip() or None)


def parse_failed(line: int, text: str, arg: str, ctx: CommandContext) -> Command:
    from maildesk.tickets.commands import Command

    if not arg.strip():
        raise ValueError("needs the reason, like #failed rollback: disk full")
    return Command(name="failed", line=line, text=text, value=arg.strip()[:4000])


def window_of(value: str | None) -> tuple[datetime, datetime] | None:
    """A `#schedule` command's value back as its window (None: no window)."""
    if not value:
        return None
    start, _, end = value.partition("/")
    return datetime.fromisoformat(start), datetime.fromisoformat(end)
