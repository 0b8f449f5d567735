"""Contacts with several addresses, organisations by mail domain, and who the command line
acts as: `maildesk contacts`, `contact show|merge`, `[[organisations]]` in routing and
notices, `--as` recorded with the OS user and limited by `[security] cli_agents`."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path

from tests.agents import ALICE, CAROL, Mailbox, events, open_ticket, plain_reply
from tests.conftest import Desk, Sink, mail, running_desk, wait_until

HOME = "carol@home.example"


def test_merged_contact_is_one_requester_and_strangers_stay_out(desk: Desk) -> None:
    work = open_ticket(desk, "VPN drops")
    home = open_ticket(desk, "Laptop fan loud", sender=f"Carol <{HOME}>")
    assert desk.ticket(home.ref)["requester"] == HOME

    code, out = desk.cli("contact", "merge", CAROL, HOME)
    assert code == 0, out
    assert f"merged {HOME} into {CAROL}" in out and f"tickets moved to {CAROL}: {home.ref}" in out
    assert desk.ticket(home.ref)["requester"] == CAROL
    [moved] = events(desk, home.ref, "requester")
    assert (moved["via"], moved["data"]["from"], moved["data"]["to"]) == ("cli", HOME, CAROL)
    assert moved["data"]["os_user"] == getpass.getuser()

    [contact] = desk.json("contacts")
    assert (contact["email"], contact["addresses"], contact["tickets"]) == (CAROL, [CAROL, HOME], 2)
    shown = desk.json("contact", "show", HOME)
    assert shown["email"] == CAROL
    assert {t["ref"] for t in shown["tickets"]} == {work.ref, home.ref}

    for again in ((CAROL, HOME), (HOME, CAROL)):  # idempotent, either way round
        code, out = desk.cli("contact", "merge", *again)
        assert code == 0 and "nothing to do" in out, out
    assert len(events(desk, home.ref, "requester")) == 1

    # Mail from the other address is the same requester: a new ticket is Carol's ...
    before = len(desk.tickets())
    desk.send(mail("Monitor flickers", sender=f"Carol <{HOME}>"))
    newest = desk.wait_tickets(before + 1)[0]
    assert newest["requester"] == CAROL

    # ... and her reply from it reopens her resolved ticket, as the requester.
    code, out = desk.cli("ticket", "set", work.ref, "status=resolved")
    assert code == 0, out
    plain_reply(desk, work.ack, "Still dropping, sorry.", sender=HOME)
    wait_until(lambda: desk.ticket(work.ref)["status"] == "open")
    assert events(desk, work.ref, "stranger") == []

    # A stranger holding the same acknowledgement still changes nothing.
    desk.send(mail("x", sender="dave@example.net"))  # dave is a contact too, not Carol's
    code, out = desk.cli("ticket", "set", work.ref, "status=resolved")
    assert code == 0, out
    plain_reply(desk, work.ack, "I am Carol, honestly.", sender="dave@example.net")
    wait_until(lambda: events(desk, work.ref, "stranger"))
    assert desk.ticket(work.ref)["status"] == "resolved"


def test_contact_commands_refuse_what_they_cannot_do(desk: Desk) -> None:
    code, out = desk.cli("contact", "show", "nobody@example.org")
    assert code == 1 and "no contact has the address nobody@example.org" in out
    code, out = desk.cli("contact", "merge", "nobody@example.org", "x@example.org")
    assert code == 1 and "no contact" in out
    open_ticket(desk)
    code, out = desk.cli("contact", "merge", CAROL, "not an address")
    assert code == 1 and "is not an email address" in out
    # An address that never wrote becomes one of Carol's: its first mail is hers.
    code, out = desk.cli("contact", "merge", CAROL, "Carol@Phone.Example")
    assert code == 0 and "tickets moved to carol@example.org: none" in out, out
    assert desk.json("contact", "show", "carol@phone.example")["email"] == CAROL


ORGS = """
[[sla_policies]]
name = "standard"
default = true
calendar = "24x7"
first_response = { P3 = "8h" }

