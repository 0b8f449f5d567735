"""Values as a person reads them in mail and tables: instants in the desk's timezone, lists
and missing values in words. The Jinja filters `when` and `words` of every template.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.timefmt import local_text


def when(
    value: datetime | str | None, timezone: str = "UTC", *, now: datetime | None = None
) -> str:
    """An instant as `Tue 1 Dec 19:10 (Europe/Berlin)` in `timezone` (timefmt.local_text,
    with the zone named); none is "not set"."""
    text = local_text(value, timezone, now=now)
    if not text:
        return "not set"
    return text if isinstance(value, str) and text == value else f"{text} ({_name(timezone)})"


def _name(timezone: str) -> str:
    try:
        return ZoneInfo(timezone).key
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"


def words(value: object, empty: str = "none") -> str:
    """A value in words: a list as "a, b, c", bytes decoded, None (or nothing) as `empty`."""
    if value is None:
        return empty
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace").strip() or empty
    if isinstance(value, str):
        return value or empty
    if isinstance(value, Iterable) and not isinstance(value, dict):
        items = [words(v, "") for v in value]
        return ", ".join(i for i in items if i) or empty
    return str(value)
