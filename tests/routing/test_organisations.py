"""Organisations by mail domain in routing: which one a sender belongs to, the rule fields
`organisation`, `organisation_is_vip` and `sender_is_vip`, and the queue an organisation
gives when no rule sets one."""

from __future__ import annotations

import pytest

from maildesk.routing.conditions import RouteContext
from maildesk.routing.organisations import Organisation, normalise_domain, organisation_for
from maildesk.routing.rules import compile_rules, decision_json, route
from tests.routing.test_rules import AGENTS, QUEUES, Mail

CORP = Organisation(name="Example Corp", domains=("example.org",), vip=True, queue="infra")
LAB = Organisation(name="Example Lab", domains=("lab.example.org",))
SHOP = Organisation(name="Bücher", domains=(normalise_domain("bücher.example"),))
CTX = RouteContext(organisations=(CORP, LAB, SHOP))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("carol@example.org", "Example Corp"),
        ("carol@IT.Example.ORG", "Example Corp"),  # a subdomain, any case
        ("dave@lab.example.org", "Example Lab"),  # the more specific domain wins
        ("dave@x.lab.example.org", "Example Lab"),
        ("eve@notexample.org", None),  # a suffix that is not a subdomain
        ("eve@example.org.evil.example", None),
        ("kim@bücher.example", "Bücher"),  # IDNA: U-label and A-label are one domain
        ("kim@xn--bcher-kva.example", "Bücher"),
        ("no-domain", None),
    ],
)
def test_organisation_for_an_address(address: str, expected: str | None) -> None:
    found = organisation_for(address, CTX.organisations)
    assert (found.name if found else None) == expected


def rules(*tables: dict[str, object]):  # type: ignore[no-untyped-def]
    compiled, problems = compile_rules(list(tables), queues=QUEUES, agents=AGENTS)
    assert problems == []
    return compiled


def test_organisation_condition_field_routes_by_the_senders_organisation() -> None:
    table = {
        "name": "lab mail",
        "when": {"field": "organisation", "equals": "Example Lab"},
        "set": {"queue": "facilities", "tags": ["lab"]},
    }
    lab = route(Mail(from_addr="dave@lab.example.org"), rules(table), "it", CTX)
    other = route(Mail(from_addr="x@elsewhere.example"), rules(table), "it", CTX)
    assert (lab.queue, lab.tags, lab.organisation) == ("facilities", ("lab",), "Example Lab")
    assert (other.queue, other.tags, other.organisation) == ("it", (), None)


def test_vip_organisation_is_a_vip_sender_and_its_own_field() -> None:
    tables = [
        {
            "name": "vip org",
            "when": {"field": "organisation_is_vip", "is": True},
            "set": {"tags": ["vip-org"]},
        },
        {
            "name": "VIP senders",
            "when": {"field": "sender_is_vip", "is": True},
            "set": {"impact": "high", "urgency": "high"},
        },
    ]
    vip = route(Mail(from_addr="carol@it.example.org"), rules(*tables), "it", CTX)
    lab = route(Mail(from_addr="dave@lab.example.org"), rules(*tables), "it", CTX)
    assert (vip.tags, vip.priority, vip.impact, vip.urgency) == (("vip-org",), "P1", "high", "high")
    assert (lab.tags, lab.priority, lab.impact) == ((), "P3", None)


def test_organisation_queue_applies_when_no_rule_sets_one_and_rules_win() -> None:
    tag_only = {"name": "tag", "match": {"subject": "(?i)printer"}, "set": {"tags": ["printer"]}}
    to_it = {"name": "to it", "match": {"subject": "(?i)laptop"}, "set": {"queue": "it"}}
    by_org = route(
        Mail(subject="Printer jammed", from_addr="c@example.org"),
        rules(tag_only, to_it),
        "facilities",
        CTX,
    )
    by_rule = route(
        Mail(subject="Laptop", from_addr="c@example.org"), rules(tag_only, to_it), "facilities", CTX
    )
    nobody = route(
        Mail(subject="Printer", from_addr="c@else.example"), rules(tag_only), "facilities", CTX
    )
    assert by_org.queue == "infra"
    assert by_rule.queue == "it"
    assert nobody.queue == "facilities"
    assert decision_json(by_org)["organisation"] == "Example Corp"


def test_explain_says_why_an_organisation_condition_failed() -> None:
    table = {"name": "corp", "when": {"field": "organisation", "equals": "Example Corp"}}
    decision = route(Mail(from_addr="x@lab.example.org"), rules(table), "it", CTX, explain=True)
    [result] = decision.results
    assert not result.matched and "organisation equals" in result.reason
