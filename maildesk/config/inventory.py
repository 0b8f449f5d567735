"""The CI inventory file of `[cmdb] path`: CSV or TOML (by the file's extension).

CSV: a header line, then one CI a line. Columns `name` (required), `kind`, `services`,
`owner`, `aliases` (services and aliases separated by spaces); any other column is an
attribute. A line whose name starts with `#` is a comment.

    name,kind,services,owner,aliases,location
    mail01,host,email,infra@example.com,mail01.example.com 10.0.0.21,rack 3

TOML: one `[[ci]]` table per CI with the same keys (services and aliases as lists or
space-separated strings), any other key (or an `attributes` table) an attribute.

Every problem names the inventory file, the line (CSV) or entry (TOML) and the column or
key. Unknown services, a name used twice and an alias two CIs claim are errors.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from maildesk.errors import ConfigProblem
from maildesk.routing.cis import Ci, ip_of

COLUMNS = ("name", "kind", "services", "owner", "aliases")
MAX_NAME = 255


class Place:
    """Where a CI is written ("line 3", "[[ci]] 'mail01'") and how its fields are named."""

    def __init__(self, where: str, field: str) -> None:
        self.where, self.field = where, field

    def __call__(self, column: str) -> str:
        return f"{self.where} {self.field} '{column}'"


def read_inventory(
    path: Path, services: set[str], text: str | None = None
) -> tuple[tuple[Ci, ...], list[ConfigProblem]]:
    """The CIs of an inventory file (or of `text`, read as that file), and every problem."""
    file = str(path)
    try:
        body = text if text is not None else path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return (), [ConfigProblem(file, "file", f"cannot read: {exc}")]
    problems: list[ConfigProblem] = []

    def problem(place: str, message: str) -> None:
        problems.append(ConfigProblem(file, place, message))

    suffix = path.suffix.lower()
    if suffix == ".toml":
        rows = list(_toml_rows(body, problem))
    elif suffix == ".csv":
        rows = list(_csv_rows(body, problem))
    else:
        return (), [ConfigProblem(file, "file", "an inventory is a .csv or .toml file")]
    cis = _checked(rows, services, problem)
    return cis, problems


def _csv_rows(
    body: str, problem: Callable[[str, str], None]
) -> Iterator[tuple[Place, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(body.lstrip("\ufeff"), newline=""), strict=True)
    header: list[str] | None = None
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [c.strip().lower() for c in row]
                _check_header(header, line, problem)
                continue
            if row[0].strip().startswith("#"):
                continue
            if len(row) > len(header):
                problem(f"line {line}", f"{len(row)} columns, the header has {len(header)}")
            values = {k: v.strip() for k, v in zip(header, row, strict=False) if k}
            yield Place(f"line {line}", "column"), values
    except csv.Error as exc:
        problem(f"line {reader.line_num}", f"not valid CSV: {exc}")
    if header is None:
        problem("line 1", "no header line (columns: " + ", ".join(COLUMNS) + ")")


def _check_header(header: list[str], line: int, problem: Callable[[str, str], None]) -> None:
    if "name" not in header:
        problem(
            f"line {line}", "the header has no 'name' column (columns: " + ", ".join(COLUMNS) + ")"
        )
    for n, col in enumerate(header):
        if col and col in header[:n]:
            problem(f"line {line} column '{col}'", "column given twice")


def _toml_rows(
    body: str, problem: Callable[[str, str], None]
) -> Iterator[tuple[Place, dict[str, Any]]]:
    try:
        data = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        problem("file", f"not valid TOML: {exc}")
        return
    for key in data:
        if key != "ci":
            problem(f"[{key}]", "unknown section (an inventory has [[ci]] tables)")
    tables = data.get("ci", [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        problem("[[ci]]", "must be an array of tables")
        return
    for i, t in enumerate(tables):
        name = t.get("name")
        where = f"[[ci]] '{name}'" if isinstance(name, str) and name.strip() else f"[[ci]] #{i + 1}"
        values: dict[str, Any] = {}
        for k, v in t.items():
            if k == "attributes" and isinstance(v, Mapping):
                values.update({f"{a}": x for a, x in v.items()})
            elif k in ("services", "aliases") and isinstance(v, list):
                values[k] = " ".join(str(x) for x in v)
            elif isinstance(v, str | int | float) and not isinstance(v, bool):
                values[k] = str(v).strip()
            else:
                problem(f"{where} key '{k}'", f"must be a string (or a list for {k}), got {v!r}")
        yield Place(where, "key"), values


def _checked(
    rows: list[tuple[Place, dict[str, Any]]],
    services: set[str],
    problem: Callable[[str, str], None],
) -> tuple[Ci, ...]:
    """The rows as CIs: each valid on its own, no name or alias claimed twice."""
    found: list[Ci] = []
    # recognition key -> (the CI, where it is written, whether it is the CI's name)
    claimed: dict[object, tuple[str, str, bool]] = {}
    for place, values in rows:
        ci = _ci(place, values, services, problem)
        if ci is None:
            continue
        clash = False
        for key in ci.keys:
            slot = ip_of(key) or key.lower()
            owner = claimed.get(slot)
            column = "name" if key == ci.name else "aliases"
            if owner is not None and (owner[0] != ci.name or column == "name"):
                what = "name" if owner[2] else "an alias"
                problem(place(column), f"{key!r} is already {what} of CI {owner[0]!r} ({owner[1]})")
                clash = clash or column == "name"
            elif owner is None:
                claimed[slot] = (ci.name, place.where, column == "name")
        if not clash:
            found.append(ci)
    return tuple(found)


def _ci(
    place: Place,
    values: dict[str, Any],
    services: set[str],
    problem: Callable[[str, str], None],
) -> Ci | None:
    name = values.get("name", "")
    if not name:
        problem(place("name"), "is required")
        return None
    if len(name.split()) != 1 or len(name) > MAX_NAME:
        problem(place("name"), f"must be one word of at most {MAX_NAME} characters, got {name!r}")
        return None
    wanted = tuple(dict.fromkeys(values.get("services", "").split()))
    for s in wanted:
        if s not in services:
            known = ", ".join(sorted(services)) or "no [[services]] configured"
            problem(place("services"), f"unknown service {s!r} (services: {known})")
    aliases = tuple(a for a in dict.fromkeys(values.get("aliases", "").split()) if a != name)
    for a in aliases:
        if len(a) > MAX_NAME:
            problem(place("aliases"), f"an alias is at most {MAX_NAME} characters")
    return Ci(
        name=name,
        kind=values.get("kind", ""),
        services=tuple(s for s in wanted if s in services),
        owner=values.get("owner", ""),
        aliases=aliases,
        attributes={k: v for k, v in values.items() if k not in COLUMNS and v != ""},
    )
