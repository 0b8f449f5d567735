"""Services and configuration items over real SMTP into the running desk, on SQLite and
PostgreSQL: a mail naming a host is linked to its CI and goes to the service's owner queue
under its SLA policy; agents link and unlink CIs with `#ci`; a monitor's alert is linked to
its host; the inventory is reloaded when its file changes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents import Mailbox, reply
from tests.conftest import Desk, Sink, mail, running_desk, wait_until
from tests.e2e.test_alerts_e2e import fixture_mail

BOB = "bob@example.com"
SERVICES = """
[[sla_policies]]
name = "24x7"
calendar = "24x7"
first_response = { P1 = "1h", P2 = "2h", P3 = "8h", P4 = "16h" }
resolution = { P1 = "4h", P2 = "16h", P3 = "40h", P4 = "80h" }

[[services]]
name = "email"
queue = "infra"
criticality = "high"
sla_policy = "24x7"
depends_on = ["network"]
subscribers = ["all-staff@example.com"]

[[services]]
name = "network"
queue = "infra"

[cmdb]
path = "inventory.csv"
domains = ["example.com"]

[[catalog]]
name = "firewall-rule"
title = "Firewall rule"
queue = "it"
fields = [ { name = "device", label = "Device", kind = "ci", required = true },
           { name = "port", label = "Port", required = true } ]

[[rules]]
name = "payroll mail"
match = { subject = "(?i)payroll" }
set = { service = "network" }

[[monitors]]
name = "nagios"
when = { field = "from", equals = "nagios@mon.example.com" }
format = "nagios"
queue = "infra"
priority = { CRITICAL = "P1" }
"""
INVENTORY = """\
name,kind,services,owner,aliases
mail01,host,email,bob@example.com,10.0.0.21
core-sw1,switch,network,bob@example.com,AT-00101
web1,host,email,bob@example.com,
"""


@pytest.fixture
def served(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    config = write_config(db_url, sink.port, extra=SERVICES)
    (config.parent / "inventory.csv").write_text(INVENTORY, encoding="utf-8")
    with running_desk(config, sink) as d:
        yield d


def events(ticket: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in ticket["events"] if e["kind"] == kind]


def test_a_mail_naming_a_host_is_linked_and_agents_relink_it(served: Desk) -> None:
    bob = Mailbox(served, BOB)
    served.send(mail("Cannot send", "Outlook says MAIL01.example.com refused the connection."))
    [ticket] = served.wait_tickets(1)
    [notice] = bob.next()  # the email service's owner queue is infra: bob's
    assert (ticket["queue"], ticket["cis"], ticket["services"]) == ("infra", ["mail01"], ["email"])
    assert ticket["sla_policy"] == "24x7" and ticket["service"] is None
    assert ticket["priority"] == "P3"  # no [priority_matrix] impact_from_service: the default
    ref = ticket["ref"]
    shown = served.ticket(ref)
    assert events(shown, "ci_linked") == [
        {"ci": "mail01", "source": "recognised", "services": ["email"]}
    ]
    routed = events(shown, "routed")[0]
    assert (routed["cis"], routed["services"]) == (["mail01"], ["email"])

    reply(served, notice, "#ci -mail01\n#ci at-00101\nSwitch, not the mail server.", sender=BOB)
    wait_until(lambda: served.ticket(ref)["cis"] == ["core-sw1"] or None)
    shown = served.ticket(ref)
    assert shown["services"] == ["network"]
    assert events(shown, "ci_unlinked") == [{"ci": "mail01"}]
    assert events(shown, "ci_linked")[-1] == {
        "ci": "core-sw1",
        "source": "agent",
        "services": ["network"],
    }
    assert [e["actor"] for e in shown["events"] if e["kind"] == "ci_unlinked"] == [BOB]
    code, text = served.cli("ticket", "show", ref)
    assert code == 0 and "cis core-sw1  services network" in text, text

    reply(served, notice, "#ci mial01\n#ci -mail02", sender=BOB)
    error = next(m for m in bob.next(2) if "Commands not applied" in str(m["Subject"]))
    body = error.get_content()
    assert "no CI 'mial01' in the inventory; close: mail01" in body, body
    assert "not linked to CI 'mail02' (linked: core-sw1)" in body, body
    assert served.ticket(ref)["cis"] == ["core-sw1"]


def test_an_alert_is_linked_to_its_host_and_the_inventory_reloads(served: Desk) -> None:
    alert = fixture_mail("nagios_service_problem.eml")  # web1/HTTP is CRITICAL
    served.send(alert)
    [ticket] = served.wait_tickets(1)
    assert (ticket["cis"], ticket["services"], ticket["priority"]) == (["web1"], ["email"], "P1")
    [linked] = events(served.ticket(ticket["ref"]), "ci_linked")
    assert linked["source"] == "alert"

    inventory = served.config_path.parent / "inventory.csv"
    inventory.write_text(INVENTORY + "mail03,host,email,,\n", encoding="utf-8")
    wait_until(lambda: served.app.config.inventory.find("mail03") or None, timeout=10)
    served.send(mail("Slow", "mail03 takes a minute per message; 10.0.0.21 too"))
    tickets = served.wait_tickets(2)
    newest = tickets[0]
    assert newest["cis"] == ["mail01", "mail03"] and newest["queue"] == "infra"


def test_a_request_links_its_ci_field_and_a_rule_sets_the_service(served: Desk) -> None:
    served.send(mail("Request: Firewall rule", "Device: AT-00101, fw9\nPort: 443 for mail01"))
    served.send(mail("Payroll export fails", "No host named."))
    tickets = {t["subject"]: t for t in served.wait_tickets(2)}
    request = served.ticket(tickets["Request: Firewall rule"]["ref"])
    assert (request["queue"], request["cis"]) == ("it", ["core-sw1", "mail01"])
    assert request["services"] == ["email", "network"]
    sources = {e["ci"]: e["source"] for e in events(request, "ci_linked")}
    assert sources == {"core-sw1": "request", "mail01": "recognised"}
    payroll = tickets["Payroll export fails"]
    assert (payroll["service"], payroll["services"], payroll["cis"]) == ("network", ["network"], [])
    assert payroll["queue"] == "infra"  # the network service's owner queue
