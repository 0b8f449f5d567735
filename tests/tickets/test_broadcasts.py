"""`#broadcast <text>`: parsed, checked against the ticket and the services (no database:
the ticket is a transient row), and who its mail goes to (maildesk.tickets.broadcasts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maildesk.app import App
from maildesk.config import load_config
from maildesk.notify.broadcast import public_ticket
from maildesk.store.models import Ticket, TicketCi
from maildesk.tickets import broadcasts
from maildesk.tickets.commands import AgentRef, CommandContext, parse_reply
from tests.config.test_config import MINIMAL, write

CTX = CommandContext(
    actor="alice@example.com",
    queues=["it", "infra"],
    agents=[AgentRef(email="alice@example.com", name="Alice")],
    ref_prefix="MD",
)
SERVICES = """
[[services]]
name = "network"
queue = "infra"
subscribers = ["it-ops@example.com", "support@example.com"]

[[services]]
name = "web"
queue = "infra"
depends_on = ["network"]
subscribers = ["web-users@example.com", "all-staff@example.com"]

[[services]]
name = "shop"
queue = "infra"
depends_on = ["web"]
subscribers = ["all-staff@example.com", "shop-team@example.com"]

[[services]]
name = "printing"
queue = "it"

[[services]]
name = "fax"
queue = "it"
depends_on = ["printing"]

[cmdb]
path = "inventory.csv"
"""
INVENTORY = "name,kind,services\nweb1,host,web\nprn1,printer,printing\nsw1,switch,network\n"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    (tmp_path / "inventory.csv").write_text(INVENTORY, encoding="utf-8")
    database = f'\n[database]\nurl = "sqlite:///{tmp_path / "desk.db"}"\n'
    built = App.build(load_config(write(tmp_path, MINIMAL + database + SERVICES)), migrate=False)
    yield built
    built.close()


def ticket(*cis: tuple[str, list[str]], type_: str = "incident", status: str = "open") -> Ticket:
    t = Ticket(id=7, type=type_, status=status, service=None)
    t.ci_links = [TicketCi(ci=name, services=services) for name, services in cis]
    return t


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("#broadcast", "needs the text for the subscribers"),
        ("#broadcast   ", "needs the text for the subscribers"),
        ("# broadcast: ", "needs the text for the subscribers"),
        ("#broadcast " + "x" * 4001, "a broadcast line is at most 4000 characters"),
        ("Text first.\n#broadcast Late.", "commands go at the top of the reply"),
    ],
)
def test_parse_errors(text: str, problem: str) -> None:
    [error] = parse_reply(text, CTX).errors
    assert problem in error.reason


def test_broadcast_lines_parse_to_their_text() -> None:
    parsed = parse_reply("#broadcast Mail is down.\n#Broadcast: Next update at 10:00\nHi", CTX)
    assert parsed.errors == ()
    assert [(c.name, c.value) for c in parsed.commands] == [
        ("broadcast", "Mail is down."),
        ("broadcast", "Next update at 10:00"),
    ]
    assert parsed.text == "Hi"


WEB = ("web1", ["web"])


@pytest.mark.parametrize(
    ("target", "reply", "problem"),
    [
        (ticket(WEB), "#broadcast Down.", None),
        (ticket(type_="incident"), "#ci web1\n#broadcast Down.", None),  # the #ci counts
        (ticket(WEB, type_="request"), "#type incident\n#broadcast Down.", None),
        (ticket(WEB, status="resolved"), "#status open\n#broadcast Down again.", None),
        (ticket(WEB, type_="request"), "#broadcast Down.", "only an incident is broadcast, and "),
        (ticket(WEB), "#type problem\n#broadcast Down.", "MD-7 is a problem (#type incident"),
        (ticket(WEB, status="resolved"), "#broadcast Down.", "MD-7 is resolved: reopen it"),
        (ticket(WEB, status="merged"), "#broadcast Down.", "MD-7 is merged"),
        (ticket(WEB), "#status closed\n#broadcast Bye.", "MD-7 is closed"),
        (ticket(), "#broadcast Down.", "MD-7 is about no service: link the CI"),
        (ticket(WEB), "#ci -WEB1\n#broadcast Down.", "MD-7 is about no service"),  # unlinked
        (ticket(WEB), "#ci -web1 prn1\n#broadcast Down.", "MD-7 is about printing, and"),
        (
            ticket(("prn1", ["printing"])),
            "#broadcast Down.",
            "no subscriber to tell: MD-7 is about printing, and neither",
        ),
    ],
)
def test_checks(app: App, target: Ticket, reply: str, problem: str | None) -> None:
    parsed = parse_reply(reply, CTX)
    assert parsed.errors == ()
    errors = broadcasts.check(app, target, parsed.commands)
    if problem is None:
        assert errors == []
    else:
        [error] = errors
        assert problem in error.reason, error.reason
        assert error.text.lower().startswith("#broadcast")


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        (["shop"], ["all-staff@example.com", "shop-team@example.com"]),
        (
            ["web"],
            ["web-users@example.com", "all-staff@example.com", "shop-team@example.com"],
        ),
        (
            ["shop", "network"],  # config order, each once, never the desk's own address
            [
                "it-ops@example.com",
                "web-users@example.com",
                "all-staff@example.com",
                "shop-team@example.com",
            ],
        ),
        (["printing"], []),
        (["nonesuch"], []),
    ],
)
def test_subscribers_of_the_affected_services(
    app: App, services: list[str], expected: list[str]
) -> None:
    assert broadcasts.subscribers(app, services) == expected


def test_subscribers_see_nothing_of_the_ticket_but_what_it_is() -> None:
    full = {
        "ref": "MD-7",
        "subject": "web1 down",
        "status": "open",
        "requester": "carol@example.org",
        "watchers": ["dave@example.org"],
        "reply_address": "support+abc123@example.com",
        "vip": True,
        "alert": {"monitor": "nagios"},
        "response_due": None,
    }
    assert public_ticket(full) == {
        "ref": "MD-7",
        "subject": "web1 down",
        "status": "open",
        "requester": "",
        "watchers": [],
        "reply_address": "",
        "vip": False,
        "alert": {},
        "response_due": None,
    }
