"""Changes and the CIs they touch, in the running desk over real SMTP, on SQLite and
PostgreSQL: a change request naming hosts (its CI field, its text, a later reply, `#ci`)
is listed with its CIs and services; an open P1 alert incident on one of its hosts flags it
in `maildesk changes` and in the scheduling agent's receipt; a freeze of a service refuses
the changes that touch it, by mail (`#ci` in the same reply) and by `ticket set`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.agents import ALICE, CAROL, Mailbox, events, open_ticket, plain_reply, reply
from tests.conftest import Desk, Sink, mail, running_desk, wait_until
from tests.e2e.test_alerts_e2e import fixture_mail

CONFIG = """
[[services]]
name = "email"
queue = "infra"
depends_on = ["network"]

[[services]]
name = "network"
queue = "infra"

[cmdb]
path = "inventory.csv"

[[catalog]]
name = "server-change"
title = "Server change"
type = "change"
queue = "it"
fields = [ { name = "host", label = "Host", kind = "ci", required = true } ]

[[monitors]]
name = "nagios"
when = { field = "from", equals = "nagios@mon.example.com" }
format = "nagios"
queue = "infra"
priority = { CRITICAL = "P1" }

[[change_freeze]]
name = "mail freeze"
start = "2026-12-20T00:00"
end = "2027-01-04T00:00"
services = ["email"]
"""
INVENTORY = """\
name,kind,services,owner,aliases
mail01,host,email,bob@example.com,10.0.0.21
web1,host,email,bob@example.com,
core-sw1,switch,network,bob@example.com,AT-00101
prn1,printer,,,
"""
IN_FREEZE = "#schedule 2026-12-21 22:00 23:30"


@pytest.fixture
def desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    config = write_config(db_url, sink.port, extra=CONFIG)
    (config.parent / "inventory.csv").write_text(INVENTORY, encoding="utf-8")
    with running_desk(config, sink) as d:
        yield d


def body(message: EmailMessage) -> str:
    return str(message.get_body().get_content())  # type: ignore[union-attr]


def new_ticket(desk: Desk, subject: str, text: str) -> dict[str, Any]:
    count = len(desk.tickets())
    desk.send(mail(subject, text, sender=CAROL))
    return next(t for t in desk.wait_tickets(count + 1) if t["subject"] == subject)


def test_a_change_on_hosts_is_listed_and_flagged_by_an_open_p1(desk: Desk) -> None:
    alice = Mailbox(desk, ALICE)
    change = new_ticket(desk, "Request: Server change", "Host: mail01\nweb1 restarts too.")
    ref = change["ref"]
    assert (change["type"], change["cis"], change["services"]) == (
        "change",
        ["mail01", "web1"],
        ["email"],
    )
    linked = {e["data"]["ci"]: e["data"]["source"] for e in events(desk, ref, "ci_linked")}
    assert linked == {"mail01": "request", "web1": "recognised"}
    [notice] = alice.next()

    alert = fixture_mail("nagios_service_problem.eml")  # web1/HTTP is CRITICAL
    desk.send(alert)
    incident = next(t for t in desk.wait_tickets(2) if t["type"] == "incident")
    assert (incident["priority"], incident["cis"]) == ("P1", ["web1"])

    # Scheduled anyway (a warning, not a refusal): the receipt and the event say so.
    reply(desk, notice, "#schedule 2026-12-05 22:00 23:30")
    [receipt] = alice.next()
    text = body(receipt)
    assert f"WARNING: open P1 incident on its CIs: {incident['ref']} (web1)" in text, text
    [scheduled] = events(desk, ref, "change_scheduled")
    assert scheduled["data"]["p1_incidents"] == [incident["ref"]]

    [row] = desk.json("changes")
    assert (row["ref"], row["cis"], row["services"]) == (ref, ["mail01", "web1"], ["email"])
    assert row["p1_incidents"] == [incident["ref"]]
    code, out = desk.cli("changes")
    assert code == 0 and f"P1 {incident['ref']}" in out and "mail01 web1" in out, out

    # The freeze of the email service refuses a window in it, from the shell too.
    code, out = desk.cli("ticket", "set", ref, "window=2026-12-21T22:00/2026-12-21T23:00")
    assert code != 0 and 'change freeze "mail freeze"' in out, out
    assert 'of the service "email"' in out, out

    # Once the incident is resolved the change is no longer flagged.
    assert desk.cli("ticket", "set", incident["ref"], "status=resolved")[0] == 0
    [row] = desk.json("changes")
    assert row["p1_incidents"] == []
    code, out = desk.cli("changes")
    assert code == 0 and "P1 " not in out, out


def test_ci_lines_count_with_the_schedule_of_the_same_reply(desk: Desk) -> None:
    # A request completed by a later reply links the CI its field names.
    carol = Mailbox(desk, CAROL)
    request = new_ticket(desk, "Request: Server change", "Please patch the switch.")
    [asked] = carol.next()
    assert "More details needed" in str(asked["Subject"])
    plain_reply(desk, asked, "Host: AT-00101", sender=CAROL)
    wait_until(lambda: desk.ticket(request["ref"])["cis"] == ["core-sw1"] or None)
    shown = desk.ticket(request["ref"])
    assert shown["services"] == ["network"]
    assert [e["source"] for e in (x["data"] for x in shown["events"]) if "source" in e] == [
        "request"
    ]
    # It touches the network, which email depends on: refused in the email freeze.
    window = "window=2026-12-22T10:00/2026-12-22T11:00"
    code, out = desk.cli("ticket", "set", request["ref"], window)
    assert code != 0 and 'touches "network", which "email" depends on' in out, out

    opened = open_ticket(desk, "Patch the printer and the switch", "No host named.")
    assert desk.cli("ticket", "set", opened.ref, "type=change")[0] == 0
    alice = Mailbox(desk, ALICE)
    reply(desk, opened.notice, f"#ci core-sw1\n{IN_FREEZE}")
    [error] = alice.next()
    text = body(error)
    assert "Commands not applied" in str(error["Subject"]), error["Subject"]
    assert 'change freeze "mail freeze"' in text and 'touches "network"' in text, text
    assert desk.ticket(opened.ref)["cis"] == [] and desk.ticket(opened.ref)["change_window"] is None

    reply(desk, opened.notice, f"{IN_FREEZE}\n#ci prn1")
    wait_until(lambda: desk.ticket(opened.ref)["change_window"] or None)
    shown = desk.ticket(opened.ref)
    assert (shown["cis"], shown["services"]) == (["prn1"], [])
    assert shown["change_window"]["start"] == "2026-12-21T22:00:00Z"
    [row] = [r for r in desk.json("changes") if r["ref"] == opened.ref]
    assert (row["cis"], row["services"], row["p1_incidents"]) == (["prn1"], [], [])
