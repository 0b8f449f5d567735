"""[[organisations]]: customer companies by mail domain (maildesk.routing.organisations).

    [[organisations]]
    name = "Example Corp"
    domains = ["example.org"]        # and every subdomain: it.example.org
    vip = true                       # `sender_is_vip` / `organisation_is_vip` in rules
    queue = "infra"                  # its tickets' queue when no rule sets one
    sla_policy = "gold"              # its tickets' SLA policy when no rule picks one
    notes = "Contract 2026-17"

A domain belongs to one organisation only; queue and policy must be configured ones.
"""

from __future__ import annotations

import re
from typing import Any

from maildesk.config.reader import Reader
from maildesk.routing.organisations import Organisation, normalise_domain

SECTION = "[[organisations]]"
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def read_organisations(
    r: Reader, tables: list[dict[str, Any]], *, queues: set[str], policies: set[str]
) -> tuple[Organisation, ...]:
    """Every `[[organisations]]` entry, checked; problems name the entry and the key."""
    found: list[Organisation] = []
    owner: dict[str, str] = {}  # domain -> the organisation that has it
    for i, t in enumerate(tables):
        place, name = r.named(t, SECTION, i)
        if name in {o.name for o in found}:
            r.problem(place, "duplicate organisation name")
        domains = _domains(r, t, place)
        for d in domains:
            if d in owner:
                r.problem(f"{place} key 'domains'", f"domain {d!r} is already {owner[d]!r}'s")
            owner.setdefault(d, name)
        org = Organisation(
            name=name,
            domains=domains,
            vip=bool(r.take(t, place, "vip", bool, False)),
            queue=_known(r, t, place, "queue", queues),
            sla_policy=_known(r, t, place, "sla_policy", policies),
            notes=r.take(t, place, "notes", str, "") or "",
        )
        r.done(t, place, ("name", "domains", "vip", "queue", "sla_policy", "notes"))
        found.append(org)
    return tuple(found)


def _domains(r: Reader, t: dict[str, Any], place: str) -> tuple[str, ...]:
    if "domains" not in t:
        r.problem(f"{place} key 'domains'", "is required: a list of mail domains")
    elif t["domains"] == []:
        r.problem(f"{place} key 'domains'", "needs at least one mail domain")
    values = r.strings(t, place, "domains")
    domains = []
    for value in values:
        d = normalise_domain(value.removeprefix("@"))
        if not _DOMAIN.match(d):
            r.problem(f"{place} key 'domains'", f"not a mail domain: {value!r}")
        elif d not in domains:
            domains.append(d)
    return tuple(domains)


def _known(r: Reader, t: dict[str, Any], place: str, key: str, names: set[str]) -> str | None:
    value = r.take(t, place, key, str, None)
    if value is not None and value not in names:
        known = ", ".join(sorted(names)) or "none configured"
        r.problem(f"{place} key '{key}'", f"unknown {key.replace('_', ' ')} {value!r} ({known})")
        return None
    return value
