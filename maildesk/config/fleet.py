"""[fleet]: several `maildesk serve` on one PostgreSQL database.

    [fleet]
    lease_ttl = "60s"    # a daemon that dies: its IMAP mailboxes and the mail its pipeline
                         # had taken go to another daemon this long after it last renewed

A mailbox may set its own `lease_ttl` in `[[mailboxes]]`. Every problem names the file,
the section and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from maildesk.config.reader import Reader, parse_duration

PLACE = "[fleet]"
KEYS = ("lease_ttl",)
DEFAULT_LEASE_TTL = timedelta(seconds=60)
MIN_LEASE_TTL = timedelta(seconds=1)
MAX_LEASE_TTL = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class FleetConfig:
    lease_ttl: timedelta = DEFAULT_LEASE_TTL


def read_fleet(r: Reader, t: dict[str, Any]) -> FleetConfig:
    """[fleet]: lease_ttl, checked."""
    ttl = lease_ttl(r, t, PLACE, DEFAULT_LEASE_TTL)
    r.done(t, PLACE, KEYS)
    return FleetConfig(lease_ttl=ttl)


def lease_ttl(r: Reader, t: dict[str, Any], place: str, default: timedelta) -> timedelta:
    """The key lease_ttl of a table: a duration from 1s to 1h."""
    ttl = r.take(t, place, "lease_ttl", parse_duration, default)
    if not MIN_LEASE_TTL <= ttl <= MAX_LEASE_TTL:
        r.problem(
            f"{place} key 'lease_ttl'",
            f"must be from 1s to 1h, got {ttl.total_seconds():g}s",
        )
        return default
    return ttl
