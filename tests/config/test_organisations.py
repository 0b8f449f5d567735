"""[[organisations]] and [security] cli_agents: read, checked, every problem at its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from maildesk.config import load_config
from tests.config.test_config import MINIMAL, REPO, problems, write

POLICY = """
[[sla_policies]]
name = "gold"
first_response = { P1 = "1h" }
"""


def test_organisations_are_read_with_normalised_domains(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            MINIMAL
            + POLICY
            + """
            [[organisations]]
            name = "Example Corp"
            domains = ["Example.ORG", "@bücher.example", "example.org."]
            vip = true
            queue = "infra"
            sla_policy = "gold"
            notes = "Contract 17"

            [[organisations]]
            name = "Plain"
            domains = ["plain.example"]
            """,
        )
    )
    corp, plain = config.organisations
    assert corp.domains == ("example.org", "xn--bcher-kva.example")
    assert (corp.vip, corp.queue, corp.sla_policy, corp.notes) == (
        True,
        "infra",
        "gold",
        "Contract 17",
    )
    assert (plain.vip, plain.queue, plain.sla_policy) == (False, None, None)
    assert config.organisation_of("Carol@IT.Example.org") == corp
    assert config.organisation_of("x@bücher.example") == corp
    assert config.organisation_of("x@notexample.org") is None
    assert config.route_context(config_now()).organisations == config.organisations


def config_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entry", "place", "words"),
    [
        (
            'name = "A"\ndomains = ["a.example"]\nqueue = "nowhere"',
            "[[organisations]] 'A' key 'queue'",
            ("unknown queue", "nowhere", "infra, it"),
        ),
        (
            'name = "A"\ndomains = ["a.example"]\nsla_policy = "platinum"',
            "[[organisations]] 'A' key 'sla_policy'",
            ("unknown sla policy", "platinum", "gold"),
        ),
        ('name = "A"', "[[organisations]] 'A' key 'domains'", ("is required",)),
        (
            'name = "A"\ndomains = ["not a domain"]',
            "[[organisations]] 'A' key 'domains'",
            ("not a mail domain", "not a domain"),
        ),
        (
            'name = "A"\ndomains = "a.example"',
            "[[organisations]] 'A' key 'domains'",
            ("list of strings",),
        ),
        (
            'name = "A"\ndomains = ["a.example"]\nvip = "yes"',
            "[[organisations]] 'A' key 'vip'",
            ("must be bool",),
        ),
        (
            'name = "A"\ndomains = ["a.example"]\ncolour = "red"',
            "[[organisations]] 'A' key 'colour'",
            ("unknown key", "sla_policy"),
        ),
        ('domains = ["a.example"]', "[[organisations]] #1 key 'name'", ("is required",)),
    ],
)
def test_organisation_problems_name_the_entry_and_key(
    tmp_path: Path, entry: str, place: str, words: tuple[str, ...]
) -> None:
    found = problems(write(tmp_path, MINIMAL + POLICY + "\n[[organisations]]\n" + entry + "\n"))
    [problem] = [p for p in found if p.place == place]
    assert all(w in problem.message for w in words), problem.message


def test_a_domain_belongs_to_one_organisation(tmp_path: Path) -> None:
    found = problems(
        write(
            tmp_path,
            MINIMAL
            + """
            [[organisations]]
            name = "A"
            domains = ["a.example"]

            [[organisations]]
            name = "B"
            domains = ["A.example"]

            [[organisations]]
            name = "A"
            domains = ["c.example"]
            """,
        )
    )
    assert [(p.place, p.message) for p in found] == [
        ("[[organisations]] 'B' key 'domains'", "domain 'a.example' is already 'A''s"),
        ("[[organisations]] 'A'", "duplicate organisation name"),
    ]


def test_cli_agents_are_read_and_checked(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            MINIMAL
            + """
            [security]
            cli_agents = { alice = ["Alice@example.com"], root = ["*"] }
            """,
        )
    )
    security = config.security
    assert security.cli_agents == {"alice": ("alice@example.com",), "root": ("*",)}
    assert security.may_act_as("alice", "alice@example.com")
    assert security.may_act_as("root", "alice@example.com")
    assert not security.may_act_as("mallory", "alice@example.com")
    assert load_config(write(tmp_path, MINIMAL, "open.toml")).security.may_act_as(
        "x", "y@z.example"
    )


@pytest.mark.parametrize(
    ("value", "place", "words"),
    [
        (
            '{ alice = ["eve@example.com"] }',
            "[security] key 'cli_agents.alice'",
            ("unknown agent 'eve@example.com'", "alice@example.com"),
        ),
        (
            '{ alice = "alice@example.com" }',
            "[security] key 'cli_agents.alice'",
            ("must be a list",),
        ),
        ('["alice"]', "[security] key 'cli_agents'", ("must be a table",)),
    ],
)
def test_cli_agents_problems(
    tmp_path: Path, value: str, place: str, words: tuple[str, ...]
) -> None:
    found = problems(write(tmp_path, MINIMAL + f"\n[security]\ncli_agents = {value}\n"))
    [problem] = found
    assert problem.place == place
    assert all(w in problem.message for w in words), problem.message


def test_commented_examples_validate_when_uncommented(tmp_path: Path) -> None:
    lines = (REPO / "maildesk.toml").read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("# [[organisations]]\n")
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("# "))
    lines[start:end] = [line[2:] for line in lines[start:end]]
    agents = next(i for i, line in enumerate(lines) if line.startswith("# cli_agents = "))
    lines[agents] = lines[agents][2:]
    config = load_config(write(tmp_path, "".join(lines)))
    [org] = config.organisations
    assert (org.name, org.queue, org.sla_policy, org.vip) == ("Example Corp", "infra", "vip", True)
    assert config.security.cli_agents == {"alice": ("alice@example.com",), "root": ("*",)}
