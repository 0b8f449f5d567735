"""Impact and urgency stay on the ticket: `#impact`/`#urgency` by a proven agent and
`ticket set impact=... urgency=...` recompute the priority through the matrix, then the SLA
due times; an explicit `#priority` wins until the next change. On both databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.agents import ALICE, events, open_ticket, reply
from tests.conftest import Desk, Sink, running_desk, wait_until

EXTRA = """
[[sla_policies]]
name = "standard"
default = true
calendar = "24x7"
first_response = { P1 = "1h", P2 = "2h", P3 = "8h", P4 = "16h" }
resolution = { P1 = "4h", P2 = "16h", P3 = "40h", P4 = "80h" }

[priority_matrix]
low = { high = "P2" }                # not the ITIL default: the desk's matrix is used

[[rules]]
name = "vpn is low impact"
match = { subject = "(?i)vpn" }
set = { impact = "low", urgency = "medium" }
"""


@pytest.fixture
def sla_desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    with running_desk(write_config(db_url, sink.port, extra=EXTRA), sink) as d:
        yield d


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def due_after(ticket: dict[str, Any]) -> timedelta:
    """How long after creation the first response is due (the clock ran from the start)."""
    return _at(ticket["first_response_due"]) - _at(ticket["created_at"])


def near(value: timedelta, hours: float) -> bool:
    return abs(value - timedelta(hours=hours)) < timedelta(minutes=1)


def test_routed_impact_and_urgency_are_stored_and_changes_recompute(sla_desk: Desk) -> None:
    desk = sla_desk
    opened = open_ticket(desk, subject="VPN slow since Monday")
    ref = opened.ref
    first = desk.ticket(ref)
    assert (first["impact"], first["urgency"], first["priority"]) == ("low", "medium", "P4")
    assert near(due_after(first), 16)

    reply(desk, opened.notice, "#impact high\n#note the whole sales floor")
    changed = wait_until(lambda: (t := desk.ticket(ref))["priority"] == "P2" and t)
    assert (changed["impact"], changed["urgency"]) == ("high", "medium")
    assert near(due_after(changed), 2)
    [impact] = events(desk, ref, "impact")
    assert (impact["actor"], impact["via"], impact["data"]["from"], impact["data"]["to"]) == (
        ALICE,
        "mail",
        "low",
        "high",
    )
    [raised] = events(desk, ref, "priority")
    assert (raised["data"]["from"], raised["data"]["to"]) == ("P4", "P2")
    assert "impact high x urgency medium" in raised["data"]["reason"]

    reply(desk, opened.notice, "#priority P4\n#note can wait after all")
    explicit = wait_until(lambda: (t := desk.ticket(ref))["priority"] == "P4" and t)
    assert explicit["impact"] == "high"  # the levels stay; the explicit priority wins
    assert near(due_after(explicit), 16)

    code, out = desk.cli("ticket", "set", ref, "urgency=low", "--as", "alice")
    assert code == 0, out
    assert "urgency: medium -> low, priority: P4 -> P3" in out  # matrix: high x low = P3
    after = desk.ticket(ref)
    assert (after["priority"], after["urgency"]) == ("P3", "low")
    assert near(due_after(after), 8)
    assert [e["data"]["to"] for e in events(desk, ref, "priority")] == ["P2", "P4", "P3"]


def test_ticket_set_impact_and_urgency_together_and_the_desks_matrix(sla_desk: Desk) -> None:
    desk = sla_desk
    ref = open_ticket(desk, subject="Printer jammed").ref
    assert desk.ticket(ref)["impact"] is None  # no rule said: unknown, counted as medium

    code, out = desk.cli("ticket", "set", ref, "impact=low", "urgency=high")
    assert code == 0, out
    ticket = desk.ticket(ref)
    # The configured matrix says low x high = P2 (the ITIL default would be P3).
    assert (ticket["impact"], ticket["urgency"], ticket["priority"]) == ("low", "high", "P2")
    assert near(due_after(ticket), 2)

    code, out = desk.cli("ticket", "set", ref, "impact=high", "priority=P4")
    assert code == 1 and "either #priority or #impact/#urgency" in out
    assert desk.ticket(ref)["priority"] == "P2"  # nothing changed

    code, out = desk.cli("ticket", "set", ref, "urgency=urgent")
    assert code == 1 and "urgency must be one of high, medium, low" in out
