"""Instants as maildesk writes them: in JSON, events and notices ISO 8601 with UTC as `Z`;
for people (tables, `ticket show`) in the desk's timezone."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def iso(value: datetime | None) -> str | None:
    """`value` in ISO 8601 with UTC written `Z`; no instant stays None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def local_text(
    value: datetime | str | None, zone: str | tzinfo, *, now: datetime | None = None
) -> str:
    """`value` in the desk's timezone as people read it, e.g. `Tue 1 Dec 19:10`; the year is
    added (`Sun 2 Mar 2025 09:15`) when it is not this year's. An ISO 8601 string is read
    first (one that is not an instant is returned as it is); no instant is the empty string.
    A naive instant is UTC, as the store keeps them."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    else:
        instant = value
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    tz = _zone(zone) if isinstance(zone, str) else zone
    local = instant.astimezone(tz)
    this_year = (now or datetime.now(UTC)).astimezone(tz).year
    year = "" if local.year == this_year else f" {local.year}"
    return f"{local:%a} {local.day} {local:%b}{year} {local:%H:%M}"


def _zone(name: str) -> tzinfo:
    """The named timezone; an unknown name (config checks them) is UTC."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
