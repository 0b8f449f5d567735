"""maildesk.routing.rules: compile `[[rules]]` tables, route a message, explain the decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from maildesk.routing import rules as routing
from maildesk.routing.rules import RoutingDecision, Rule, compile_rules

QUEUES = {"it", "infra", "facilities"}
AGENTS = {"alice@example.com", "bob@example.com"}

SPEC_RULE = {
    "name": "outages are P1 for infra",
    "match": {"subject": "(?i)outage|down"},
    "set": {"queue": "infra", "priority": "P1", "type": "incident"},
}


@dataclass(frozen=True)
class Mail:
    subject: str = "Printer jammed"
    from_addr: str = "carol@client.example.org"
    to: tuple[str, ...] = ("support@example.com",)
    cc: tuple[str, ...] = ()
    body_text: str = "The printer on floor 2 is jammed."


def route(msg: Mail, rules: list[Rule], default_queue: str) -> RoutingDecision:
    """Route with explanations, as `maildesk route test` does."""
    return routing.route(msg, rules, default_queue, explain=True)


def compiled(*tables: dict[str, Any]) -> list[Rule]:
    rules, problems = compile_rules(list(tables), queues=QUEUES, agents=AGENTS)
    assert problems == []
    return rules


def problems_of(*tables: dict[str, Any]) -> list[tuple[str, str]]:
    return compile_rules(list(tables), queues=QUEUES, agents=AGENTS)[1]


# --- the SPEC example --------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject", ["Mail server is DOWN", "Network outage in Berlin", "Shutdown of VPN"]
)
def test_spec_rule_routes_outages_to_infra(subject: str) -> None:
    decision = route(Mail(subject=subject), compiled(SPEC_RULE), "it")
    assert (decision.queue, decision.priority, decision.type) == ("infra", "P1", "incident")
    assert decision.matched == ("outages are P1 for infra",)


def test_unmatched_message_gets_the_defaults() -> None:
    decision = route(Mail(subject="New laptop please"), compiled(SPEC_RULE), "it")
    assert decision.queue == "it"
    assert (decision.priority, decision.type) == ("P3", "incident")
    assert (decision.category, decision.assignee, decision.tags) == (None, None, ())
    assert decision.matched == ()
    [result] = decision.results
    assert result.rule == "outages are P1 for infra"
    assert result.matched is False and result.skipped is False
    assert "subject" in result.reason and "outage|down" in result.reason


def test_no_rules_route_to_the_default_queue() -> None:
    decision = route(Mail(), [], "facilities")
    assert decision.queue == "facilities"
    assert decision.results == ()


# --- conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "pattern", "mail", "expected"),
    [
        ("subject", "(?i)^vpn", Mail(subject="VPN broken"), True),
        ("subject", "^vpn", Mail(subject="VPN broken"), False),
        ("from", r"@client\.example\.org$", Mail(), True),
        ("from", r"@partner\.example$", Mail(), False),
        ("to", r"^helpdesk@", Mail(to=("support@example.com", "helpdesk@example.com")), True),
        ("to", r"^helpdesk@", Mail(cc=("helpdesk@example.com",)), False),
        ("cc", r"^boss@", Mail(cc=("boss@client.example.org",)), True),
        ("cc", r"^boss@", Mail(to=("boss@client.example.org",)), False),
        ("recipients", r"^boss@", Mail(cc=("boss@client.example.org",)), True),
        ("recipients", r"^boss@", Mail(to=("boss@client.example.org",)), True),
        ("recipients", r"^boss@", Mail(), False),
        ("body", r"(?i)floor \d", Mail(), True),
        ("body", r"(?m)^urgent$", Mail(body_text="Hi\nurgent\nthanks"), True),
        ("body", r"(?i)password", Mail(), False),
    ],
)
def test_condition_fields(field: str, pattern: str, mail: Mail, expected: bool) -> None:
    rules = compiled({"name": "r", "match": {field: pattern}, "set": {"priority": "P2"}})
    decision = route(mail, rules, "it")
    assert (decision.matched == ("r",)) is expected
    assert (decision.priority == "P2") is expected


def test_all_conditions_must_hold() -> None:
    rules = compiled(
        {
            "name": "vip vpn",
            "match": {"subject": "(?i)vpn", "from": "^ceo@"},
            "set": {"priority": "P1"},
        }
    )
    assert route(Mail(subject="VPN", from_addr="ceo@example.com"), rules, "it").priority == "P1"
    miss = route(Mail(subject="VPN", from_addr="intern@example.com"), rules, "it")
    assert miss.priority == "P3"
    assert "from regex /^ceo@/: no" in miss.results[0].reason


def test_rule_without_conditions_always_matches() -> None:
    rules = compiled({"name": "everything", "set": {"category": "general"}})
    decision = route(Mail(), rules, "it")
    assert decision.category == "general"
    assert "always" in decision.results[0].reason


# --- order, refinement, stop -------------------------------------------------------------


def test_later_rules_refine_earlier_ones() -> None:
    rules = compiled(
        SPEC_RULE,
        {
            "name": "mail server outages go to bob",
            "match": {"subject": "(?i)mail"},
            "set": {"priority": "P2", "assignee": "Bob@Example.com", "tags": ["mail"]},
        },
        {"name": "tag everything", "set": {"tags": ["mail", "triage"]}},
    )
    decision = route(Mail(subject="Mail server down"), rules, "it")
    assert decision.queue == "infra"  # kept from the first rule
    assert decision.priority == "P2"  # refined by the second
    assert decision.type == "incident"
    assert decision.assignee == "bob@example.com"
    assert decision.tags == ("mail", "triage")
    assert decision.matched == (
        "outages are P1 for infra",
        "mail server outages go to bob",
        "tag everything",
    )


def test_stop_skips_the_remaining_rules() -> None:
    rules = compiled(
        {"name": "spam", "match": {"subject": "(?i)viagra"}, "set": {"queue": "it"}, "stop": True},
        {"name": "urgent", "match": {"subject": "(?i)urgent"}, "set": {"priority": "P1"}},
        {"name": "all", "set": {"tags": ["seen"]}},
    )
    decision = route(Mail(subject="URGENT viagra"), rules, "facilities")
    assert decision.queue == "it"
    assert decision.priority == "P3"
    assert decision.tags == ()
    assert decision.matched == ("spam",)
    assert [(r.rule, r.matched, r.skipped) for r in decision.results] == [
        ("spam", True, False),
        ("urgent", False, True),
        ("all", False, True),
    ]
    assert all("spam" in r.reason for r in decision.results[1:])


def test_stop_on_a_rule_that_does_not_match_changes_nothing() -> None:
    rules = compiled(
        {"name": "spam", "match": {"subject": "viagra"}, "set": {"queue": "it"}, "stop": True},
        {"name": "urgent", "match": {"subject": "(?i)urgent"}, "set": {"priority": "P1"}},
    )
    decision = route(Mail(subject="urgent: printer"), rules, "facilities")
    assert decision.matched == ("urgent",)
    assert decision.priority == "P1"
    assert [r.skipped for r in decision.results] == [False, False]


def test_results_do_not_affect_decision_equality() -> None:
    rules = compiled(SPEC_RULE)
    assert route(Mail(subject="down"), rules, "it") == route(Mail(subject="outage"), rules, "it")


def test_compiled_rule_shape() -> None:
    [rule] = compiled({**SPEC_RULE, "stop": True})
    assert rule.name == "outages are P1 for infra"
    assert rule.stop is True
    assert rule.condition is not None
    assert rule.condition.text == "subject regex /(?i)outage|down/"
    assert (rule.actions.queue, rule.actions.priority, rule.actions.type) == (
        "infra",
        "P1",
        "incident",
    )


# --- problems ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "place", "words"),
    [
        (
            {"name": "broken", "match": {"subject": "(unclosed"}},
            "[[rules]] 'broken' key 'match.subject'",
            ("invalid regular expression", "(unclosed"),
        ),
        (
            {"name": "broken", "match": {"body": "*oops"}},
            "[[rules]] 'broken' key 'match.body'",
            ("invalid regular expression",),
        ),
        (
            {"name": "r", "match": {"subjet": "x"}},
            "[[rules]] 'r' key 'match.subjet'",
            ("unknown field", "subject"),
        ),
        (
            {"name": "r", "match": {"subject": 5}},
            "[[rules]] 'r' key 'match.subject'",
            ("regular expression string", "5"),
        ),
        ({"name": "r", "match": "outage"}, "[[rules]] 'r' key 'match'", ("table",)),
        (
            {"name": "r", "set": {"queue": "nope"}},
            "[[rules]] 'r' key 'set.queue'",
            ("unknown queue", "'nope'", "infra"),
        ),
        (
            {"name": "r", "set": {"priority": "P9"}},
            "[[rules]] 'r' key 'set.priority'",
            ("unknown priority", "'P9'", "P1"),
        ),
        (
            {"name": "r", "set": {"type": "outage"}},
            "[[rules]] 'r' key 'set.type'",
            ("unknown type", "'outage'", "incident"),
        ),
        (
            {"name": "r", "set": {"assignee": "zed@example.com"}},
            "[[rules]] 'r' key 'set.assignee'",
            ("unknown assignee", "zed@example.com", "alice@example.com"),
        ),
        (
            {"name": "r", "set": {"queu": "it"}},
            "[[rules]] 'r' key 'set.queu'",
            ("unknown action", "queue"),
        ),
        ({"name": "r", "set": {"tags": "vip"}}, "[[rules]] 'r' key 'set.tags'", ("list",)),
        ({"name": "r", "set": {"priority": 1}}, "[[rules]] 'r' key 'set.priority'", ("string",)),
        ({"name": "r", "set": ["queue", "it"]}, "[[rules]] 'r' key 'set'", ("table",)),
        ({"name": "r", "stop": "yes"}, "[[rules]] 'r' key 'stop'", ("true or false",)),
        ({"name": "r", "whenever": {}}, "[[rules]] 'r' key 'whenever'", ("unknown key",)),
        ({"name": "r", "when": {}}, "[[rules]] 'r' key 'when.field'", ("unknown field",)),
        ({"match": {"subject": "x"}}, "[[rules]] #1 key 'name'", ("required",)),
        ({"name": "  "}, "[[rules]] #1 key 'name'", ("required",)),
    ],
)
def test_problems_name_the_rule_and_key(
    table: dict[str, Any], place: str, words: tuple[str, ...]
) -> None:
    problems = problems_of(table)
    assert [p for p, _ in problems] == [place]
    message = problems[0][1]
    for word in words:
        assert word in message


def test_every_problem_is_reported_and_numbered_by_position() -> None:
    problems = problems_of(
        SPEC_RULE,
        {"name": "bad", "match": {"subject": "("}, "set": {"queue": "nope", "priority": "p1"}},
        {"set": {"type": "request"}},
    )
    assert [p for p, _ in problems] == [
        "[[rules]] 'bad' key 'match.subject'",
        "[[rules]] 'bad' key 'set.queue'",
        "[[rules]] 'bad' key 'set.priority'",
        "[[rules]] #3 key 'name'",
    ]


def test_duplicate_rule_names_are_reported() -> None:
    problems = problems_of(SPEC_RULE, SPEC_RULE)
    assert problems == [("[[rules]] 'outages are P1 for infra'", "duplicate rule name")]
