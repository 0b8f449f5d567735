"""The rule language: every field, operator, combinator, action, the priority matrix,
validation and the explanation `route test` prints. Pure: parsed messages in, decisions out."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from maildesk.mail.message import ParsedMessage
from maildesk.parse.parser import parse_message
from maildesk.routing.conditions import RouteContext
from maildesk.routing.rules import (
    DEFAULT_MATRIX,
    RoutingDecision,
    Rule,
    compile_matrix,
    compile_rules,
    route,
)

QUEUES = {"it", "infra", "vendors"}
AGENTS = {"alice@example.com", "bob@example.com"}
# Saturday 2026-11-21 22:30 UTC
SATURDAY_NIGHT = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
TUESDAY_MORNING = datetime(2026, 11, 24, 9, 15, tzinfo=UTC)


def message(
    subject: str = "Printer jammed",
    sender: str = "carol@client.example.org",
    *,
    to: str = "support@example.com",
    cc: str | None = None,
    body: str = "The printer on floor 2 is jammed.",
    charset: str = "utf-8",
    headers: dict[str, str] | None = None,
    attachment: tuple[str, str, bytes] | None = None,
) -> ParsedMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    if cc:
        msg["Cc"] = cc
    msg.set_content(body, charset=charset)
    for name, value in (headers or {}).items():  # after set_content, which drops Content-*
        msg[name] = value
    if attachment:
        name, ctype, data = attachment
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return parse_message(msg.as_bytes())


def rules_from(toml: str) -> list[Rule]:
    rules, problems = compile_rules(tomllib.loads(toml)["rules"], queues=QUEUES, agents=AGENTS)
    assert problems == []
    return rules


def when(condition: str, msg: ParsedMessage, ctx: RouteContext | None = None) -> bool:
    """Does a one-rule config with this `when` match the message?"""
    rules = rules_from(f'[[rules]]\nname = "r"\nwhen = {condition}\nset = {{ queue = "infra" }}\n')
    return route(msg, rules, "it", ctx).queue == "infra"


CTX = RouteContext(
    now=SATURDAY_NIGHT,
    agents=frozenset({"alice@example.com"}),
    vips=("ceo@example.com", "@board.example.com"),
    envelope_to=("helpdesk@example.com",),
)


@pytest.mark.parametrize(
    ("condition", "kwargs", "expected"),
    [
        ('{ field = "subject", contains = "JAMMED" }', {}, True),
        ('{ field = "subject", equals = "printer jammed" }', {}, True),
        ('{ field = "subject", equals = "printer" }', {}, False),
        ('{ field = "subject", regex = "^Printer" }', {}, True),
        ('{ field = "subject", regex = "^printer" }', {}, False),  # regex is as written
        ('{ field = "subject", glob = "print*jam*" }', {}, True),
        ('{ field = "subject", in = ["a", "printer jammed"] }', {}, True),
        ('{ field = "from", domain = "example.org" }', {}, True),  # subdomain counts
        ('{ field = "from", domain = "@client.example.org" }', {}, True),
        ('{ field = "from", domain = "ample.org" }', {}, False),  # not a suffix match
        ('{ field = "from_domain", equals = "client.example.org" }', {}, True),
        ('{ field = "to", equals = "support@example.com" }', {}, True),
        ('{ field = "cc", exists = true }', {}, False),
        ('{ field = "cc", exists = true }', {"cc": "dave@example.org"}, True),
        ('{ field = "recipients", equals = "dave@example.org" }', {"cc": "dave@example.org"}, True),
        ('{ field = "body", contains = "floor 2" }', {}, True),
        (
            '{ field = "header", name = "X-Priority", equals = "1" }',
            {"headers": {"X-Priority": "1"}},
            True,
        ),
        ('{ field = "header", name = "X-Priority", exists = false }', {}, True),
        ('{ field = "charset", equals = "iso-8859-1" }', {"charset": "iso-8859-1"}, True),
        (
            '{ field = "language", equals = "de" }',
            {"headers": {"Content-Language": "de, en"}},
            True,
        ),
        ('{ field = "attachment_count", ge = 1 }', {}, False),
        ('{ field = "size", gt = 100 }', {}, True),
        ('{ field = "size", lt = 100 }', {}, False),
        ('{ field = "size", between = [1, 1000000] }', {}, True),
    ],
)
def test_fields_and_operators(condition: str, kwargs: dict[str, Any], expected: bool) -> None:
    assert when(condition, message(**kwargs), CTX) is expected


def test_envelope_recipients_count_as_recipients() -> None:
    assert when('{ field = "recipients", equals = "helpdesk@example.com" }', message(), CTX)


def test_attachment_conditions() -> None:
    msg = message(attachment=("invoice.PDF", "application/pdf", b"%PDF-1.4"))
    assert when('{ field = "attachment_name", glob = "*.pdf" }', msg)
    assert when('{ field = "attachment_type", equals = "application/pdf" }', msg)
    assert when('{ field = "attachment_count", equals = 1 }', msg)
    assert not when('{ field = "attachment_type", equals = "image/png" }', msg)


def test_agent_and_vip_senders() -> None:
    assert when(
        '{ field = "sender_is_agent", is = true }', message(sender="alice@example.com"), CTX
    )
    assert not when('{ field = "sender_is_agent", is = true }', message(), CTX)
    assert when('{ field = "sender_is_vip", is = true }', message(sender="ceo@example.com"), CTX)
    assert when(
        '{ field = "sender_is_vip", is = true }', message(sender="x@board.example.com"), CTX
    )
    assert when('{ field = "sender_is_vip", is = false }', message(), CTX)


@pytest.mark.parametrize(
    ("condition", "at", "expected"),
    [
        ('{ field = "time", between = ["18:00", "08:00"] }', SATURDAY_NIGHT, True),
        ('{ field = "time", between = ["18:00", "08:00"] }', TUESDAY_MORNING, False),
        ('{ field = "time", between = ["09:00", "17:00"] }', TUESDAY_MORNING, True),
        ('{ field = "weekday", in = ["sat", "sun"] }', SATURDAY_NIGHT, True),
        ('{ field = "weekday", in = ["saturday"] }', TUESDAY_MORNING, False),
        ('{ field = "hour", ge = 22 }', SATURDAY_NIGHT, True),
    ],
)
def test_time_conditions(condition: str, at: datetime, expected: bool) -> None:
    assert when(condition, message(), RouteContext(now=at)) is expected


def test_combinators() -> None:
    out_of_hours = (
        '{ any = [ { field = "weekday", in = ["sat", "sun"] }, '
        '{ not = { field = "time", between = ["08:00", "18:00"] } } ] }'
    )
    assert when(out_of_hours, message(), RouteContext(now=SATURDAY_NIGHT))
    assert not when(out_of_hours, message(), RouteContext(now=TUESDAY_MORNING))
    both = (
        '{ all = [ { field = "subject", contains = "printer" }, '
        '{ field = "from", domain = "vendor.example" } ] }'
    )
    assert not when(both, message())
    assert when(both, message(sender="x@vendor.example"))


def test_match_shorthand_and_when_must_both_hold() -> None:
    rules = rules_from(
        '[[rules]]\nname = "r"\nmatch = { subject = "(?i)printer" }\n'
        'when = { field = "from", domain = "vendor.example" }\nset = { queue = "vendors" }\n'
    )
    assert route(message(), rules, "it").queue == "it"
    assert route(message(sender="a@vendor.example"), rules, "it").queue == "vendors"


def test_actions_refine_in_order_and_stop_ends_evaluation() -> None:
    rules = rules_from(
        """
        [[rules]]
        name = "printers"
        match = { subject = "(?i)printer" }
        set = { queue = "infra", tags = ["printer"], category = "hardware" }

        [[rules]]
        name = "vip"
        when = { field = "sender_is_vip", is = true }
        set = { impact = "high", urgency = "high", tags = ["vip"], assignee = "round-robin" }
        stop = true

        [[rules]]
        name = "never"
        set = { queue = "vendors" }
        """
    )
    decision = route(message(sender="ceo@example.com"), rules, "it", CTX, explain=True)
    assert decision.queue == "infra" and decision.category == "hardware"
    assert decision.priority == "P1" and (decision.impact, decision.urgency) == ("high", "high")
    assert decision.tags == ("printer", "vip")
    assert decision.assignee == "round-robin"
    assert decision.matched == ("printers", "vip")
    assert [r.skipped for r in decision.results] == [False, False, True]
    assert "stopped by 'vip'" in decision.results[2].reason


def test_priority_matrix_default_and_override() -> None:
    rules = rules_from('[[rules]]\nname = "r"\nset = { impact = "low", urgency = "high" }\n')
    assert route(message(), rules, "it").priority == DEFAULT_MATRIX[("low", "high")] == "P3"
    matrix, problems = compile_matrix({"low": {"high": "P2"}})
    assert problems == []
    assert route(message(), rules, "it", matrix=matrix).priority == "P2"
    only_urgency = rules_from('[[rules]]\nname = "r"\nset = { urgency = "high" }\n')
    assert route(message(), only_urgency, "it").priority == "P2"  # impact defaults to medium


def test_matrix_problems_name_the_key() -> None:
    _, problems = compile_matrix({"huge": {}, "low": {"high": "P9", "soon": "P1"}})
    places = [p for p, _ in problems]
    assert places == [
        "[priority_matrix] key 'huge'",
        "[priority_matrix] key 'low.high'",
        "[priority_matrix] key 'low.soon'",
    ]


def test_acknowledge_and_drop_actions() -> None:
    rules = rules_from(
        """
        [[rules]]
        name = "vendor alerts"
        when = { field = "from", domain = "alerts.example" }
        set = { acknowledge = false, queue = "vendors" }

        [[rules]]
        name = "spam"
        match = { subject = "(?i)viagra" }
        drop = true

        [[rules]]
        name = "german"
        when = { field = "language", equals = "de" }
        set = { acknowledge = "ticket_created_de" }
        """
    )
    assert route(message(sender="x@alerts.example"), rules, "it").acknowledge is False
    dropped = route(message("Cheap viagra"), rules, "it")
    assert dropped.dropped_by == "spam"
    german = route(message(headers={"Content-Language": "de"}), rules, "it")
    assert german.acknowledge == "ticket_created_de" and german.dropped_by is None
    assert route(message(), rules, "it") == RoutingDecision(queue="it")


def test_explain_names_the_failing_condition() -> None:
    rules = rules_from(
        '[[rules]]\nname = "r"\n'
        'when = { all = [ { field = "subject", contains = "printer" }, '
        '{ field = "from", domain = "vendor.example" } ] }\n'
    )
    [result] = route(message(), rules, "it", explain=True).results
    assert result.matched is False
    assert result.reason == "from domain /vendor.example/: no"
    [ok] = route(message(sender="a@vendor.example"), rules, "it", explain=True).results
    assert ok.matched and "subject contains /printer/: yes" in ok.reason


@pytest.mark.parametrize(
    ("when_toml", "place", "words"),
    [
        ('{ field = "colour", equals = "red" }', "key 'when.field'", ("unknown field 'colour'",)),
        ('{ field = "subject" }', "key 'when'", ("exactly one operator",)),
        ('{ field = "subject", regex = "(" }', "key 'when.regex'", ("invalid regular expression",)),
        ('{ field = "subject", lt = 3 }', "key 'when'", ("exactly one operator",)),
        ('{ field = "size", gt = "big" }', "key 'when.gt'", ("takes a number",)),
        ('{ field = "header", equals = "x" }', "key 'when.name'", ("needs name",)),
        ('{ field = "time", between = ["25:00", "08:00"] }', "key 'when.between'", ("18:30",)),
        ('{ field = "weekday", in = ["caturday"] }', "key 'when.in'", ("unknown weekday",)),
        ("{ all = [] }", "key 'when.all'", ("non-empty list",)),
        (
            '{ any = [ { field = "subject", regex = "[" } ] }',
            "key 'when.any[0].regex'",
            ("regular",),
        ),
        ('{ not = { field = "x", equals = 1 } }', "key 'when.not.field'", ("unknown field",)),
        ('{ all = [], field = "subject" }', "key 'when'", ("cannot be combined",)),
    ],
)
def test_condition_problems_name_rule_and_key(
    when_toml: str, place: str, words: tuple[str, ...]
) -> None:
    tables = tomllib.loads(f'[[rules]]\nname = "bad"\nwhen = {when_toml}\n')["rules"]
    _, problems = compile_rules(tables, queues=QUEUES, agents=AGENTS)
    assert [p for p, _ in problems] == [f"[[rules]] 'bad' {place}"]
    for word in words:
        assert word in problems[0][1]


@pytest.mark.parametrize(
    ("set_toml", "key", "words"),
    [
        ('{ assignee = "carol@example.com" }', "set.assignee", ("round-robin", "least-open")),
        ('{ impact = "huge" }', "set.impact", ("high", "medium", "low")),
        ('{ priority = "P1", impact = "high" }', "set", ("either priority or impact",)),
        ("{ acknowledge = 3 }", "set.acknowledge", ("template name",)),
        ('{ queue = "nowhere" }', "set.queue", ("unknown queue",)),
    ],
)
def test_action_problems_name_rule_and_key(set_toml: str, key: str, words: tuple[str, ...]) -> None:
    tables = tomllib.loads(f'[[rules]]\nname = "bad"\nset = {set_toml}\n')["rules"]
    _, problems = compile_rules(tables, queues=QUEUES, agents=AGENTS)
    assert [p for p, _ in problems] == [f"[[rules]] 'bad' key '{key}'"]
    for word in words:
        assert word in problems[0][1]
