"""Instants as maildesk writes them: in JSON, events and notices ISO 8601 with UTC as `Z`;
for people (tables, `ticket show`) in the desk's timezone."""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo


def iso(value: datetime | None) -> str | None:
    """`value` in ISO 8601 with UTC written `Z`; no instant stays None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def local_text(value: datetime | None, zone: str | tzinfo) -> str:
    """`value` in the desk's timezone as people read it, e.g. `Tue 1 Dec 19:10`; the year is
    added when it is not this year's. No instant is the empty string."""
    if value is None:
        return ""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    local = value.astimezone(tz)
    text = f"{local:%a} {local.day} {local:%b %H:%M}"
    return text if local.year == datetime.now(tz).year else f"{text} {local.year}"
