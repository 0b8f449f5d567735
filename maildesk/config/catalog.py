"""[[catalog]]: the services people can request by mail, the fields each request needs and
who approves it.

    [[catalog]]
    name = "new-laptop"                # key; "Request: new-laptop" or "Request: New laptop"
    title = "New laptop"
    description = "A laptop for a new or existing employee."
    type = "request"                   # request | change
    queue = "it"
    priority = "P3"
    sla_policy = "standard"            # optional
    fields = [ { name = "user", label = "For whom", required = true },
               { name = "model", choices = ["standard", "developer"], required = true } ]
    approvers = ["carol@example.com", "lead:it"]
    approvals_required = 1             # N of the approvers (default: all)
    approval_timeout = "3d"            # reminder then; expiry at twice this

Every problem names the file, the item and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from maildesk.config.reader import Reader, parse_duration, parse_email
from maildesk.routing.catalog import CatalogField, CatalogItem, find_item
from maildesk.routing.rules import Rule
from maildesk.terms import PRIORITIES

SECTION = "[[catalog]]"
KEYS = (
    "name",
    "title",
    "description",
    "type",
    "queue",
    "priority",
    "sla_policy",
    "fields",
    "approvers",
    "approvals_required",
    "approval_timeout",
)
FIELD_KEYS = ("name", "label", "required", "choices", "kind")
TYPES = ("request", "change")
KINDS = ("text", "date", "email", "number", "ci")
LEAD_PREFIX = "lead:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def read_catalog(
    r: Reader,
    tables: list[dict[str, Any]],
    *,
    queues: set[str],
    policies: set[str],
    leads: Mapping[str, str],
) -> tuple[CatalogItem, ...]:
    """Every `[[catalog]]` item, checked."""
    found: list[CatalogItem] = []
    for i, t in enumerate(tables):
        item = _item(r, t, i, queues=queues, policies=policies, leads=leads)
        if item.name.casefold() in {x.name.casefold() for x in found}:
            r.problem(f"{SECTION} '{item.name}'", "duplicate catalog item name")
        elif find_item(tuple(found), item.title) is not None:
            r.problem(f"{SECTION} '{item.name}' key 'title'", f"{item.title!r} is already used")
        found.append(item)
    return tuple(found)


def _item(
    r: Reader,
    t: dict[str, Any],
    i: int,
    *,
    queues: set[str],
    policies: set[str],
    leads: Mapping[str, str],
) -> CatalogItem:
    place, name = r.named(t, SECTION, i)
    if not _NAME.match(name) and not name.startswith("#"):
        r.problem(f"{place} key 'name'", "must be lower-case letters, digits, '-' or '_'")
    kind = r.take(t, place, "type", str, "request")
    if kind not in TYPES:
        r.problem(f"{place} key 'type'", f"must be one of {', '.join(TYPES)}, got {kind!r}")
    queue = r.take(t, place, "queue", str, None)
    if queue is not None and queue not in queues:
        r.problem(f"{place} key 'queue'", f"unknown queue {queue!r}")
    priority = r.take(t, place, "priority", str, None)
    if priority is not None and priority not in PRIORITIES:
        r.problem(
            f"{place} key 'priority'", f"must be one of {', '.join(PRIORITIES)}, got {priority!r}"
        )
    policy = r.take(t, place, "sla_policy", str, None)
    if policy is not None and policy not in policies:
        r.problem(f"{place} key 'sla_policy'", f"unknown SLA policy {policy!r}")
    approvers = _approvers(r, t, place, queues, leads)
    required = _required(r, t, place, len(approvers))
    timeout = r.take(t, place, "approval_timeout", parse_duration, timedelta(days=3))
    if timeout <= timedelta(0):
        r.problem(f"{place} key 'approval_timeout'", "must be more than 0")
    item = CatalogItem(
        name=name,
        title=r.take(t, place, "title", str, None) or name,
        description=r.take(t, place, "description", str, "") or "",
        type=kind or "request",
        queue=queue,
        priority=priority,
        sla_policy=policy,
        fields=_fields(r, t.pop("fields", []), place),
        approvers=approvers,
        approvals_required=required,
        approval_timeout=timeout,
    )
    r.done(t, place, KEYS)
    return item


def _approvers(
    r: Reader, t: dict[str, Any], place: str, queues: set[str], leads: Mapping[str, str]
) -> tuple[str, ...]:
    where = f"{place} key 'approvers'"
    found: list[str] = []
    for value in r.strings(t, place, "approvers"):
        if value.startswith(LEAD_PREFIX):
            queue = value[len(LEAD_PREFIX) :]
            if queue not in queues:
                r.problem(where, f"{value!r}: unknown queue {queue!r}")
            elif not (leads.get(queue) or leads.get("*")):
                r.problem(where, f"{value!r}: queue {queue!r} has no lead in [sla] leads")
            else:
                found.append(value)
            continue
        try:
            address = parse_email(value)
        except ValueError:
            r.problem(where, f"expected an address or 'lead:QUEUE', got {value!r}")
            continue
        if address in found:
            r.problem(where, f"{value!r} is listed twice")
        found.append(address)
    return tuple(found)


def _required(r: Reader, t: dict[str, Any], place: str, approvers: int) -> int:
    value = r.take(t, place, "approvals_required", int, None)
    if value is None:
        return approvers
    if not approvers:
        r.problem(f"{place} key 'approvals_required'", "needs approvers")
        return 0
    if not 1 <= value <= approvers:
        r.problem(
            f"{place} key 'approvals_required'",
            f"must be from 1 to {approvers} (the number of approvers), got {value!r}",
        )
        return approvers
    return value


def _fields(r: Reader, value: object, place: str) -> tuple[CatalogField, ...]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        r.problem(f"{place} key 'fields'", 'must be a list of tables like { name = "user" }')
        return ()
    found: list[CatalogField] = []
    for n, raw in enumerate(value):
        t = dict(raw)
        where = f"{place} fields #{n + 1}"
        name = r.take(t, where, "name", str, required=True) or ""
        if name and not _NAME.match(name):
            r.problem(f"{where} key 'name'", "must be lower-case letters, digits, '-' or '_'")
        kind = r.take(t, where, "kind", str, "text")
        if kind not in KINDS:
            r.problem(f"{where} key 'kind'", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        fld = CatalogField(
            name=name,
            label=r.take(t, where, "label", str, None) or name,
            required=bool(r.take(t, where, "required", bool, False)),
            choices=r.strings(t, where, "choices"),
            kind=kind or "text",
        )
        r.done(t, where, FIELD_KEYS)
        if name and name in {f.name for f in found}:
            r.problem(f"{where} key 'name'", f"duplicate field {name!r}")
        found.append(fld)
    return tuple(found)


def check_rule_items(r: Reader, rules: tuple[Rule, ...], items: tuple[CatalogItem, ...]) -> None:
    """A rule's `set.catalog` must name a catalog item."""
    names = {i.name for i in items}
    for rule in rules:
        wanted = rule.actions.catalog
        if wanted is not None and wanted not in names:
            known = ", ".join(sorted(names)) or "no [[catalog]] items configured"
            r.problem(
                f"[[rules]] '{rule.name}' key 'set.catalog'",
                f"unknown catalog item {wanted!r} (known: {known})",
            )
