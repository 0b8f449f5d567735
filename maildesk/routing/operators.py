"""Condition operators: one operator and its configured value compiled into a test.

A test takes a field's values (a tuple, see `conditions.Facts`) and is true if any value
passes. Everything that can be worked out from the config is worked out here, once: regexes
and globs compiled, lists turned into sets, needles lower-cased. A bad value raises
ValueError with the message reported at the condition's place.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from datetime import time
from typing import Any

__all__ = ["LOWERED_OPS", "WEEKDAYS", "Test", "compile_operator"]

Test = Callable[[tuple[Any, ...]], bool]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The string operators that compare case-insensitively: they see lower-cased values
# (computed once per message, see Facts.lowered) and lower-cased needles.
LOWERED_OPS = frozenset({"equals", "in", "contains", "glob", "domain"})


def compile_operator(kind: str, op: str, value: object) -> Test:
    """The test for one operator on a field's values (true if any value passes)."""
    if op == "exists" or op == "is":
        return _flag(op, value)
    if kind in ("number",):
        return _number_operator(op, value)
    if kind == "time":
        return _between_times(value)
    if kind == "day":
        return _days(op, value)
    if op == "regex":
        return _regex(kind, value)
    return _text_operator(kind, op, value)


def _flag(op: str, value: object) -> Test:
    """`is` (a flag field) and `exists` (any field has a non-empty value)."""
    if not isinstance(value, bool):
        raise ValueError(f"'{op}' takes true or false, got {value!r}")
    if op == "is":
        return lambda vs: bool(vs and vs[0]) is value
    return lambda vs: any(v not in ("", None) for v in vs) is value


def _between_times(value: object) -> Test:
    """between = ["18:00", "08:00"]: from the first time up to the second, across midnight."""
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError(f'\'between\' takes ["HH:MM", "HH:MM"], got {value!r}')
    start, end = (_clock(v) for v in value)
    if start <= end:
        return lambda vs: any(start <= v < end for v in vs)
    return lambda vs: any(v >= start or v < end for v in vs)  # wraps midnight


def _days(op: str, value: object) -> Test:
    """weekday equals / in: day names, of which the first three letters count."""
    days = {d.lower()[:3] for d in _strings(value, op)}
    unknown = days - set(WEEKDAYS)
    if unknown:
        raise ValueError(f"unknown weekday(s) {sorted(unknown)} (use {', '.join(WEEKDAYS)})")
    return lambda vs: any(v in days for v in vs)


def _regex(kind: str, value: object) -> Test:
    """A regular expression searched for in the value, case as written."""
    if not isinstance(value, str):
        raise ValueError(f"must be a regular expression string, got {value!r}")
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
    return _over(kind, pattern.search)


def _text_operator(kind: str, op: str, value: object) -> Test:
    """equals, in, contains, glob and domain: case-insensitive (see LOWERED_OPS)."""
    needles = [s.lower() for s in _strings(value, op)]
    if op in ("equals", "in"):
        return _over(kind, frozenset(needles).__contains__)
    if op == "contains":
        if len(needles) == 1:
            needle = needles[0]
            return _over(kind, lambda v: needle in v)
        return _over(kind, lambda v: any(n in v for n in needles))
    if op == "glob":
        globs = re.compile("|".join(f"(?:{fnmatch.translate(n)})" for n in needles))
        return _over(kind, globs.match)
    if op == "domain":  # the address's domain is one of these, or a subdomain of one
        suffixes = tuple("." + n.lstrip("@.") for n in needles)
        exact = frozenset(n.lstrip("@.") for n in needles)

        def in_domain(v: str) -> bool:
            domain = v.rpartition("@")[2]
            return domain in exact or domain.endswith(suffixes)

        return _over(kind, in_domain)
    raise ValueError(f"unknown operator {op!r}")


def _strings(value: object, op: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError(f"'{op}' takes a non-empty string or list of strings, got {value!r}")
    return [str(v) for v in items]


def _over(kind: str, one: Callable[[str], object]) -> Test:
    """Lift a test on one string to a field: its single value, or any of its values."""
    if kind == "text":  # always exactly one value: no generator on the hot path
        return lambda vs: bool(one(vs[0]))
    return lambda vs: any(one(v) for v in vs)


def _number_operator(op: str, value: object) -> Test:
    def number(v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"'{op}' takes a number, got {v!r}")
        return float(v)

    if op == "between":
        if not (isinstance(value, list) and len(value) == 2):
            raise ValueError(f"'between' takes [low, high], got {value!r}")
        low, high = number(value[0]), number(value[1])
        return lambda vs: any(low <= v <= high for v in vs)
    if op in ("equals", "in"):
        wanted = frozenset(number(v) for v in (value if isinstance(value, list) else [value]))
        return lambda vs: any(v in wanted for v in vs)
    limit = number(value)
    compare: dict[str, Callable[[float], bool]] = {
        "lt": lambda v: v < limit,
        "le": lambda v: v <= limit,
        "gt": lambda v: v > limit,
        "ge": lambda v: v >= limit,
    }
    test = compare[op]
    return lambda vs: any(test(v) for v in vs)


def _clock(value: object) -> time:
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
        hours, minutes = (int(x) for x in value.split(":"))
        if hours < 24 and minutes < 60:
            return time(hours, minutes)
    raise ValueError(f'expected a time like "18:30", got {value!r}')
