"""[[services]], [cmdb] and the inventory file: read, and every problem named by file, service
or line (entry) and key (column); `maildesk ci list|import`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maildesk.config import load_config
from maildesk.errors import ConfigError, ConfigProblem
from tests.config.test_config import MINIMAL, write
from tests.conftest import run_cli

POLICY = """
[[sla_policies]]
name = "24x7"
calendar = "24x7"
first_response = { P1 = "1h", P2 = "2h", P3 = "8h", P4 = "16h" }
resolution = { P1 = "4h", P2 = "16h", P3 = "40h", P4 = "80h" }
"""
SERVICES = """
[[services]]
name = "email"
description = "Company mail"
queue = "infra"
criticality = "high"
sla_policy = "24x7"
depends_on = ["network"]
subscribers = ["All-Staff@Example.com"]

[[services]]
name = "network"
queue = "infra"

[cmdb]
path = "inventory.csv"
domains = ["example.com"]
"""
CSV = """\
name,kind,services,owner,aliases,location
mail01,host,email,bob@example.com,mail01.example.com 10.0.0.21,rack 3
# a comment line
core-sw1,switch,network email,,AT-00101,
"""


def desk(
    tmp_path: Path, inventory: str | None = CSV, extra: str = "", name: str = "inventory.csv"
) -> Path:
    config = write(tmp_path, MINIMAL + POLICY + SERVICES.replace("inventory.csv", name) + extra)
    if inventory is not None:
        (tmp_path / name).write_text(inventory, encoding="utf-8")
    return config


def problems(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_services_and_inventory_are_read(tmp_path: Path) -> None:
    config = load_config(desk(tmp_path))
    email, network = config.services
    assert (email.queue, email.criticality, email.sla_policy) == ("infra", "high", "24x7")
    assert email.depends_on == ("network",) and email.subscribers == ("all-staff@example.com",)
    assert (network.criticality, network.sla_policy, network.depends_on) == ("medium", None, ())
    mail01, sw = config.inventory.cis
    assert (mail01.kind, mail01.services, mail01.owner) == ("host", ("email",), "bob@example.com")
    assert mail01.aliases == ("mail01.example.com", "10.0.0.21")
    assert dict(mail01.attributes) == {"location": "rack 3"}
    assert (sw.services, sw.aliases, dict(sw.attributes)) == (
        ("network", "email"),
        ("AT-00101",),
        {},
    )
    assert config.cmdb.path == (tmp_path / "inventory.csv").resolve()
    assert config.service("email") is email and config.service(None) is None


def test_a_toml_inventory_reads_the_same(tmp_path: Path) -> None:
    toml = """
[[ci]]
name = "mail01"
kind = "host"
services = ["email"]
aliases = "mail01.example.com 10.0.0.21"
location = "rack 3"

