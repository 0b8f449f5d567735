"""The routing sections: [[rules]], [priority_matrix] and [routing].

The rule and matrix compilers live with the router (`maildesk.routing.rules`), which
documents their tables; this module hands them their sections and records their problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from maildesk.config.reader import EMAIL, Reader
from maildesk.mail.address import normalise_address
from maildesk.routing.rules import LEVELS, Rule, compile_matrix, compile_rules

MATRIX = "[priority_matrix]"
MATRIX_SWITCHES = ("impact_from_service",)


def read_rules(
    r: Reader, tables: list[dict[str, Any]], *, queues: set[str], agents: set[str]
) -> tuple[Rule, ...]:
    """[[rules]], compiled in order against the configured queues and agents."""
    rules, problems = compile_rules(tables, queues=queues, agents=agents)
    r.extend(problems)
    return tuple(rules)


def read_matrix(r: Reader, table: object) -> dict[str, Any]:
    """[priority_matrix], as the Config's `priority_matrix` (impact x urgency -> priority,
    over the ITIL default) and `impact_from_service` (an incident's impact is its service's
    criticality)."""
    if not isinstance(table, Mapping):
        matrix, problems = compile_matrix(table)
        r.extend(problems)
        return {"priority_matrix": matrix, "impact_from_service": False}
    rows = dict(table)
    switch = r.take(rows, MATRIX, "impact_from_service", bool, False)
    for key in [k for k in rows if k not in LEVELS]:
        known = ", ".join((*LEVELS, *MATRIX_SWITCHES))
        r.problem(f"{MATRIX} key '{key}'", f"unknown key (known: {known})")
        del rows[key]
    matrix, problems = compile_matrix(rows)
    r.extend(problems)
    return {"priority_matrix": matrix, "impact_from_service": switch}


def read_vips(r: Reader, t: dict[str, Any]) -> tuple[str, ...]:
    """[routing] vips: addresses and "@domain"s, normalised as the mail's addresses are."""
    vips = tuple(normalise_address(v) for v in r.strings(t, "[routing]", "vips") if _vip(r, v))
    r.done(t, "[routing]")
    return vips


def _vip(r: Reader, value: str) -> bool:
    if EMAIL.match(value) or re.fullmatch(r"@[^@\s]+\.[^@\s]+", value):
        return True
    r.problem("[routing] key 'vips'", f"expected an address or @domain, got {value!r}")
    return False
