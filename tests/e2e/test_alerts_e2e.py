"""Monitoring alerts over real SMTP into the running desk: one incident per alert key,
repeats counted, recoveries resolving, flapping held. SQLite and PostgreSQL."""

from __future__ import annotations

import email
import threading
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Desk, Sink, running_desk, wait_until

DATA = Path(__file__).parent.parent / "data" / "monitors"

MONITORS = """
[[monitors]]
name = "nagios"
when = { field = "from", equals = "nagios@mon.example.com" }
format = "nagios"
queue = "infra"
priority = { CRITICAL = "P1", DOWN = "P1", WARNING = "P3" }
flap = { changes = 3, within = "1h" }

[[monitors]]
name = "zabbix"
when = { field = "from", equals = "zabbix@mon.example.com" }
format = "zabbix"
queue = "infra"
priority = { High = "P2", Warning = "P3" }

[[monitors]]
name = "prometheus"
when = { field = "from", equals = "alertmanager@mon.example.com" }
format = "alertmanager"
queue = "infra"
priority = { critical = "P1" }
"""


@pytest.fixture
def monitored(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    with running_desk(write_config(db_url, sink.port, extra=MONITORS), sink) as d:
        yield d


def fixture_mail(name: str) -> EmailMessage:
    """A stored notification again, with a fresh Message-ID (as each real one has)."""
    msg = email.message_from_bytes((DATA / name).read_bytes(), _class=EmailMessage)
    del msg["Message-Id"]
    msg["Message-Id"] = f"<{uuid.uuid4().hex}@mon.example.com>"
    return msg  # type: ignore[return-value]


def send_all(desk: Desk, *names: str) -> None:
    before = len(desk.raw_statuses())
    for name in names:
        desk.send(fixture_mail(name))
    desk.wait_processed(before + len(names), timeout=30)


def alert_tickets(desk: Desk) -> list[dict[str, Any]]:
    return [desk.ticket(t["ref"]) for t in reversed(desk.tickets())]


def test_nagios_problem_repeats_and_recovery_make_one_resolved_incident(
    monitored: Desk,
) -> None:
    send_all(monitored, *["nagios_service_problem.eml"] * 11)
    (ticket,) = alert_tickets(monitored)
    assert (ticket["type"], ticket["queue"], ticket["priority"]) == ("incident", "infra", "P1")
    assert ticket["alert"]["count"] == 11 and ticket["alert"]["key"] == "web1/HTTP"
    assert ticket["alert"]["monitor"] == "nagios" and ticket["alert"]["state"] == "problem"
    # One notice to the queue (bob), none to the monitor, none for the repeats.
    notices = wait_until(lambda: monitored.sink.to("bob@example.com") or None)
    assert len(notices) == 1
    assert monitored.sink.to("nagios@mon.example.com") == []
    send_all(monitored, "nagios_service_recovery.eml")
    (ticket,) = alert_tickets(monitored)
    assert ticket["status"] == "resolved"
    assert ticket["alert"]["state"] == "recovery" and ticket["alert"]["count"] == 11
    assert "recovered" in [e["kind"] for e in ticket["events"]]
    recovered = wait_until(lambda: len(monitored.sink.to("bob@example.com")) >= 2 or None)
    assert recovered
    assert monitored.sink.to("nagios@mon.example.com") == []


def test_recovery_without_incident_is_recorded_and_opens_nothing(monitored: Desk) -> None:
    send_all(monitored, "nagios_host_recovery.eml")
    assert monitored.tickets() == []
    assert monitored.raw_statuses() == ["alert"]


def test_acknowledgements_are_recorded_and_open_nothing(monitored: Desk) -> None:
    send_all(monitored, "nagios_service_ack.eml", "zabbix_updated_ack.eml")
    assert monitored.tickets() == []
    assert monitored.raw_statuses() == ["alert", "alert"]
    send_all(monitored, "nagios_service_problem.eml", "nagios_service_ack.eml")
    (ticket,) = alert_tickets(monitored)
    assert "acknowledged" in [e["kind"] for e in ticket["events"]]
    assert ticket["status"] == "new" and ticket["alert"]["count"] == 1
    assert ticket["alert"]["state"] == "acknowledgement"


def test_zabbix_problem_severity_change_and_recovery(monitored: Desk) -> None:
    send_all(monitored, "zabbix_problem.eml", "zabbix_problem.eml")
    (ticket,) = alert_tickets(monitored)
    assert (ticket["priority"], ticket["alert"]["count"]) == ("P3", 2)
    send_all(monitored, "zabbix_problem_high.eml")
    (ticket,) = alert_tickets(monitored)
    assert (ticket["priority"], ticket["alert"]["severity"]) == ("P2", "High")
    send_all(monitored, "zabbix_resolved.eml")
    (ticket,) = alert_tickets(monitored)
    assert ticket["status"] == "resolved" and ticket["alert"]["count"] == 3


def test_alertmanager_group_mail_opens_one_incident_per_key(monitored: Desk) -> None:
    send_all(monitored, "alertmanager_firing_group.eml", "alertmanager_firing_one.eml")
    tickets = alert_tickets(monitored)
    assert len(tickets) == 2
    counts = {t["alert"]["key"]: t["alert"]["count"] for t in tickets}
    assert counts == {
        "InstanceDown{instance=web1:9100,job=node}": 2,
        "InstanceDown{instance=web2:9100,job=node}": 1,
    }
    send_all(monitored, "alertmanager_resolved_group.eml")
    assert {t["status"] for t in alert_tickets(monitored)} == {"resolved"}


def test_flapping_tags_the_incident_and_holds_notices(monitored: Desk) -> None:
    flips = ["nagios_service_problem.eml", "nagios_service_recovery.eml"] * 3
    send_all(monitored, *flips)
    (ticket,) = alert_tickets(monitored)
    assert "flapping" in ticket["tags"]
    kinds = [e["kind"] for e in ticket["events"]]
    assert kinds.count("flapping") == 1
    # The first notice (new ticket) and the first recovery; the rest held while flapping.
    wait_until(lambda: len(monitored.sink.to("bob@example.com")) >= 2 or None)
    assert len(monitored.sink.to("bob@example.com")) == 2


# Several daemons share one database on PostgreSQL.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_daemons_on_one_postgresql_open_one_incident_per_key(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, sink.port, extra=MONITORS)
    with running_desk(config, sink) as one, running_desk(config, sink) as two:
        # Two monitors (or one mailing each desk on its own) send the same alert to both
        # daemons at once: every mail its own, all of one key.
        def stream(desk: Desk) -> None:
            for _ in range(10):
                desk.send(fixture_mail("nagios_service_problem.eml"))

        threads = [threading.Thread(target=stream, args=(d,)) for d in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert set(one.wait_processed(20, timeout=30)) == {"processed"}
        (ticket,) = alert_tickets(one)
        assert ticket["alert"]["count"] == 20
        assert len(sink.to("bob@example.com")) == 1


def test_alertmanager_mail_with_one_firing_and_one_resolved(monitored: Desk) -> None:
    send_all(monitored, "alertmanager_firing_one.eml", "alertmanager_mixed.eml")
    states = {t["alert"]["key"]: t["status"] for t in alert_tickets(monitored)}
    assert states == {
        "InstanceDown{instance=web1:9100,job=node}": "resolved",
        "InstanceDown{instance=web2:9100,job=node}": "new",
    }
    # The mixed mail is on both incidents, one of them under an id of its own.
    inbound = [m for t in alert_tickets(monitored) for m in t["messages"] if m["direction"] == "in"]
    ids = [m["message_id"] for m in inbound]
    assert len(ids) == len(set(ids)) == 3


def test_an_alert_of_a_merged_incident_goes_where_it_was_merged(monitored: Desk) -> None:
    send_all(monitored, "nagios_service_problem.eml", "nagios_host_problem.eml")
    assert monitored.cli("ticket", "set", "MD-1", "merge=MD-2")[0] == 0
    send_all(monitored, "nagios_service_problem.eml", "nagios_service_recovery.eml")
    target = monitored.ticket("MD-2")
    assert target["status"] == "resolved"
    assert [e["data"]["key"] for e in target["events"] if e["kind"] == "recovered"] == ["web1/HTTP"]
    assert monitored.ticket("MD-1")["status"] == "merged"