[[ci]]
name = "core-sw1"
services = "network"
attributes = { rack = "1" }
"""
    config = load_config(desk(tmp_path, toml, name="inventory.toml"))
    mail01, sw = config.inventory.cis
    assert mail01.aliases == ("mail01.example.com", "10.0.0.21") and mail01.services == ("email",)
    assert dict(mail01.attributes) == {"location": "rack 3"} and dict(sw.attributes) == {
        "rack": "1"
    }


def test_a_missing_inventory_is_empty_not_an_error(tmp_path: Path) -> None:
    config = load_config(desk(tmp_path, None))
    assert len(config.inventory) == 0 and config.cmdb.path is not None


@pytest.mark.parametrize(
    ("old", "new", "place", "words"),
    [
        (
            'queue = "infra"\ncriticality',
            'queue = "nope"\ncriticality',
            "'email' key 'queue'",
            "unknown queue 'nope'",
        ),
        (
            'criticality = "high"',
            'criticality = "urgent"',
            "'email' key 'criticality'",
            "low, medium, high",
        ),
        (
            'sla_policy = "24x7"',
            'sla_policy = "gold"',
            "'email' key 'sla_policy'",
            "unknown SLA policy 'gold'",
        ),
        (
            'depends_on = ["network"]',
            'depends_on = ["dns"]',
            "'email' key 'depends_on'",
            "unknown service 'dns'",
        ),
        (
            '["All-Staff@Example.com"]',
            '["everyone"]',
            "'email' key 'subscribers'",
            "expected an address",
        ),
        ('description = "Company mail"', 'colour = "red"', "'email' key 'colour'", "unknown key"),
        ('name = "network"', 'name = "email"', "[[services]] 'email'", "duplicate service name"),
        (
            'domains = ["example.com"]',
            'domains = ["not a domain"]',
            "[cmdb] key 'domains'",
            "expected a domain",
        ),
        ('path = "inventory.csv"', 'path = "inventory.xlsx"', "[cmdb] key 'path'", ".csv or .toml"),
    ],
)
def test_service_problems_name_service_and_key(
    tmp_path: Path, old: str, new: str, place: str, words: str
) -> None:
    path = desk(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    found = problems(path)
    assert any(p.file == str(path) and place in p.place and words in p.message for p in found), (
        found
    )


def test_a_dependency_cycle_is_an_error(tmp_path: Path) -> None:
    extra = '\n[[services]]\nname = "dns"\nqueue = "infra"\ndepends_on = ["email"]\n'
    path = desk(tmp_path, extra=extra)
    text = path.read_text(encoding="utf-8").replace(
        'name = "network"\nqueue = "infra"',
        'name = "network"\nqueue = "infra"\ndepends_on = ["dns"]',
    )
    path.write_text(text, encoding="utf-8")
    [cycle] = [p for p in problems(path) if "depends on itself" in p.message]
    assert "email -> network -> dns -> email" in cycle.message


def test_a_rule_service_must_exist(tmp_path: Path) -> None:
    rule = '\n[[rules]]\nname = "hr"\nmatch = { subject = "salary" }\nset = { service = "hr" }\n'
    [p] = problems(desk(tmp_path, extra=rule))
    assert "'hr' key 'set.service'" in p.place and "unknown service 'hr'" in p.message


@pytest.mark.parametrize(
    ("csv", "place", "words"),
    [
        ("name,kind\n,host\n", "line 2 column 'name'", "is required"),
        ("kind,services\nhost,email\n", "line 1", "no 'name' column"),
        (
            "name,services\nmail01,email calendar\n",
            "line 2 column 'services'",
            "unknown service 'calendar'",
        ),
        (
            "name,aliases\nmail01,m1\nmail01,\n",
            "line 3 column 'name'",
            "already name of CI 'mail01' (line 2)",
        ),
        ("name,aliases\nMail01,\nmail01,\n", "line 3 column 'name'", "already name of CI 'Mail01'"),
        (
            "name,aliases\nmail01,m1\nmail02,M1\n",
            "line 3 column 'aliases'",
            "'M1' is already an alias of CI 'mail01'",
        ),
        ("name,aliases\nmail01,fe80::1\nsw,FE80::0001\n", "line 3 column 'aliases'", "CI 'mail01'"),
        (
            "name,aliases\nmail01,\nmail02,mail01\n",
            "line 3 column 'aliases'",
            "already name of CI 'mail01'",
        ),
        ("name,kind\nmail01,host,extra\n", "line 2", "3 columns, the header has 2"),
        ("name,name\nmail01,x\n", "line 1 column 'name'", "column given twice"),
        ('name,kind\n"mail01,host\n', "line", "not valid CSV"),
    ],
)
def test_inventory_problems_name_file_line_and_column(
    tmp_path: Path, csv: str, place: str, words: str
) -> None:
    path = desk(tmp_path, csv)
    found = problems(path)
    inventory = str((tmp_path / "inventory.csv").resolve())
    assert any(p.file == inventory and place in p.place and words in p.message for p in found), (
        found
    )


def test_toml_inventory_problems_name_the_entry_and_key(tmp_path: Path) -> None:
    toml = '[[ci]]\nname = "mail01"\nservices = ["calendar"]\n\n[[ci]]\nkind = "host"\n\n[hosts]\n'
    found = problems(desk(tmp_path, toml, name="inventory.toml"))
    places = {(p.place, p.message.split(" (")[0]) for p in found}
    assert ("[[ci]] 'mail01' key 'services'", "unknown service 'calendar'") in places
    assert ("[[ci]] #2 key 'name'", "is required") in places
    assert ("[hosts]", "unknown section") in places


# --- maildesk ci list | import -------------------------------------------------------------


def test_ci_list_shows_the_inventory(tmp_path: Path) -> None:
    config = desk(tmp_path)
    code, out = run_cli("ci", "list", "--json", "--config", str(config))
    assert code == 0, out
    first = json.loads(out)[0]
    assert first == {
        "name": "mail01",
        "kind": "host",
        "services": ["email"],
        "owner": "bob@example.com",
        "aliases": ["mail01.example.com", "10.0.0.21"],
        "attributes": {"location": "rack 3"},
    }


def test_ci_import_checks_says_what_changes_and_installs(tmp_path: Path) -> None:
    config = desk(tmp_path, None)
    new = tmp_path / "new.csv"
    new.write_text(CSV, encoding="utf-8")
    code, out = run_cli("ci", "import", str(new), "--dry-run", "--json", "--config", str(config))
    assert code == 0, out
    assert json.loads(out)["added"] == ["core-sw1", "mail01"] and not json.loads(out)["written"]
    assert not (tmp_path / "inventory.csv").exists()
    code, out = run_cli("ci", "import", str(new), "--config", str(config))
    assert code == 0 and "added: core-sw1, mail01" in out, out
    assert (tmp_path / "inventory.csv").read_text(encoding="utf-8") == CSV
    new.write_text(
        CSV.replace("rack 3", "rack 4").replace("core-sw1", "core-sw2"), encoding="utf-8"
    )
    code, out = run_cli("ci", "import", str(new), "--json", "--config", str(config))
    changes = json.loads(out)
    assert (changes["added"], changes["removed"], changes["changed"]) == (
        ["core-sw2"],
        ["core-sw1"],
        ["mail01"],
    )


def test_ci_import_refuses_a_bad_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    config = desk(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,services\nmail01,calendar\n", encoding="utf-8")
    code, out = run_cli("ci", "import", str(bad), "--config", str(config))
    assert code == 2 and "line 2 column 'services'" in out and "unknown service 'calendar'" in out
    assert (tmp_path / "inventory.csv").read_text(encoding="utf-8") == CSV
    code, out = run_cli("ci", "import", str(tmp_path / "x.toml"), "--config", str(config))
    assert code == 1 and "not a .csv file" in out