[[sla_policies]]
name = "gold"
calendar = "24x7"
first_response = { P3 = "30m" }

[[organisations]]
name = "Example Net"
domains = ["example.net"]
vip = true
queue = "infra"
sla_policy = "gold"
notes = "Contract 17"

[[rules]]
name = "vip organisations"
when = { field = "organisation_is_vip", is = true }
set = { tags = ["vip"] }

[[rules]]
name = "laptops to it"
match = { subject = "(?i)laptop" }
set = { queue = "it" }
"""


def test_organisation_routes_picks_its_policy_and_shows_in_notices(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    with running_desk(write_config(db_url, sink.port, extra=ORGS), sink) as desk:
        bob = Mailbox(desk, "bob@example.com")
        desk.send(mail("Printer jammed", sender="Dana <dana@it.example.net>"))
        [ticket] = desk.wait_tickets(1)
        assert (ticket["queue"], ticket["organisation"], ticket["tags"]) == (
            "infra",  # the organisation's queue: no rule set one
            "Example Net",
            ["vip"],
        )
        assert ticket["sla_policy"] == "gold"  # no rule picked a policy: the organisation's
        [notice] = bob.next()
        text = notice.get_body(("plain",)).get_content()
        assert "Org:      Example Net (VIP)" in text
        [routed] = events(desk, ticket["ref"], "routed")
        assert routed["data"]["organisation"] == "Example Net"

        desk.send(mail("Laptop broken", sender="dana@example.net"))
        laptop = desk.wait_tickets(2)[0]
        assert (laptop["queue"], laptop["sla_policy"]) == ("it", "gold")  # the rule's queue wins

        code, out = desk.cli("ticket", "set", ticket["ref"], "queue=it")
        assert code == 0, out
        assert desk.ticket(ticket["ref"])["sla_policy"] == "gold"  # before the queue's

        orgs = {c["email"]: (c["organisation"], c["vip"]) for c in desk.json("contacts")}
        assert orgs == {
            "dana@it.example.net": ("Example Net", True),
            "dana@example.net": ("Example Net", True),
        }
        code, out = desk.cli("contact", "show", "dana@example.net")
        assert "organisation Example Net (VIP): Contract 17" in out


def test_as_records_the_os_user_beside_the_agent(desk: Desk) -> None:
    opened = open_ticket(desk)
    code, out = desk.cli("ticket", "note", opened.ref, "--as", "alice", "-m", "Vendor case 4711.")
    assert code == 0, out
    [note] = events(desk, opened.ref, "note")
    assert note["actor"] == ALICE
    assert (note["data"]["agent"], note["data"]["os_user"]) == (ALICE, getpass.getuser())


def test_cli_agents_limit_which_os_user_acts_as_whom(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    me = getpass.getuser()
    extra = f'\n[security]\ncli_agents = {{ "{me}" = ["bob@example.com"] }}\n'
    with running_desk(write_config(db_url, sink.port, extra=extra), sink) as desk:
        opened = open_ticket(desk)
        stored = len(desk.ticket(opened.ref)["messages"])
        for command in (("note", "-m", "x"), ("reply", "-m", "x")):
            code, out = desk.cli("ticket", command[0], opened.ref, "--as", "alice", *command[1:])
            assert code == 1, out
            assert f"OS user {me!r} may not act as alice@example.com" in out
        code, out = desk.cli("ticket", "set", opened.ref, "priority=P1", "--as", "alice")
        assert code == 1 and "may not act as" in out
        assert desk.ticket(opened.ref)["priority"] == "P3"  # nothing changed
        assert len(desk.ticket(opened.ref)["messages"]) == stored  # no note, no reply

        code, out = desk.cli("ticket", "set", opened.ref, "priority=P1", "--as", "bob")
        assert code == 0, out
        [changed] = events(desk, opened.ref, "priority")
        assert (changed["actor"], changed["data"]["os_user"]) == ("bob@example.com", me)
