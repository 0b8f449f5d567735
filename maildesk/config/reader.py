"""The one TOML reader: typed keys taken out of config tables, every problem kept with its place.

A place names the section, the entry (by name, or #n without one) and the key, e.g.
"[[mailboxes]] 'support' key 'port'"; `Reader.check` adds the file and raises ConfigError
with every problem found. The value parsers below (sizes, durations, addresses, zones,
booleans, string lists) raise ValueError with the message that is reported at the place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from maildesk.errors import ConfigError, ConfigProblem
from maildesk.mail.address import normalise_address
from maildesk.routing.conditions import Problems

__all__ = [
    "DURATION_EXAMPLES",
    "EMAIL",
    "Reader",
    "int_between",
    "parse_bool",
    "parse_duration",
    "parse_email",
    "parse_hostport",
    "parse_size",
    "parse_strings",
    "parse_zone",
    "zone_name",
]

T = TypeVar("T")

# --- the value kinds the config uses ----------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KIB|MIB|GIB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_EXAMPLES = "'30s', '15m', '4h' or '14d'"  # what a bad duration's message suggests
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def parse_size(value: object) -> int:
    """'25MB' -> 25000000; MB is 10^6 bytes, MiB is 2^20; a bare int is bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    size = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "B").upper()]) if m else 0
    if size <= 0:
        raise ValueError(f"expected a size above zero like '25MB' or '10MiB', got {value!r}")
    return size


def int_between(low: int, high: int) -> Callable[[object], int]:
    """A validator for an integer key in [low, high]."""

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    return check


def parse_duration(value: object, *, examples: str = DURATION_EXAMPLES) -> timedelta:
    """'14d' -> 14 days; units ms, s, m, h, d, w; a bare number is seconds.

    `examples` is what the error suggests instead (SLA targets suggest minutes and hours).
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"expected a duration like {examples}, got {value!r}")
    return timedelta(seconds=float(m.group(1)) * _DURATION_UNITS[m.group(2)])


def parse_hostport(value: object) -> tuple[str, int]:
    """'127.0.0.1:2525' -> ('127.0.0.1', 2525)."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"expected 'host:port', got {value!r}")
    host, _, port = value.rpartition(":")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_email(value: object) -> str:
    """An email address in the one spelling the store uses (lower-cased, NFC, the domain in
    Unicode: see maildesk.mail.address.normalise_address), so an IDN written either way
    matches the mail."""
    if not isinstance(value, str) or not EMAIL.match(value):
        raise ValueError(f"expected an email address, got {value!r}")
    return normalise_address(value)


def parse_zone(value: object) -> ZoneInfo:
    """An IANA timezone name, as a ZoneInfo."""
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}") from None


def zone_name(value: object) -> str:
    """An IANA timezone name, checked and kept as the name."""
    parse_zone(value)
    return str(value)


