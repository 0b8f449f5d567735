"""Commands by mail, parsed and checked without a database (maildesk.tickets.commands)."""

from __future__ import annotations

import pytest

from maildesk.tickets.commands import AgentRef, CommandContext, parse_reply, ticket_number

CTX = CommandContext(
    actor="alice@example.com",
    queues=["it", "infra"],
    agents=[
        AgentRef(email="alice@example.com", name="Alice Admin"),
        AgentRef(email="bob@example.com", name="Bob"),
    ],
    ref_prefix="MD",
    own_addresses=["support@example.com", "helpdesk@example.com"],
)


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_reply(text, CTX)


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        ("#status open", "status", "open"),
        ("#status PENDING", "status", "pending"),
        ("#status on-hold", "status", "on-hold"),
        ("#status onhold", "status", "on-hold"),
        ("#status resolved", "status", "resolved"),
        ("#status closed", "status", "closed"),
        ("#priority P2", "priority", "P2"),
        ("#priority p1", "priority", "P1"),
        ("#priority 4", "priority", "P4"),
        ("#impact high", "impact", "high"),
        ("#impact Medium", "impact", "medium"),
        ("#urgency low", "urgency", "low"),
        ("#urgency h", "urgency", "high"),
        ("#assign me", "assign", "alice@example.com"),
        ("#assign none", "assign", None),
        ("#assign bob", "assign", "bob@example.com"),
        ("#assign Bob@Example.com", "assign", "bob@example.com"),
        ("#assign Alice Admin", "assign", "alice@example.com"),
        ("#queue INFRA", "queue", "infra"),
        ("#type problem", "type", "problem"),
        ("#type service-request", "type", "request"),
        ("#category hardware/printer", "category", "hardware/printer"),
        ("#merge MD-7", "merge", "MD-7"),
        ("#link [md-9]", "link", "[md-9]"),
        ("#unlink 9", "unlink", "9"),
    ],
)
def test_valid_commands(line: str, name: str, value: str | None) -> None:
    parsed = parse(f"{line}\nThe text.")
    assert parsed.errors == ()
    [command] = parsed.commands
    assert (command.name, command.value, command.line) == (name, value, 1)
    assert parsed.text == "The text."


def test_tags_and_watchers_add_and_remove() -> None:
    parsed = parse("#tag +printer -urgent vip\n#cc +dave@example.org -eve@example.org")
    tag, cc = parsed.commands
    assert (tag.add, tag.remove) == (("printer", "vip"), ("urgent",))
    assert (cc.add, cc.remove) == (("dave@example.org",), ("eve@example.org",))


def test_merge_and_link_name_their_ticket_number() -> None:
    parsed = parse("#merge MD-7\n#link #9")
    assert [c.target for c in parsed.commands] == [7, 9]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("#status done", "status must be one of open, pending, on-hold, resolved, closed"),
        ("#status", "needs a status"),
        ("#priority P9", "priority must be one of P1, P2, P3, P4"),
        ("#priority high", "priority must be one of"),
        ("#assign carol", "no single agent matches 'carol'"),
        ("#queue sales", "no queue 'sales'"),
        ("#type bug", "type must be one of incident, request, problem, change"),
        ("#tag", "needs tags"),
        ("#tag +bad<tag>", "invalid tag"),
        ("#cc +not-an-address", "is not an email address"),
        ('#cc +a"b;c@example.org', "is not an email address"),
        ("#cc +support+abc@example.com", "is a support address"),
        ("#merge XY-7", "is not a ticket like MD-7"),
        ("#link", "needs a ticket like MD-7"),
        ("#stauts resolved", "unknown command #stauts"),
        ("#priority P1 P2", "takes one value"),
        ("#impact critical", "impact must be one of high, medium, low"),
        ("#urgency", "needs an urgency"),
    ],
)
def test_invalid_commands_say_line_and_why(line: str, reason: str) -> None:
    parsed = parse(f"#tag ok\n{line}\nText.")
    [error] = parsed.errors
    assert error.line == 2
    assert error.text == line
    assert reason in error.reason
    assert f'line 2 "{line}"' in str(error)


def test_contradicting_commands_are_an_error() -> None:
    parsed = parse("#status resolved\n#status open")
    [error] = parsed.errors
    assert error.line == 2 and "contradicts line 1" in error.reason


def test_priority_with_impact_or_urgency_is_an_error() -> None:
    parsed = parse("#impact high\n#priority P4\nText.")
    [error] = parsed.errors
    assert error.line == 2 and "either #priority or #impact/#urgency" in error.reason
    both = parse("#impact high\n#urgency low\nText.")
    assert both.errors == () and [c.value for c in both.commands] == ["high", "low"]


