"""The impact of open incidents on services over real SMTP into the running desk, on SQLite
and PostgreSQL: a monitor's alert for a host marks its service degraded (a P1 an outage) in
`maildesk services --json`, and the services depending on it too; the recovery makes them
operational again; a requester writing about a degraded service is told of the known issue
in the acknowledgement; a new incident's priority follows its service's criticality."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from maildesk.store import repo
from maildesk.store.db import transaction
from maildesk.store.models import Ticket
from tests.conftest import Desk, Sink, mail, run_cli, running_desk, wait_until
from tests.e2e.test_alerts_e2e import fixture_mail
from tests.http.conftest import READ_TOKEN, http_config, web_for

CAROL = "carol@example.org"
# As the example config: email depends on network; the inventory's hosts run one each.
SERVICES = """
[priority_matrix]
impact_from_service = true

[[services]]
name = "email"
description = "Company mail"
queue = "infra"
criticality = "medium"
depends_on = ["network"]
subscribers = ["all-staff@example.com"]

[[services]]
name = "network"
description = "Office network"
queue = "infra"
criticality = "high"

[[services]]
name = "wiki"
queue = "it"
criticality = "low"

[cmdb]
path = "inventory.csv"
domains = ["example.com"]

[[monitors]]
name = "nagios"
when = { field = "from", equals = "nagios@mon.example.com" }
format = "nagios"
queue = "infra"
priority = { CRITICAL = "P1", DOWN = "P1", WARNING = "P3" }

