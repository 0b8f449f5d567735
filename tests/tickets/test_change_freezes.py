"""Which `#schedule` a `[[change_freeze]]` limited to services refuses: a change touches a
service through its own services (a rule's, its CIs') and through the services that
depend on them; with `queues` too, a change must match both. The `#ci` lines of the same
reply count, as `ticket set ID cis=... window=...` does."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from maildesk.app import App
from maildesk.config import load_config
from maildesk.store.models import Ticket, TicketCi
from maildesk.tickets import changes
from maildesk.tickets.commands import parse_reply
from maildesk.tickets.replies import command_context

CONFIG = """
[desk]
address = "support@example.com"

[database]
url = "sqlite:///{db}"

[[agents]]
email = "alice@example.com"
queues = ["it", "infra"]

[[queues]]
name = "it"
default = true

[[queues]]
name = "infra"

[[services]]
name = "email"
queue = "infra"
depends_on = ["network"]

[[services]]
name = "network"
queue = "infra"

[[services]]
name = "printing"
queue = "it"

[cmdb]
path = "inventory.csv"

[[change_freeze]]
name = "mail migration"
start = "2026-12-10T00:00"
end = "2026-12-11T00:00"
services = ["email"]

[[change_freeze]]
name = "core network"
start = "2026-12-12T00:00"
end = "2026-12-13T00:00"
queues = ["infra"]
services = ["network"]
"""
INVENTORY = """\
name,kind,services,owner,aliases
mail01,host,email,,mail01.example.com
core-sw1,switch,network,,AT-00101
prn1,printer,printing,,
"""
MAIL_DAY = "#schedule 2026-12-10 22:00 23:00"  # in "mail migration"
NETWORK_DAY = "#schedule 2026-12-12 22:00 23:00"  # in "core network"


@pytest.fixture
def app(tmp_path: Path, sqlite_template: Path) -> Iterator[App]:
    db = tmp_path / "maildesk.db"
    shutil.copyfile(sqlite_template, db)
    (tmp_path / "inventory.csv").write_text(INVENTORY, encoding="utf-8")
    path = tmp_path / "maildesk.toml"
    path.write_text(CONFIG.format(db=db), encoding="utf-8")
    built = App.build(load_config(path))
    yield built
    built.close()


def change(queue: str, cis: list[str], service: str | None = None) -> Ticket:
    """A change (not stored: the check needs none) linked to CIs as the inventory has them."""
    services = {"mail01": ["email"], "core-sw1": ["network"], "prn1": ["printing"]}
    links = [
        TicketCi(ci=ci, services=services[ci], source="agent", added_by="alice@example.com")
        for ci in cis
    ]
    return Ticket(type="change", status="open", queue=queue, service=service, ci_links=links)


@pytest.mark.parametrize(
    ("queue", "cis", "service", "reply", "refused"),
    [
        # the service itself
        ("it", ["mail01"], None, MAIL_DAY, '"mail migration" (Thu 10 Dec 00:00 to Fri 11 Dec'),
        ("it", ["mail01"], None, MAIL_DAY, 'of the service "email"; choose another window'),
        ("it", [], "email", MAIL_DAY, 'of the service "email"'),  # a rule's service
        # a service that depends on what the change touches
        (
            "it",
            ["core-sw1"],
            None,
            MAIL_DAY,
            'of the service "email" (this change touches "network", which "email" depends on)',
        ),
        # another service, or none
        ("it", ["prn1"], None, MAIL_DAY, None),
        ("it", [], None, MAIL_DAY, None),
        ("infra", ["prn1", "mail01"], None, MAIL_DAY, '"mail migration"'),
        # queues and services: each narrows
        ("infra", ["core-sw1"], None, NETWORK_DAY, 'freeze "core network"'),
        ("it", ["core-sw1"], None, NETWORK_DAY, None),
        ("infra", ["prn1"], None, NETWORK_DAY, None),
        ("infra", ["mail01"], None, NETWORK_DAY, None),  # email depends on network, not back
        ("it", ["prn1"], None, f"#queue infra\n{NETWORK_DAY}\n#ci at-00101", '"core network"'),
        # the #ci lines of the same reply, whichever comes first
        ("it", ["prn1"], None, f"#ci mail01.example.com\n{MAIL_DAY}", '"mail migration"'),
        ("it", ["prn1"], None, f"{MAIL_DAY}\n#ci AT-00101", 'touches "network"'),
        ("it", ["mail01"], None, f"#ci -mail01 prn1\n{MAIL_DAY}", None),
        ("it", ["mail01"], None, "#schedule 2026-12-09 22:00 23:00", None),  # outside it
    ],
)
def test_a_freeze_of_services_refuses_only_changes_that_touch_them(
    app: App, queue: str, cis: list[str], service: str | None, reply: str, refused: str | None
) -> None:
    parsed = parse_reply(reply, command_context(app, "alice@example.com"))
    assert not parsed.errors
    errors = changes.check(app, change(queue, cis, service), parsed.commands)
    if refused is None:
        assert errors == []
    else:
        [error] = errors
        assert refused in error.reason, error.reason
        assert error.text.startswith("#schedule")
