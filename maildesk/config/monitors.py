"""[[monitors]] (monitoring tools that mail alerts) and [problems] (problem management).

    [[monitors]]
    name = "nagios"
    when = { field = "from", equals = "nagios@mon.example.com" }   # rule condition language
    format = "nagios"                  # nagios (Icinga too) | zabbix | alertmanager | regex
    pattern = '...'                    # regex only: named groups key, state, severity
    queue = "infra"
    priority = { CRITICAL = "P1", DOWN = "P1", WARNING = "P3" }
    flap = { changes = 5, within = "1h" }

    [problems]
    resolve_incidents = true           # resolving a problem resolves its open incidents
    detect = { incidents = 5, within = "1h", by = "category" }

Every problem names the file, the section, the entry and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from maildesk.config.model import DETECT_BY, DetectRule, ProblemsConfig
from maildesk.config.reader import Reader, int_between, parse_duration
from maildesk.routing.conditions import compile_condition
from maildesk.routing.monitors import FORMATS, Flap, Monitor
from maildesk.terms import PRIORITIES

SECTION = "[[monitors]]"
KEYS = ("name", "when", "format", "pattern", "queue", "priority", "flap")


def read_monitors(
    r: Reader, tables: list[dict[str, Any]], *, queues: set[str]
) -> tuple[Monitor, ...]:
    """Every `[[monitors]]` entry, compiled."""
    found: list[Monitor] = []
    for i, t in enumerate(tables):
        place, name = r.named(t, SECTION, i)
        if name in {m.name for m in found}:
            r.problem(place, "duplicate monitor name")
        when = None
        if "when" not in t:
            r.problem(f"{place} key 'when'", "is required: a condition that recognises its mail")
        else:
            when = compile_condition(t.pop("when"), place, r.problems)
        fmt = r.take(t, place, "format", str, required=True) or ""
        if fmt and fmt not in FORMATS:
            r.problem(f"{place} key 'format'", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
        pattern = _pattern(r, t, place, fmt)
        queue = r.take(t, place, "queue", str, None)
        if queue is not None and queue not in queues:
            r.problem(f"{place} key 'queue'", f"unknown queue {queue!r}")
        priority = _priorities(r, t.pop("priority", {}), place)
        flap = _flap(r, t.pop("flap", {}), place)
        r.done(t, place, KEYS)
        if when is not None:
            found.append(
                Monitor(
                    name=name,
                    when=when,
                    format=fmt,
                    queue=queue,
                    priority=priority,
                    pattern=pattern,
                    flap=flap,
                )
            )
    return tuple(found)


def _pattern(r: Reader, t: dict[str, Any], place: str, fmt: str) -> re.Pattern[str] | None:
    text = r.take(t, place, "pattern", str, None)
    if fmt == "regex" and text is None:
        r.problem(f"{place} key 'pattern'", 'is required with format = "regex"')
    if text is None:
        return None
    if fmt != "regex":
        r.problem(f"{place} key 'pattern'", 'is only read with format = "regex"')
    try:
        pattern = re.compile(text)
    except re.error as exc:
        r.problem(f"{place} key 'pattern'", f"not a valid regex: {exc}")
        return None
    missing = [g for g in ("key", "state") if g not in pattern.groupindex]
    if missing:
        r.problem(f"{place} key 'pattern'", f"needs the named groups {', '.join(missing)}")
        return None
    return pattern


def _priorities(r: Reader, value: object, place: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        r.problem(f"{place} key 'priority'", 'must be a table of SEVERITY = "P1".."P4"')
        return {}
    found: dict[str, str] = {}
    for severity, priority in value.items():
        if priority not in PRIORITIES:
            r.problem(
                f"{place} key 'priority.{severity}'",
                f"must be one of {', '.join(PRIORITIES)}, got {priority!r}",
            )
            continue
        found[str(severity).upper()] = str(priority)
    return found


def _flap(r: Reader, value: object, place: str) -> Flap:
    if not isinstance(value, Mapping):
        r.problem(f"{place} key 'flap'", 'must be a table like { changes = 5, within = "1h" }')
        return Flap()
    t = dict(value)
    where = f"{place} flap"
    flap = Flap(
        changes=r.take(t, where, "changes", int_between(1, 10_000), 5),
        within=r.take(t, where, "within", parse_duration, timedelta(hours=1)),
    )
    r.done(t, where, ("changes", "within"))
    return flap


def read_problems(r: Reader, t: dict[str, Any]) -> ProblemsConfig:
    """[problems]: whether a problem's resolution resolves its incidents; detection."""
    place = "[problems]"
    resolve = bool(r.take(t, place, "resolve_incidents", bool, True))
    detect = _detect(r, t.pop("detect", None))
    r.done(t, place, ("resolve_incidents", "detect"))
    return ProblemsConfig(resolve_incidents=resolve, detect=detect)


def _detect(r: Reader, value: object) -> DetectRule | None:
    if value is None:
        return None
    place = "[problems] detect"
    if not isinstance(value, Mapping):
        r.problem(
            "[problems] key 'detect'",
            'must be a table like { incidents = 5, within = "1h", by = "category" }',
        )
        return None
    t = dict(value)
    rule = DetectRule(
        incidents=r.take(t, place, "incidents", int_between(2, 100_000), 5),
        within=r.take(t, place, "within", parse_duration, timedelta(hours=1)),
        by=r.take(t, place, "by", str, "category"),
    )
    if rule.by not in DETECT_BY:
        r.problem(f"{place} key 'by'", f"must be one of {', '.join(DETECT_BY)}, got {rule.by!r}")
    r.done(t, place, ("incidents", "within", "by"))
    return rule