def test_block_ends_at_the_first_text_line() -> None:
    parsed = parse("\n#priority P2\n\n#tag x\nHello,\nThe #monitoring channel says it is fixed.")
    assert [c.name for c in parsed.commands] == ["priority", "tag"]
    assert parsed.text == "Hello,\nThe #monitoring channel says it is fixed."
    assert parsed.lines == ("#priority P2", "#tag x")
    assert parsed.errors == ()


def test_a_command_below_the_text_is_an_error_not_silently_ignored() -> None:
    parsed = parse("Hello,\nall done.\n#status resolved")
    [error] = parsed.errors
    assert (error.line, error.text) == (3, "#status resolved")
    assert "commands go at the top" in error.reason


@pytest.mark.parametrize(
    "text",
    [
        "#note: the vendor says it is a firmware bug",
        "# note the vendor says it is a firmware bug",
        "*#note* the vendor says it is a firmware bug",
        "#note, the vendor says it is a firmware bug",
        "#NOTE the vendor says it is a firmware bug",
    ],
)
def test_note_spellings_all_keep_the_reply_internal(text: str) -> None:
    parsed = parse(f"{text}\nMore.")
    assert parsed.internal and parsed.errors == ()
    assert parsed.text.startswith("the vendor says it is a firmware bug")


def test_a_note_anywhere_keeps_the_reply_internal() -> None:
    parsed = parse("Checked the logs.\n\n#note do not tell the customer yet")
    assert parsed.internal  # and it is an error too: nothing is applied or sent
    assert [e.reason for e in parsed.errors] == [
        "commands go at the top of the reply, before any text"
    ]


def test_a_hash_number_is_text_not_a_command() -> None:
    parsed = parse("#1 priority is the printer.")
    assert parsed.commands == () and parsed.errors == ()
    assert parsed.text == "#1 priority is the printer."


def test_note_makes_the_reply_internal_and_keeps_its_line_text() -> None:
    parsed = parse("#note checked the spooler logs\nNothing in them.")
    assert parsed.internal
    assert parsed.text == "checked the spooler logs\n\nNothing in them."


def test_no_commands() -> None:
    parsed = parse("Just an answer.\n\nThanks")
    assert (parsed.commands, parsed.errors, parsed.internal) == ((), (), False)


@pytest.mark.parametrize(
    ("value", "number"),
    [("MD-7", 7), ("md-7", 7), ("[MD-7]", 7), ("#7", 7), ("7", 7), ("MD#7", 7), ("XY-7", None)],
)
def test_ticket_number(value: str, number: int | None) -> None:
    assert ticket_number(value, "MD") == number


@pytest.mark.parametrize(
    "text",
    [
        "#notes the vendor says it is a firmware bug",
        "#internal the vendor says it is a firmware bug",
        "#private the vendor says it is a firmware bug",
        "\uff03note the vendor says it is a firmware bug",  # full-width number sign
        "\u266fnote the vendor says it is a firmware bug",  # music sharp sign
        "#Note: the vendor says it is a firmware bug",
        "# note the vendor says it is a firmware bug",
    ],
)
def test_every_note_spelling_keeps_the_reply_internal(text: str) -> None:
    parsed = parse(f"{text}\nMore.")
    assert parsed.internal and parsed.errors == ()
    assert parsed.text.startswith("the vendor says it is a firmware bug")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("#ntoe the vendor says it is a firmware bug", 1),
        ("#nots the vendor says it is a firmware bug", 1),
        ("#intrenal the vendor says it is a firmware bug", 1),
        ("Checked.\n#ntoe the vendor says it is a firmware bug", 2),
        ("Checked.\n\n\uff03ntoe the vendor says", 3),
        ("Checked.\n\n*#notes* the vendor says", 3),
        ("--note the vendor says it is a firmware bug", 1),
        ("-note the vendor says it is a firmware bug", 1),
        ("Checked.\n--note the vendor says", 2),
        ("Checked. #note the vendor says it is a firmware bug", 1),
        ("#priority P2\nChecked, and #internal: the vendor says", 2),
    ],
)
def test_a_misspelt_or_misplaced_note_is_refused_naming_its_line(text: str, line: int) -> None:
    parsed = parse(text)
    assert parsed.errors, "a look-alike note must never pass as a public reply"
    assert line in [e.line for e in parsed.errors]


@pytest.mark.parametrize(
    "text",
    [
        "#1 priority is the printer.",
        "Hello,\nThe #monitoring channel says it is fixed.",
        "- Note that the printer needs a reboot.\n- Then print.",
        "Notes: the printer needs a reboot.",
        "#tag printer\nThe new toner is on its way.",
        "Thanks,\n-- \nAlice",
    ],
)
def test_text_that_only_resembles_a_note_is_a_public_reply(text: str) -> None:
    parsed = parse(text)
    assert (parsed.errors, parsed.internal) == ((), False)


def test_normalisation_is_for_matching_only() -> None:
    parsed = parse("#priority P2\nＡＢＣ ﬁle")  # full-width letters, a ligature
    assert parsed.text == "ＡＢＣ ﬁle"
