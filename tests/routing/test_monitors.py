"""maildesk.routing.monitors: the tools' default notification mail read into alerts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from maildesk.parse.parser import parse_message
from maildesk.routing.conditions import RouteContext, compile_condition
from maildesk.routing.monitors import Alert, Monitor, parse_alerts, recognise

DATA = Path(__file__).parent.parent / "data" / "monitors"


def monitor(fmt: str, pattern: str | None = None) -> Monitor:
    problems: list[tuple[str, str]] = []
    when = compile_condition({"field": "from", "glob": "*@mon.example.com"}, "t", problems)
    assert when is not None and not problems
    return Monitor(
        name=fmt, when=when, format=fmt, pattern=re.compile(pattern) if pattern else None
    )


def alerts_of(fmt: str, name: str) -> tuple[Alert, ...]:
    msg = parse_message((DATA / name).read_bytes())
    return parse_alerts(monitor(fmt), msg.subject, msg.body_text)


WEB1 = "web1/HTTP"
CASES = [
    ("nagios", "nagios_service_problem.eml", WEB1, "problem", "CRITICAL"),
    ("nagios", "nagios_service_warning.eml", WEB1, "problem", "WARNING"),
    ("nagios", "nagios_service_recovery.eml", WEB1, "recovery", "OK"),
    ("nagios", "nagios_service_ack.eml", WEB1, "acknowledgement", "CRITICAL"),
    ("nagios", "nagios_host_problem.eml", "db1", "problem", "DOWN"),
    ("nagios", "nagios_host_recovery.eml", "db1", "recovery", "UP"),
    ("nagios", "icinga2_service_problem.eml", "web1/http", "problem", "CRITICAL"),
    ("nagios", "icinga2_service_recovery.eml", "web1/http", "recovery", "OK"),
    ("nagios", "icinga2_host_problem.eml", "db1", "problem", "DOWN"),
    ("zabbix", "zabbix_problem.eml", "zabbix:4711", "problem", "Warning"),
    ("zabbix", "zabbix_problem_high.eml", "zabbix:4711", "problem", "High"),
    ("zabbix", "zabbix_resolved.eml", "zabbix:4711", "recovery", "Warning"),
    ("zabbix", "zabbix4_resolved.eml", "zabbix:4711", "recovery", "Warning"),
]


@pytest.mark.parametrize(("fmt", "name", "key", "state", "severity"), CASES)
def test_default_notifications_read_as_one_alert(
    fmt: str, name: str, key: str, state: str, severity: str
) -> None:
    (alert,) = alerts_of(fmt, name)
    assert (alert.key, alert.state, alert.severity) == (key, state, severity)
    assert alert.summary


def test_a_problem_and_its_recovery_share_the_key() -> None:
    for fmt, problem, recovery in [
        ("nagios", "nagios_service_problem.eml", "nagios_service_recovery.eml"),
        ("nagios", "icinga2_service_problem.eml", "icinga2_service_recovery.eml"),
        ("zabbix", "zabbix_problem.eml", "zabbix_resolved.eml"),
        ("alertmanager", "alertmanager_firing_group.eml", "alertmanager_resolved_group.eml"),
    ]:
        opened = {a.key for a in alerts_of(fmt, problem)}
        closed = {a.key for a in alerts_of(fmt, recovery)}
        assert opened == closed, (problem, recovery)


INSTANCE = "InstanceDown{{instance={}:9100,job=node}}"


def test_alertmanager_group_mail_carries_one_alert_per_label_set() -> None:
    alerts = alerts_of("alertmanager", "alertmanager_firing_group.eml")
    assert [(a.key, a.state, a.severity) for a in alerts] == [
        (INSTANCE.format("web1"), "problem", "critical"),
        (INSTANCE.format("web2"), "problem", "critical"),
    ]
    assert alerts[0].summary == "InstanceDown on web1:9100"


def test_alertmanager_single_and_mixed_mail() -> None:
    (one,) = alerts_of("alertmanager", "alertmanager_firing_one.eml")
    assert (one.key, one.state) == (INSTANCE.format("web1"), "problem")
    mixed = alerts_of("alertmanager", "alertmanager_mixed.eml")
    assert [(a.key, a.state) for a in mixed] == [
        (INSTANCE.format("web2"), "problem"),
        (INSTANCE.format("web1"), "recovery"),
    ]
    resolved = alerts_of("alertmanager", "alertmanager_resolved_group.eml")
    assert {a.state for a in resolved} == {"recovery"}


def test_alertmanager_plain_text_alert_list() -> None:
    body = (
        "Labels:\n - alertname = DiskFull\n - device = sda1\n - instance = db1\n"
        "Annotations:\n - summary = disk full\nSource: http://prom/graph\n"
    )
    (alert,) = parse_alerts(monitor("alertmanager"), "[FIRING:1] DiskFull", body)
    assert alert.key == "DiskFull{device=sda1,instance=db1}"


def test_zabbix_update_without_problem_id_is_keyed_by_name() -> None:
    (alert,) = alerts_of("zabbix", "zabbix_updated_ack.eml")
    assert alert.state == "acknowledgement"
    assert alert.key == "zabbix:name:High CPU utilization (over 90% for 5m)"
    with_id = parse_alerts(
        monitor("zabbix"),
        "Updated problem in 5m: disk full",
        "Admin acknowledged problem at 2026.12.02 04:05:00.\nOriginal problem ID: 7\n",
    )
    assert [(a.key, a.state) for a in with_id] == [("zabbix:7", "acknowledgement")]


@pytest.mark.parametrize(
    ("fmt", "subject"),
    [
        ("nagios", "Re: your invoice"),
        ("zabbix", "Problem: disk full"),  # no problem ID in the body
        ("alertmanager", "FIRING InstanceDown"),
    ],
)
def test_other_mail_from_a_monitor_is_no_alert(fmt: str, subject: str) -> None:
    assert parse_alerts(monitor(fmt), subject, "hello") == ()


PATTERN = r"(?m)^ALERT (?P<state>\w+) (?P<key>\S+) sev=(?P<severity>\w+)"


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ("ALERT FIRING backup-job sev=major", "problem"),
        ("ALERT OK backup-job sev=minor", "recovery"),
    ],
)
def test_regex_format_named_groups(body: str, state: str) -> None:
    (alert,) = parse_alerts(monitor("regex", PATTERN), "backup report", body)
    assert (alert.key, alert.state) == ("backup-job", state)
    assert alert.severity in ("major", "minor")


def test_recognise_uses_the_rule_condition_language() -> None:
    msg = parse_message((DATA / "nagios_service_problem.eml").read_bytes())
    found = recognise(msg, [monitor("nagios")], RouteContext())
    assert found is not None and found.monitor.format == "nagios"
    assert [a.key for a in found.alerts] == [WEB1]
    problems: list[tuple[str, str]] = []
    other = compile_condition({"field": "from", "equals": "zabbix@x.example"}, "t", problems)
    assert other is not None
    elsewhere = Monitor(name="z", when=other, format="zabbix")
    assert recognise(msg, [elsewhere], RouteContext()) is None
