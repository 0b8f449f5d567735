"""maildesk.routing.cis: which CIs a text names (whole tokens, aliases, case rules, IPs,
FQDNs), and routing on them (rule conditions `ci` and `service`, action `service`, the
service's owner queue)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from maildesk.routing import monitors
from maildesk.routing.cis import Ci, Inventory, Service, affected_services
from maildesk.routing.conditions import RouteContext
from maildesk.routing.rules import compile_rules, route

INVENTORY = Inventory(
    (
        Ci(name="mail01", services=("email",), aliases=("mail01.example.com", "10.0.0.21")),
        Ci(name="mail02.example.com", services=("email",)),
        Ci(name="core-sw1", services=("network",), aliases=("AT-00101", "fe80::1")),
        Ci(name="Payroll", kind="application", services=("hr",)),
        Ci(name="db", services=("email", "hr")),
    ),
    domains=("example.com",),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # whole tokens only
        ("mail01 is down", ("mail01",)),
        ("mail010 is down", ()),
        ("xmail01 is down", ()),
        ("mail01-old and mail01_test", ()),
        ("see host mail01.", ("mail01",)),
        ("(mail01), [mail01]; 'mail01'", ("mail01",)),
        ("root@mail01: disk full", ("mail01",)),
        ("smtp on mail01:25 refuses", ("mail01",)),
        ("émail01 ümail01", ()),
        # hostnames in any case
        ("MAIL01 and Mail01", ("mail01",)),
        # FQDN aliases, and short names under [cmdb] domains (both ways)
        ("mail01.example.com bounces", ("mail01",)),
        ("MAIL01.EXAMPLE.COM.", ("mail01",)),
        ("mail01.example.org", ()),
        ("mail01.example.com.evil.org", ()),
        ("mail02 is slow", ("mail02.example.com",)),
        ("mail02.example.com is slow", ("mail02.example.com",)),
        # asset tags (written with capitals) only as given
        ("asset AT-00101 beeps", ("core-sw1",)),
        ("asset at-00101 beeps", ()),
        ("payroll is late", ()),
        ("Payroll is late", ("Payroll",)),
        # IP addresses whole, compared as addresses
        ("ping 10.0.0.21 fails", ("mail01",)),
        ("ping 10.0.0.210 fails", ()),
        ("ping 110.0.0.21 fails", ()),
        ("http://10.0.0.21:8080/status", ("mail01",)),
        ("fe80::0001 flaps", ("core-sw1",)),
        ("fe80::10 flaps", ()),
        # several, in the order first named, each once
        ("core-sw1 then mail01 then core-sw1", ("core-sw1", "mail01")),
        ("", ()),
    ],
)
def test_recognise(text: str, expected: tuple[str, ...]) -> None:
    assert INVENTORY.recognise(text) == expected


def test_recognise_reads_subject_and_body() -> None:
    assert INVENTORY.recognise("Slow mail", "since 9:00 on mail02") == ("mail02.example.com",)


def test_an_empty_inventory_names_nothing() -> None:
    assert Inventory().recognise("mail01") == ()


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("mail01", "mail01"),
        ("MAIL01", "mail01"),
        ("mail01.example.com", "mail01"),
        ("10.0.0.21", "mail01"),
        ("at-00101", "core-sw1"),  # an agent's #ci and a monitor's host: any case
        ("payroll", "Payroll"),
        ("mail02", "mail02.example.com"),
        ("mail03", None),
    ],
)
def test_find(word: str, expected: str | None) -> None:
    found = INVENTORY.find(word)
    assert (found.name if found else None) == expected


def test_close_names_and_services() -> None:
    assert INVENTORY.close_names("mial01")[0] == "mail01"
    assert INVENTORY.close_names("zzz") == []
    assert INVENTORY.services_of(["db", "mail01", "gone"]) == ("email", "hr")


def test_recognition_of_thousands_of_cis_is_a_token_lookup() -> None:
    big = Inventory(
        tuple(Ci(name=f"host{n:04d}", aliases=(f"10.1.{n // 250}.{n % 250}",)) for n in range(5000))
    )
    body = "Nothing about any host here. " * 2000 + "but host4321 and 10.1.3.7 are down"
    started = time.perf_counter()
    for _ in range(10):
        found = big.recognise("subject", body)
    assert found == ("host4321", "host0757")
    assert (time.perf_counter() - started) / 10 < 0.1  # a 60 KB body, 5000 CIs


# --- monitors name their host -------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "host"),
    [
        ("** PROBLEM Service Alert: mail01/SMTP is CRITICAL **", "Host: mail01\n", "mail01"),
        ("** PROBLEM Host Alert: core-sw1 is DOWN **", "", "core-sw1"),
    ],
)
def test_nagios_alerts_name_their_host(subject: str, body: str, host: str) -> None:
    alert = monitors.nagios(subject, body)
    assert alert is not None and alert.host == host


def test_alertmanager_instance_is_the_host() -> None:
    body = "[1] Firing\nLabels:\n - alertname = Down\n - instance = mail01:9100\n"
    (alert,) = monitors.alertmanager("[FIRING:1] Down", body)
    assert alert.host == "mail01"


# --- routing on CIs and services ----------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    subject: str = "mail01 is slow"
    from_addr: str = "carol@example.org"
    to: tuple[str, ...] = ("support@example.com",)
    cc: tuple[str, ...] = ()
    body_text: str = ""


SERVICES = (
    Service(name="email", queue="infra", sla_policy="24x7"),
    Service(name="hr", queue="people"),
)
QUEUES = {"it", "infra", "people", "mailops"}


def context(*cis: str) -> RouteContext:
    return RouteContext(cis=cis, ci_services=INVENTORY.services_of(cis), services=SERVICES)


def rules_of(*tables: dict[str, object]):  # type: ignore[no-untyped-def]
    rules, problems = compile_rules(list(tables), queues=QUEUES, agents=set())
    assert problems == []
    return rules


def test_the_first_service_owner_queue_applies_when_no_rule_sets_one() -> None:
    decision = route(Mail(), [], "it", context("mail01"))
    assert (decision.queue, decision.services, decision.cis) == ("infra", ("email",), ("mail01",))
    assert route(Mail(), [], "it", context("Payroll", "mail01")).queue == "people"
    assert route(Mail(), [], "it", context()).queue == "it"


def test_a_rule_queue_wins_over_the_service_queue() -> None:
    rules = rules_of({"name": "all mail", "set": {"queue": "mailops"}})
    assert route(Mail(), rules, "it", context("mail01")).queue == "mailops"


@pytest.mark.parametrize(
    ("when", "cis", "matches"),
    [
        ({"field": "ci", "equals": "mail01"}, ("mail01",), True),
        ({"field": "ci", "equals": "mail01"}, ("core-sw1",), False),
        ({"field": "ci", "in": ["core-sw1", "mail01"]}, ("db", "mail01"), True),
        ({"field": "ci", "glob": "mail*"}, ("mail02.example.com",), True),
        ({"field": "ci", "exists": True}, (), False),
        ({"field": "service", "equals": "email"}, ("db",), True),
        ({"field": "service", "regex": "^hr$"}, ("mail01",), False),
        ({"field": "service", "in": ["network", "hr"]}, ("Payroll",), True),
    ],
)
def test_conditions_on_cis_and_services(
    when: dict[str, object], cis: tuple[str, ...], matches: bool
) -> None:
    rules = rules_of({"name": "r", "when": when, "set": {"tags": ["hit"]}})
    assert (route(Mail(), rules, "it", context(*cis)).matched == ("r",)) is matches


def test_a_rule_sets_the_service_and_its_queue_applies() -> None:
    rules = rules_of(
        {"name": "payroll words", "match": {"subject": "salary"}, "set": {"service": "hr"}}
    )
    decision = route(Mail(subject="salary late on mail01"), rules, "it", context("mail01"))
    assert (decision.service, decision.services, decision.queue) == (
        "hr",
        ("hr", "email"),
        "people",
    )


def _svc(name: str, *depends_on: str) -> Service:
    return Service(name=name, queue="infra", depends_on=depends_on)


@pytest.mark.parametrize(
    ("names", "affected"),
    [
        (["network"], ("network", "email", "calendar", "portal")),
        (["email"], ("email", "calendar", "portal")),
        (["calendar"], ("calendar",)),
        (["nosuch"], ()),
        ([], ()),
        (["calendar", "email"], ("email", "calendar", "portal")),
    ],
)
def test_affected_services_follow_dependents_however_far(
    names: list[str], affected: tuple[str, ...]
) -> None:
    services = [
        _svc("network"),
        _svc("email", "network"),
        _svc("calendar", "email"),
        _svc("portal", "email", "network"),
    ]
    assert affected_services(services, names) == affected
