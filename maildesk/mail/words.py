"""Values as a person reads them in mail and tables: instants in the desk's timezone, lists
and missing values in words. The Jinja filters `when` and `words` of every template.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str) -> ZoneInfo:
    """The named timezone; an unknown name (config checks it) is UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when(
    value: datetime | str | None, timezone: str = "UTC", *, now: datetime | None = None
) -> str:
    """An instant as `Tue 1 Dec 19:10 (Europe/Berlin)` in `timezone`; the year is added
    when it is not this year's. An ISO 8601 string is read first; none is "not set"."""
    if value is None or value == "":
        return "not set"
    if isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # not an instant: shown as it is
    else:
        instant = value
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)  # the store keeps UTC
    tz = zone(timezone)
    local = instant.astimezone(tz)
    this_year = (now or datetime.now(UTC)).astimezone(tz).year
    year = "" if local.year == this_year else f" {local.year}"
    return f"{local:%a} {local.day} {local:%b}{year} {local:%H:%M} ({tz.key})"


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
