"""Instants as maildesk writes them in JSON, events and notices: ISO 8601, UTC as `Z`."""

from __future__ import annotations

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    """`value` in ISO 8601 with UTC written `Z`; no instant stays None."""
    return value.isoformat().replace("+00:00", "Z") if value else None
