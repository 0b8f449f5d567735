"""Alertmanager's webhook over real HTTP: its alerts open, count and resolve incidents by
the same correlation as its mail; only an admin token may post, and bad input is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sink, running_desk, wait_until
from tests.http.conftest import ADMIN_TOKEN, Web, http_config, web_for

MONITOR = """
[[monitors]]
name = "prometheus"
when = { field = "from", equals = "alertmanager@mon.example.com" }
format = "alertmanager"
queue = "infra"
priority = { critical = "P1", warning = "P3" }
"""


@pytest.fixture
def alert_desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Web]:
    config = write_config(db_url, sink.port, extra=http_config() + MONITOR)
    with running_desk(config, sink) as desk:
        yield web_for(desk)


def alert(status: str, instance: str, severity: str = "critical") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "InstanceDown",
            "instance": instance,
            "job": "node",
            "severity": severity,
        },
        "annotations": {"summary": f"Instance {instance} down"},
        "startsAt": "2026-12-02T04:00:00Z",
        "fingerprint": instance,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "status": "firing" if firing else "resolved",
        "receiver": "maildesk",
        "groupKey": '{}:{alertname="InstanceDown"}',
        "groupLabels": {"alertname": "InstanceDown"},
        "alerts": list(alerts),
    }


def incidents(web: Web) -> list[dict[str, Any]]:
    return [t for t in web.desk.tickets() if t["queue"] == "infra"]


def post(web: Web, body: Any, token: str | None = ADMIN_TOKEN, **params: str) -> Any:
    with web.client(token) as http:
        return http.post("/api/alerts/alertmanager", json=body, params=params)


def test_webhook_alerts_open_count_and_resolve_incidents(alert_desk: Web) -> None:
    answer = post(alert_desk, payload(alert("firing", "web1:9100"), alert("firing", "web2:9100")))
    assert answer.status_code == 202, answer.text
    assert answer.json()["monitor"] == "prometheus" and answer.json()["alerts"] == 2
    opened = wait_until(lambda: len(incidents(alert_desk)) == 2 and incidents(alert_desk))
    assert {t["priority"] for t in opened} == {"P1"}

    assert post(alert_desk, payload(alert("firing", "web1:9100"))).status_code == 202
    assert post(alert_desk, payload(alert("resolved", "web1:9100"))).status_code == 202

    def web1() -> dict[str, Any] | None:
        for t in incidents(alert_desk):
            detail = alert_desk.desk.ticket(t["ref"])
            if detail["alert"] and "web1" in detail["alert"]["key"]:
                return detail
        return None

    resolved = wait_until(lambda: (d := web1()) is not None and d["status"] == "resolved" and d)
    assert resolved["alert"]["count"] == 2 and resolved["alert"]["monitor"] == "prometheus"
    assert len(incidents(alert_desk)) == 2, "a repeat and a recovery open nothing new"
    others = [t for t in incidents(alert_desk) if t["ref"] != resolved["ref"]]
    assert [t["status"] for t in others] != ["resolved"]


def test_only_an_admin_token_may_post_and_bad_input_is_refused(alert_desk: Web) -> None:
    good = payload(alert("firing", "web1:9100"))
    assert post(alert_desk, good, token=None).status_code == 401
    assert post(alert_desk, good, token="read-token-0123456789abcdef").status_code == 403
    unknown = post(alert_desk, good, monitor="nagios")
    assert unknown.status_code == 404 and "nagios" in unknown.json()["detail"]
    for bad in ({"alerts": []}, {"alerts": [{"status": "burning", "labels": {}}]}, [1, 2]):
        answer = post(alert_desk, bad)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert alert_desk.desk.tickets() == []  # nothing refused was stored or ticketed


def test_mail_from_elsewhere_naming_a_monitor_is_not_trusted(alert_desk: Web) -> None:
    """The header a webhook call writes means nothing on mail from outside."""
    from tests.conftest import mail

    forged = mail(
        "[FIRING:1] InstanceDown",
        "[1] Firing\nLabels\n- alertname = InstanceDown\n- instance = web9:9100\n",
        sender="mallory@example.net",
        headers={"X-Maildesk-Webhook-Monitor": "prometheus"},
    )
    alert_desk.desk.send(forged)
    [ticket] = alert_desk.desk.wait_tickets(1)
    assert alert_desk.desk.ticket(ticket["ref"])["alert"] is None
