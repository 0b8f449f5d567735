"""[[catalog]] and a rule's set.catalog: read, defaulted, every problem named by item and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from maildesk.config import load_config
from tests.config.test_config import MINIMAL, problems, write

ITEM = """
[sla]
leads = { it = "lead@example.com" }

[[catalog]]
name = "new-laptop"
title = "New laptop"
queue = "it"
priority = "P2"
fields = [ { name = "user", label = "For whom", required = true },
           { name = "model", choices = ["standard", "developer"], kind = "text" } ]
approvers = ["carol@example.com", "lead:it"]
approvals_required = 1
approval_timeout = "2d"
"""


def test_catalog_items_are_read_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + ITEM + '\n[[catalog]]\nname = "vpn"\n'))
    laptop, vpn = config.catalog
    assert (laptop.queue, laptop.priority, laptop.type) == ("it", "P2", "request")
    assert laptop.fields[0].label == "For whom" and laptop.fields[0].required
    assert laptop.fields[1].choices == ("standard", "developer")
    assert config.approvers_of(laptop) == ("carol@example.com", "lead@example.com")
    assert (laptop.approvals_required, laptop.approval_timeout) == (1, timedelta(days=2))
    assert (vpn.title, vpn.approvers, vpn.approvals_required) == ("vpn", (), 0)
    assert config.catalog_item("vpn") is vpn and config.catalog_item(None) is None


def test_approvals_required_defaults_to_all(tmp_path: Path) -> None:
    text = MINIMAL + ITEM.replace("approvals_required = 1\n", "")
    [item] = load_config(write(tmp_path, text)).catalog
    assert item.approvals_required == 2


def test_a_rule_may_turn_mail_into_a_catalog_item(tmp_path: Path) -> None:
    rule = '\n[[rules]]\nname = "laptops"\nmatch = { subject = "laptop" }\n'
    rule += 'set = { catalog = "new-laptop" }\n'
    config = load_config(write(tmp_path, MINIMAL + ITEM + rule))
    assert config.rules[0].actions.catalog == "new-laptop"


@pytest.mark.parametrize(
    ("line", "place", "words"),
    [
        ('type = "project"', "key 'type'", ("request, change",)),
        ('queue = "nope"', "key 'queue'", ("unknown queue",)),
        ('priority = "P9"', "key 'priority'", ("P1",)),
        ('sla_policy = "gold"', "key 'sla_policy'", ("unknown SLA policy",)),
        ('approvers = ["not an address"]', "key 'approvers'", ("lead:QUEUE",)),
        ('approvers = ["lead:nope"]', "key 'approvers'", ("unknown queue",)),
        ('approvers = ["lead:infra"]', "key 'approvers'", ("no lead",)),
        ("approvals_required = 5", "key 'approvals_required'", ("from 1 to",)),
        ('approval_timeout = "soon"', "key 'approval_timeout'", ()),
        ("approval_timeout = 0", "key 'approval_timeout'", ("more than 0",)),
        ("title = 3", "key 'title'", ("must be str",)),
        ("colour = 1", "key 'colour'", ("unknown key",)),
        ('fields = "user"', "key 'fields'", ("list of tables",)),
        ('fields = [ { label = "x" } ]', "fields #1 key 'name'", ("required",)),
        ('fields = [ { name = "a", kind = "colour" } ]', "fields #1 key 'kind'", ("date",)),
        ('fields = [ { name = "a", required = "yes" } ]', "fields #1 key 'required'", ("bool",)),
        ('fields = [ { name = "a", choices = "x" } ]', "fields #1 key 'choices'", ("list",)),
        ('fields = [ { name = "a", size = 1 } ]', "fields #1 key 'size'", ("unknown key",)),
        ('fields = [ { name = "a" }, { name = "a" } ]', "fields #2 key 'name'", ("duplicate",)),
    ],
)
def test_catalog_problems_name_the_item_and_key(
    tmp_path: Path, line: str, place: str, words: tuple[str, ...]
) -> None:
    text = MINIMAL + '\n[sla]\nleads = { it = "lead@example.com" }\n'
    text += f'\n[[catalog]]\nname = "vpn"\napprovers = ["a@example.com"]\n{line}\n'
    if line.startswith("approvers"):
        text = text.replace('approvers = ["a@example.com"]\n', "", 1)
    found = problems(write(tmp_path, text))
    [problem] = [p for p in found if p.place == f"[[catalog]] 'vpn' {place}"]
    assert all(w in problem.message for w in words), problem.message


def test_catalog_names_and_rule_references_are_checked(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[catalog]]\ntitle = "No name"\n\n[[catalog]]\nname = "a"\n'
    text += '\n[[catalog]]\nname = "a"\n\n[[catalog]]\nname = "b"\napprovals_required = 1\n'
    text += '\n[[rules]]\nname = "r"\nset = { catalog = "nope" }\n'
    found = {p.place: p.message for p in problems(write(tmp_path, text))}
    assert "required" in found["[[catalog]] #1 key 'name'"]
    assert "duplicate" in found["[[catalog]] 'a'"]
    assert "needs approvers" in found["[[catalog]] 'b' key 'approvals_required'"]
    assert "unknown catalog item 'nope'" in found["[[rules]] 'r' key 'set.catalog'"]