[[monitors]]
name = "zabbix"
when = { field = "from", equals = "zabbix@mon.example.com" }
format = "zabbix"
queue = "infra"                      # no priority of its own: the service's criticality
"""
INVENTORY = """\
name,kind,services,owner,aliases
mail01,host,email,bob@example.com,mail01.example.com 10.0.0.21
web1,host,email,bob@example.com,
db1,host,network,bob@example.com,
wiki01,host,wiki,,
app1,host,wiki,,
"""


@pytest.fixture
def served(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    config = write_config(db_url, sink.port, extra=SERVICES + http_config())
    (config.parent / "inventory.csv").write_text(INVENTORY, encoding="utf-8")
    with running_desk(config, sink) as d:
        yield d


def states(desk: Desk) -> dict[str, tuple[str, list[str]]]:
    return {s["name"]: (s["state"], s["incidents"]) for s in desk.json("services")}


def alert(desk: Desk, name: str) -> None:
    before = len(desk.raw_statuses())
    desk.send(fixture_mail(name))
    desk.wait_processed(before + 1, timeout=30)


def acknowledgement(desk: Desk, subject: str) -> str:
    def found() -> str | None:
        for m in desk.sink.to(CAROL):
            if subject in str(m["Subject"]):
                body = m.get_body(("plain",))
                assert body is not None
                return str(body.get_content())
        return None

    return wait_until(found, timeout=15)


def test_an_alert_degrades_its_service_and_the_dependent_ones_until_it_recovers(
    served: Desk,
) -> None:
    alert(served, "nagios_service_warning.eml")  # web1/HTTP WARNING: P3 on email
    [incident] = served.tickets()
    ref = incident["ref"]
    assert (incident["priority"], incident["services"]) == ("P3", ["email"])
    assert states(served) == {
        "email": ("degraded", [ref]),
        "network": ("operational", []),
        "wiki": ("operational", []),
    }

    alert(served, "nagios_host_problem.eml")  # db1 DOWN: a P1 on network, email depends on it
    outage = next(t for t in served.tickets() if t["ref"] != ref)
    assert (outage["priority"], outage["services"]) == ("P1", ["network"])
    assert states(served) == {
        "email": ("outage", [outage["ref"], ref]),  # the worst first
        "network": ("outage", [outage["ref"]]),
        "wiki": ("operational", []),
    }
    [email] = [s for s in served.json("services") if s["name"] == "email"]
    assert email == {
        "name": "email",
        "state": "outage",
        "incidents": [outage["ref"], ref],
        "changes": [],
        "description": "Company mail",
        "criticality": "medium",
        "queue": "infra",
        "depends_on": ["network"],
        "subscribers": ["all-staff@example.com"],
    }
    code, text = served.cli("services")
    assert code == 0 and "outage" in text and outage["ref"] in text, text
    web = web_for(served)
    with web.client(READ_TOKEN) as http, web.client(None) as anonymous:
        assert http.get("/api/services").json() == served.json("services")
        assert anonymous.get("/api/services").status_code == 401

    alert(served, "nagios_host_recovery.eml")
    assert states(served) == {
        "email": ("degraded", [ref]),
        "network": ("operational", []),
        "wiki": ("operational", []),
    }
    alert(served, "nagios_service_recovery.eml")
    assert {s: st for s, (st, _) in states(served).items()} == dict.fromkeys(
        ("email", "network", "wiki"), "operational"
    )


def _broadcast(desk: Desk, ref: str, text: str) -> None:
    """The event `#broadcast <text>` leaves on an incident."""
    number = int(ref.split("-")[1])
    with transaction(desk.app.sessions) as session:
        ticket = session.get_one(Ticket, number)
        repo.add_event(session, ticket, "broadcast", datetime.now().astimezone(), text=text)


def test_a_requester_writing_about_a_degraded_service_is_told_of_the_known_issue(
    served: Desk,
) -> None:
    alert(served, "nagios_service_warning.eml")
    [incident] = served.tickets()
    ref = incident["ref"]
    _broadcast(served, ref, "Mail is slow; we are moving mailboxes off web1.")
    _broadcast(served, ref, "Half of the mailboxes are moved; mail is faster already.")

    served.send(mail("Mail takes ages", "Outlook on mail01.example.com hangs for minutes."))
    body = acknowledgement(served, "Mail takes ages")
    assert "Known issue" in body, body
    assert "email: degraded, since " in body, body
    assert f"{ref}: {incident['subject']}" in body, body
    assert "Latest update: Half of the mailboxes are moved" in body, body
    assert "moving mailboxes off web1" not in body, body
    tickets = {t["subject"]: t for t in served.tickets()}
    about = tickets["Mail takes ages"]
    assert (about["services"], about["priority"]) == (["email"], "P3")  # medium x medium

    # About a service nothing degrades: no block; a high one is P2 (high x medium).
    served.send(mail("Wiki page", "wiki01 shows an old page"))
    served.send(mail("No network", "db1 cannot be reached from floor 2"))
    wiki = acknowledgement(served, "Wiki page")
    assert "Known issue" not in wiki, wiki
    network = acknowledgement(served, "No network")
    assert "Known issue" not in network, network  # its own incident is no known issue
    routed = served.ticket(served.wait_tickets(4)[0]["ref"])
    event = next(e["data"] for e in routed["events"] if e["kind"] == "routed")
    assert routed["subject"] == "No network" and routed["priority"] == "P2"
    assert (event["impact"], event["urgency"], event["priority"]) == ("high", "medium", "P2")
    wiki_ticket = next(t for t in served.tickets() if t["subject"] == "Wiki page")
    assert wiki_ticket["priority"] == "P4"  # low x medium


def test_no_services_configured(db_url: str, write_config: Callable[..., Path]) -> None:
    config = write_config(db_url)
    code, text = run_cli("services", "--config", str(config))
    assert code == 0 and "no services: [[services]] is not configured" in text, text
    code, text = run_cli("services", "--json", "--config", str(config))
    assert code == 0 and text.strip() == "[]", text


def test_an_alert_the_monitor_gives_no_priority_follows_its_service(served: Desk) -> None:
    alert(served, "zabbix_problem.eml")  # app1 (wiki, low): low x medium
    alert(served, "nagios_service_warning.eml")  # web1 (email): the monitor's P3
    by_subject = {t["subject"]: served.ticket(t["ref"]) for t in served.tickets()}
    zabbix = next(t for s, t in by_subject.items() if "CPU" in s)
    nagios = next(t for s, t in by_subject.items() if "WARNING" in s)
    routed = next(e["data"] for e in zabbix["events"] if e["kind"] == "routed")
    assert (zabbix["priority"], routed["impact"], routed["urgency"]) == ("P4", "low", "medium")
    routed = next(e["data"] for e in nagios["events"] if e["kind"] == "routed")
    assert (nagios["priority"], routed["impact"], routed["urgency"]) == ("P3", None, None)
    assert states(served)["wiki"] == ("degraded", [zabbix["ref"]])
