"""[[change_freeze]]: windows in which no change may be scheduled (maildesk.tickets.changes).

    [[change_freeze]]
    name = "year end"
    start = "2026-12-20T00:00"       # desk timezone, or ISO 8601 with an offset
    end = "2027-01-04T00:00"
    queues = ["infra"]               # optional: only changes of these queues; default all
    services = ["email"]             # optional: only changes that touch these services

Also the reading of a moment as agents write it (`2026-12-05 22:00`, `2026-12-05T22:00+01:00`),
shared with `#schedule` and `ticket set ID window=...`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.config.reader import Reader

SECTION = "[[change_freeze]]"
MOMENT_EXAMPLES = "like 2026-12-05 22:00 (desk timezone) or 2026-12-05T22:00+01:00"


@dataclass(frozen=True, kw_only=True)
class ChangeFreeze:
    name: str
    start: datetime  # UTC
    end: datetime  # UTC
    queues: tuple[str, ...] = ()  # empty: every queue
    services: tuple[str, ...] = ()  # empty: whatever the change touches

    def blocks(
        self, queue: str, start: datetime, end: datetime, touched: Collection[str] = ()
    ) -> bool:
        """Whether a window [start, end) of a change on `queue` that touches the services
        `touched` (its own and those that depend on them) falls in this freeze. With both
        `queues` and `services`, the change must match both."""
        if self.queues and queue not in self.queues:
            return False
        if self.services and self.frozen_service(touched) is None:
            return False
        return start < self.end and self.start < end

    def frozen_service(self, touched: Collection[str]) -> str | None:
        """The first of this freeze's services among `touched`, or None."""
        return next((s for s in self.services if s in touched), None)


def parse_moment(value: object, timezone: str) -> datetime:
    """A date and time in `timezone` unless it carries an offset; returned in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not a date and time ({MOMENT_EXAMPLES})") from None
    else:
        raise ValueError(f"must be a date and time ({MOMENT_EXAMPLES}), got {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(UTC)


def read_freezes(
    r: Reader,
    tables: list[dict[str, Any]],
    *,
    queues: set[str],
    timezone: str,
    services: Collection[str] = (),
) -> tuple[ChangeFreeze, ...]:
    """Every `[[change_freeze]]` entry, checked; problems name the entry and the key."""
    found: list[ChangeFreeze] = []
    for i, t in enumerate(tables):
        place, name = r.named(t, SECTION, i)
        if name in {f.name for f in found}:
            r.problem(place, "duplicate change freeze name")

        def moment(value: object) -> datetime:
            return parse_moment(value, timezone)

        start = r.take(t, place, "start", moment, required=True)
        end = r.take(t, place, "end", moment, required=True)
        listed = r.strings(t, place, "queues")
        unknown = [q for q in listed if q not in queues]
        if unknown:
            known = ", ".join(sorted(queues)) or "none configured"
            r.problem(f"{place} key 'queues'", f"unknown queue {unknown[0]!r} ({known})")
        frozen = r.strings(t, place, "services")
        strange = [s for s in frozen if s not in services]
        if strange:
            known = ", ".join(sorted(services)) or "none configured"
            r.problem(
                f"{place} key 'services'", f"unknown service {strange[0]!r} (services: {known})"
            )
        r.done(t, place, ("name", "start", "end", "queues", "services"))
        if start is None or end is None:
            continue
        if end <= start:
            r.problem(f"{place} key 'end'", "must be after start")
            continue
        found.append(ChangeFreeze(name=name, start=start, end=end, queues=listed, services=frozen))
    return tuple(found)