def parse_bool(value: object) -> bool:
    """true or false, and nothing else that Python would call truthy."""
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def parse_strings(value: object) -> list[str]:
    """One string or a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"must be a string or a list of strings, got {value!r}")


# --- the reader: takes typed keys from a table and records problems with their place ----


class Reader:
    """Takes keys out of TOML tables (what is left over is unknown) and collects problems."""

    def __init__(self, file: str = "") -> None:
        self.file = file
        self.problems: Problems = []
        self.other_files: list[ConfigProblem] = []  # problems in files the config names

    def problem(self, place: str, message: str) -> None:
        """Record one problem at its place."""
        self.problems.append((place, message))

    def extend(self, problems: Iterable[tuple[str, str]]) -> None:
        """Record the problems another compiler found (rules, the priority matrix)."""
        self.problems.extend(problems)

    def elsewhere(self, problems: Iterable[ConfigProblem]) -> None:
        """Record problems found in another file the config names (the CI inventory)."""
        self.other_files.extend(problems)

    def check(self) -> None:
        """Raise ConfigError naming the file and every problem, if there are any."""
        if self.problems or self.other_files:
            mine = [ConfigProblem(self.file, p, m) for p, m in self.problems]
            raise ConfigError(mine + self.other_files)

    def table(self, data: Mapping[str, Any], key: str) -> dict[str, Any]:
        """The [key] section, as a dict the takes below may empty."""
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            self.problem(f"[{key}]", "must be a table")
            return {}
        return dict(value)

    def array(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        """The [[key]] entries, each as a dict the takes below may empty."""
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self.problem(f"[[{key}]]", "must be an array of tables")
            return []
        return [dict(v) for v in value]

    @overload
    def take(
        self,
        table: dict[str, Any],
        place: str,
        key: str,
        kind: type[T] | Callable[[object], T],
        default: None = None,
        *,
        required: bool = False,
    ) -> T | None: ...

    @overload
    def take(
        self,
        table: dict[str, Any],
        place: str,
        key: str,
        kind: type[T] | Callable[[object], T],
        default: T,
        *,
        required: bool = False,
    ) -> T: ...

    def take(
        self,
        table: dict[str, Any],
        place: str,
        key: str,
        kind: type[T] | Callable[[object], T],
        default: T | None = None,
        *,
        required: bool = False,
    ) -> T | None:
        """Pop `key`: a value of type `kind`, or parsed by `kind`; the default if absent or bad."""
        if key not in table:
            if required:
                self.problem(f"{place} key '{key}'", "is required")
            return default
        value = table.pop(key)
        if isinstance(kind, type):
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if not ok:
                self.problem(f"{place} key '{key}'", f"must be {kind.__name__}, got {value!r}")
                return default
            return cast(T, value)
        try:
            return kind(value)
        except ValueError as exc:
            self.problem(f"{place} key '{key}'", str(exc))
            return default

    def strings(self, table: dict[str, Any], place: str, key: str) -> tuple[str, ...]:
        """Pop `key`: a list of strings (absent: empty)."""
        value = table.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{place} key '{key}'", f"must be a list of strings, got {value!r}")
            return ()
        return tuple(value)

    def named(self, table: dict[str, Any], section: str, i: int) -> tuple[str, str]:
        """Pop the entry's name: its place ("[[section]] 'name'", or "#n") and its name."""
        name = table.pop("name", None)
        if isinstance(name, str) and name.strip():
            return f"{section} '{name}'", name
        self.problem(f"{section} #{i + 1} key 'name'", "is required and must be a non-empty string")
        return f"{section} #{i + 1}", f"#{i + 1}"

    def seconds(self, table: dict[str, Any], place: str, key: str, default: float) -> float:
        """A duration key that must be more than zero, in seconds."""
        value = self.take(table, place, key, parse_duration, None)
        if value is None:
            return default
        if value <= timedelta(0):
            self.problem(f"{place} key '{key}'", "must be more than 0")
            return default
        return value.total_seconds()

    def existing_file(self, place: str, key: str, base: Path, value: str | None) -> Path | None:
        """`value` relative to the config's directory; a problem if no such file."""
        return self._existing(place, key, base, value, Path.is_file, "file")

    def existing_dir(self, place: str, key: str, base: Path, value: str | None) -> Path | None:
        """`value` relative to the config's directory; a problem if no such directory."""
        return self._existing(place, key, base, value, Path.is_dir, "directory")

    def _existing(
        self,
        place: str,
        key: str,
        base: Path,
        value: str | None,
        exists: Callable[[Path], bool],
        kind: str,
    ) -> Path | None:
        if value is None:
            return None
        path = base / value
        if not exists(path):
            self.problem(f"{place} key '{key}'", f"{kind} {path} does not exist")
        return path

    def done(self, table: Mapping[str, Any], place: str, known: Sequence[str] = ()) -> None:
        """Every key still in the table is unknown (listing the known ones, if given)."""
        listing = f" (known: {', '.join(known)})" if known else ""
        for key in table:
            self.problem(f"{place} key '{key}'", f"unknown key{listing}")
