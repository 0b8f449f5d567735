"""[[services]] and [cmdb]: the services the desk supports and the inventory of the
configuration items they run on (docs/services.md).

    [[services]]
    name = "email"
    description = "Company mail"
    queue = "infra"                    # owner queue
    criticality = "high"               # low | medium | high
    sla_policy = "infra 24x7"          # optional: an [[sla_policies]] name
    depends_on = ["network"]
    subscribers = ["all-staff@example.com"]

    [cmdb]
    path = "inventory.csv"             # relative to the config file; .csv or .toml
    domains = ["example.com"]          # FQDNs under these also match their short names

Every problem names the file, the service and the key; the inventory's name the inventory
file, its line (or entry) and column (maildesk.config.inventory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maildesk.config.inventory import read_inventory
from maildesk.config.reader import Reader, parse_email
from maildesk.routing.cis import CRITICALITIES, Inventory, Service
from maildesk.routing.rules import Rule

SECTION = "[[services]]"
KEYS = ("name", "description", "queue", "criticality", "sla_policy", "depends_on", "subscribers")
CMDB_KEYS = ("path", "domains")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


@dataclass(frozen=True, kw_only=True)
class CmdbConfig:
    """Where the inventory is (None: no inventory), and the domains of its short names."""

    path: Path | None = None
    domains: tuple[str, ...] = ()
    inventory: Inventory = field(default_factory=Inventory)


def read_services(
    r: Reader, tables: list[dict[str, Any]], *, queues: set[str], policies: set[str]
) -> tuple[Service, ...]:
    """Every `[[services]]` entry, checked; then their dependencies (known, no cycles)."""
    found: list[Service] = []
    for i, t in enumerate(tables):
        service = _service(r, t, i, queues=queues, policies=policies)
        if service.name in {s.name for s in found}:
            r.problem(f"{SECTION} '{service.name}'", "duplicate service name")
            continue
        found.append(service)
    _check_dependencies(r, found)
    return tuple(found)


def _service(
    r: Reader, t: dict[str, Any], i: int, *, queues: set[str], policies: set[str]
) -> Service:
    place, name = r.named(t, SECTION, i)
    if not _NAME.match(name) and not name.startswith("#"):
        r.problem(f"{place} key 'name'", "must be lower-case letters, digits, '.', '-' or '_'")
    queue = r.take(t, place, "queue", str, None, required=True)
    if queue is not None and queue not in queues:
        r.problem(f"{place} key 'queue'", f"unknown queue {queue!r} (queues: {_known(queues)})")
    criticality = r.take(t, place, "criticality", str, "medium")
    if criticality not in CRITICALITIES:
        r.problem(
            f"{place} key 'criticality'",
            f"must be one of {', '.join(CRITICALITIES)}, got {criticality!r}",
        )
    policy = r.take(t, place, "sla_policy", str, None)
    if policy is not None and policy not in policies:
        r.problem(
            f"{place} key 'sla_policy'",
            f"unknown SLA policy {policy!r} ([[sla_policies]]: {_known(policies)})",
        )
    service = Service(
        name=name,
        description=r.take(t, place, "description", str, "") or "",
        queue=queue or "",
        criticality=criticality if criticality in CRITICALITIES else "medium",
        sla_policy=policy,
        depends_on=tuple(dict.fromkeys(r.strings(t, place, "depends_on"))),
        subscribers=_subscribers(r, t, place),
    )
    r.done(t, place, KEYS)
    return service


def _subscribers(r: Reader, t: dict[str, Any], place: str) -> tuple[str, ...]:
    found: list[str] = []
    for value in r.strings(t, place, "subscribers"):
        try:
            address = parse_email(value)
        except ValueError:
            r.problem(f"{place} key 'subscribers'", f"expected an address, got {value!r}")
            continue
        if address not in found:
            found.append(address)
    return tuple(found)


def _check_dependencies(r: Reader, services: list[Service]) -> None:
    """Every `depends_on` names a service; no service depends on itself, however far."""
    names = {s.name for s in services}
    graph = {s.name: [d for d in s.depends_on if d in names] for s in services}
    for s in services:
        for d in s.depends_on:
            if d not in names:
                r.problem(
                    f"{SECTION} '{s.name}' key 'depends_on'",
                    f"unknown service {d!r} (services: {_known(names)})",
                )
    reported: set[frozenset[str]] = set()
    for s in services:
        cycle = _cycle(graph, s.name)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            r.problem(
                f"{SECTION} '{s.name}' key 'depends_on'",
                f"depends on itself: {' -> '.join([*cycle, cycle[0]])}",
            )


def _cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    """The services of a dependency cycle through `start`, in order, or None."""
    path: list[str] = [start]

    def walk(node: str, seen: set[str]) -> list[str] | None:
        for nxt in graph.get(node, []):
            if nxt == start:
                return list(path)
            if nxt in seen:
                continue
            seen.add(nxt)
            path.append(nxt)
            found = walk(nxt, seen)
            if found:
                return found
            path.pop()
        return None

    return walk(start, {start})


def read_cmdb(r: Reader, t: dict[str, Any], base: Path, services: set[str]) -> CmdbConfig:
    """[cmdb]: path (relative to the config file) and domains; the inventory, loaded."""
    place = "[cmdb]"
    path = r.take(t, place, "path", str, None)
    domains = []
    for d in r.strings(t, place, "domains"):
        domain = d.strip().lstrip(".").rstrip(".").lower()
        if not _DOMAIN.match(domain):
            r.problem(f"{place} key 'domains'", f"expected a domain like 'example.com', got {d!r}")
        else:
            domains.append(domain)
    r.done(t, place, CMDB_KEYS)
    if not path:
        if domains:
            r.problem(f"{place} key 'domains'", "needs 'path' (the inventory)")
        return CmdbConfig()
    file = (base / path).resolve()
    if file.suffix.lower() not in (".csv", ".toml"):
        r.problem(f"{place} key 'path'", f"must end in .csv or .toml, got {path!r}")
        return CmdbConfig(path=file, domains=tuple(domains))
    # A file missing now is no config error (as [kb] path): the inventory is empty until
    # `maildesk ci import` writes it; `maildesk ci list` says so.
    cis, problems = read_inventory(file, services) if file.is_file() else ((), [])
    r.elsewhere(problems)
    return CmdbConfig(path=file, domains=tuple(domains), inventory=Inventory(cis, tuple(domains)))


def check_rule_services(r: Reader, rules: tuple[Rule, ...], services: tuple[Service, ...]) -> None:
    """A rule's `set.service` must name a service."""
    names = {s.name for s in services}
    for rule in rules:
        wanted = rule.actions.service
        if wanted is not None and wanted not in names:
            r.problem(
                f"[[rules]] '{rule.name}' key 'set.service'",
                f"unknown service {wanted!r} (services: {_known(names)})",
            )


def _known(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "none configured"
