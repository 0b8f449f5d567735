"""What a requester or an approver asks for by mail: pure checks over a subject or the new
text of a mail, and the catalog items they are checked against.

- `is_catalog_request`: a subject that is `catalog` or `help` alone: the catalog is mailed back.
- `requested_item`: a subject `Request: <name or title>` (any case): the wanted item's words.
- `read_fields`: `Field: value` lines (label or name, any case) fill the item's fields; every
  other line stays in the description.
- `field_problems`: what is missing or invalid among an item's fields, by field.
- `approval_answer`: a first line `approve` or `reject <reason>` (`#approve`, `#reject` too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

CATALOG_SUBJECTS = ("catalog", "catalogue", "help")
APPROVE_WORDS = ("approve", "approved", "#approve")
REJECT_WORDS = ("reject", "rejected", "#reject")

_REQUEST = re.compile(r"^\s*(?:(?:re|aw|fwd?|wg)\s*:\s*)*request\s*:\s*(?P<item>.+?)\s*$", re.I)
_FIELD_LINE = re.compile(r"^\s*(?P<key>[^:\n]{1,60}?)\s*:\s*(?P<value>.*?)\s*$")
_ANSWER = re.compile(r"^\s*(?P<word>#?[a-z]+)\b[\s.:!,-]*(?P<rest>.*?)\s*$", re.I)
_SIGNATURE = re.compile(r"^(--|__)\s*$")
EMAIL_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")


@dataclass(frozen=True, kw_only=True)
class CatalogField:
    name: str
    label: str
    required: bool = False
    choices: tuple[str, ...] = ()
    kind: str = "text"  # text | date | email | number | ci (a configuration item)


@dataclass(frozen=True, kw_only=True)
class CatalogItem:
    name: str
    title: str
    description: str = ""
    type: str = "request"  # request | change
    queue: str | None = None
    priority: str | None = None
    sla_policy: str | None = None
    fields: tuple[CatalogField, ...] = ()
    approvers: tuple[str, ...] = ()  # addresses, or "lead:QUEUE"
    approvals_required: int = 0  # N of the approvers (0 with no approvers)
    approval_timeout: timedelta = timedelta(days=3)

    @property
    def needs_approval(self) -> bool:
        return bool(self.approvers)


@dataclass(frozen=True, kw_only=True)
class ApprovalAnswer:
    decision: str  # approved | rejected
    comment: str = ""


def find_item(items: tuple[CatalogItem, ...], wanted: str) -> CatalogItem | None:
    """The item whose name or title is `wanted` (any case, spaces squeezed)."""
    key = _squeeze(wanted)
    return next((i for i in items if key in (_squeeze(i.name), _squeeze(i.title))), None)


def is_catalog_request(subject: str | None) -> bool:
    """A subject that is `catalog` (or `help`) alone, any case."""
    return (subject or "").strip().rstrip("?!. ").casefold() in CATALOG_SUBJECTS


def requested_item(subject: str | None) -> str | None:
    """The words after `Request:` at the start of the subject (a Re:/Fwd: before it allowed)."""
    m = _REQUEST.match(subject or "")
    return m.group("item") if m else None


def read_fields(text: str, item: CatalogItem) -> tuple[dict[str, str], str]:
    """The item's fields found as `Label: value` lines, and the text without those lines."""
    by_key = {}
    for f in item.fields:
        by_key[_squeeze(f.name)] = f.name
        by_key[_squeeze(f.label)] = f.name
    values: dict[str, str] = {}
    rest: list[str] = []
    for line in (text or "").splitlines():
        m = _FIELD_LINE.match(line)
        name = by_key.get(_squeeze(m.group("key"))) if m else None
        if m and name and m.group("value"):
            values[name] = m.group("value")
        else:
            rest.append(line)
    return values, "\n".join(rest).strip("\n")


def field_problems(item: CatalogItem, values: dict[str, str]) -> dict[str, str]:
    """Field name -> what is wrong (missing, not one of the choices, not a date...)."""
    problems: dict[str, str] = {}
    for f in item.fields:
        value = values.get(f.name, "").strip()
        if not value:
            if f.required:
                problems[f.name] = "missing"
            continue
        wrong = _invalid(f, value)
        if wrong:
            problems[f.name] = wrong
    return problems


def normalise_fields(item: CatalogItem, values: dict[str, str]) -> dict[str, str]:
    """The values as stored: a choice in its configured spelling, blanks trimmed."""
    out: dict[str, str] = {}
    for f in item.fields:
        value = values.get(f.name, "").strip()
        if not value:
            continue
        choice = next((c for c in f.choices if c.casefold() == value.casefold()), None)
        out[f.name] = choice or value
    return out


def _invalid(f: CatalogField, value: str) -> str | None:
    if f.choices and value.casefold() not in {c.casefold() for c in f.choices}:
        return f"must be one of: {', '.join(f.choices)}"
    if f.kind == "number" and not _NUMBER.match(value):
        return "must be a number"
    if f.kind == "email" and not EMAIL_RE.match(value):
        return "must be an email address"
    if f.kind == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return "must be a date like 2026-12-31"
    return None


def approval_answer(text: str) -> ApprovalAnswer | None:
    """The decision of a first line `approve` / `reject <reason>` (`#approve`, `#reject`),
    any case; the rest of the first line and the lines below (to a signature) are the comment."""
    lines: list[str] = []
    for line in (text or "").splitlines():
        if _SIGNATURE.match(line.strip()):
            break
        if line.strip() or lines:
            lines.append(line.strip())
    if not lines:
        return None
    m = _ANSWER.match(lines[0])
    if not m:
        return None
    word = m.group("word").casefold()
    comment = "\n".join([m.group("rest"), *lines[1:]]).strip()
    if word in APPROVE_WORDS:
        return ApprovalAnswer(decision="approved", comment=comment)
    if word in REJECT_WORDS:
        return ApprovalAnswer(decision="rejected", comment=comment)
    return None


def _squeeze(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").split()).casefold()
