"""SLA calendar: due-time arithmetic on a business-hours calendar, time per call.

An office calendar (Europe/Berlin, Monday-Thursday 08:00-17:00, Friday 08:00-15:00, the
German public holidays of 2026 and 2027) computes the due time of targets from 4 working
hours to 720 (about four months), from 1,000 start instants spread over 2026, then the
working time back from start to due. `first call` is the first target on a fresh calendar
(it fills the calendar's per-date memo); `mean`/`p99` are over all starts. The peer is the
same calendar walking interval by interval, without whole-week steps.

    python bench/sla.py [--starts N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from maildesk.sla.calendar import Calendar, Shift

HOLIDAYS = [
    "2026-01-01", "2026-04-03", "2026-04-06", "2026-05-01", "2026-05-14", "2026-05-25",
    "2026-10-03", "2026-12-25", "2026-12-26", "2027-01-01", "2027-03-26", "2027-03-29",
]  # fmt: skip
TARGETS_H = [4, 40, 240, 720]


def office() -> Calendar:
    day, friday = (Shift(8 * 60, 17 * 60),), (Shift(8 * 60, 15 * 60),)
    return Calendar(
        name="office",
        zone=ZoneInfo("Europe/Berlin"),
        week=(day, day, day, day, friday, (), ()),
        holidays=frozenset(date.fromisoformat(d) for d in HOLIDAYS),
    )


def timed(call: Callable[..., object], arguments: list[tuple[Any, ...]]) -> list[float]:
    """Microseconds per call, one sample per argument tuple."""
    out = []
    for args in arguments:
        t0 = time.perf_counter()
        call(*args)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def row(target: str, samples: list[float], first: float | None = None) -> dict[str, Any]:
    samples = sorted(samples)
    return {
        "target": target,
        "first call us": "" if first is None else round(first),
        "mean us": round(statistics.fmean(samples), 1),
        "p50 us": round(samples[len(samples) // 2], 1),
        "p99 us": round(samples[int(len(samples) * 0.99)], 1),
    }


def run(starts: int) -> dict[str, Any]:
    begin = datetime(2026, 1, 1, tzinfo=UTC)
    instants = [begin + timedelta(minutes=525_600 * i / starts) for i in range(starts)]
    office().add_business_time(begin, timedelta(hours=1))  # process-wide zone caches
    results = []
    for hours in TARGETS_H:
        duration = timedelta(hours=hours)
        first = timed(office().add_business_time, [(instants[0], duration)])[0]
        cal = office()
        adds = timed(cal.add_business_time, [(s, duration) for s in instants])
        dues = [cal.add_business_time(s, duration) for s in instants]
        backs = timed(cal.business_time_between, list(zip(instants, dues, strict=True)))
        results.append(row(f"add {hours}h", adds, first))
        results.append(row(f"between {hours}h", backs))
    peer = office()
    walk = timed(peer._walk_add, [(s, timedelta(hours=720)) for s in instants])
    results.append(row("peer: interval walk, add 720h", walk))
    return {"benchmark": "sla calendar", "starts": starts, "results": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.starts)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    keys = list(dict.fromkeys(k for row in report["results"] for k in row))
    table = Table(*keys, title=f"sla calendar: {args.starts} start instants over 2026")
    for r in report["results"]:
        table.add_row(*(str(r.get(k, "")) for k in keys))
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
