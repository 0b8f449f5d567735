"""The service catalog by mail over real SMTP, on SQLite and PostgreSQL: the catalog mailed
back, a complete request, an incomplete one completed by reply, approval by the approver's
token, rejection with a reason, N of M, forged answers that change nothing, reminder and
expiry with an injected clock, and the SLA clock paused while awaiting approval."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from maildesk import jobs
from tests.agents import ALICE, CAROL, Mailbox, events, plain_reply
from tests.conftest import Desk, Sink, mail, running_desk, wait_until

ANN, BEN, CEC = "ann@example.net", "ben@example.net", "cec@example.net"
CATALOG = f"""
[[sla_policies]]
name = "standard"
default = true
calendar = "24x7"
first_response = {{ P1 = "1h", P2 = "2h", P3 = "8h", P4 = "16h" }}
resolution = {{ P1 = "4h", P2 = "16h", P3 = "40h", P4 = "80h" }}

[[sla_policies]]
name = "hardware"
calendar = "24x7"
first_response = {{ P1 = "1h", P2 = "3h", P3 = "8h", P4 = "16h" }}
resolution = {{ P1 = "4h", P2 = "5d", P3 = "40h", P4 = "80h" }}

[[catalog]]
name = "software-install"
title = "Software install"
description = "Licensed software on your computer."
queue = "it"
priority = "P4"
fields = [ {{ name = "software", label = "Software", required = true }} ]

[[catalog]]
name = "new-laptop"
title = "New laptop"
description = "A laptop for a new or existing employee."
queue = "it"
priority = "P2"
sla_policy = "hardware"
fields = [ {{ name = "user", label = "For whom", required = true }},
           {{ name = "model", choices = ["standard", "developer"], required = true }} ]
approvers = ["{ANN}"]
approval_timeout = "3d"

[[catalog]]
name = "normal-change"
title = "Normal change"
type = "change"
queue = "infra"
fields = [ {{ name = "summary", label = "Summary", required = true }} ]
approvers = ["{ANN}", "{BEN}", "{CEC}"]
approvals_required = 2
"""


@pytest.fixture
def cat_desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    with running_desk(write_config(db_url, sink.port, extra=CATALOG), sink) as d:
        yield d


def body(message: EmailMessage) -> str:
    return str(message.get_content())


def request(desk: Desk, subject: str, text: str) -> dict:
    count = len(desk.tickets())
    desk.send(mail(subject, text))
    tickets = desk.wait_tickets(count + 1)
    return desk.ticket(tickets[-1]["ref"]) if tickets else {}


def answer(desk: Desk, approval: EmailMessage, text: str, *, sender: str, to: str = "") -> None:
    """An approver's reply to the approval request (to its Reply-To unless `to`)."""
    plain_reply(desk, approval, text, sender=sender, to=to or str(approval["Reply-To"]))


def test_catalog_mail_lists_items_and_opens_no_ticket(cat_desk: Desk) -> None:
    carol = Mailbox(cat_desk, CAROL)
    cat_desk.send(mail("Catalog", ""))
    [listing] = carol.next()
    text = body(listing)
    assert "New laptop" in text and "Software install" in text and "For whom (required)" in text
    assert "Request: New laptop" in text
    assert cat_desk.tickets() == []


def test_a_complete_request_without_approvers_opens_in_its_queue(cat_desk: Desk) -> None:
    alice = Mailbox(cat_desk, ALICE)
    ticket = request(cat_desk, "Request: software install", "Software: Inkscape\nPlease.")
    assert ticket["catalog_item"] == "software-install"
    assert ticket["fields"] == {"software": "Inkscape"}
    assert ticket["queue"] == "it" and ticket["priority"] == "P4" and ticket["status"] == "new"
    assert ticket["approvals"] == []
    [notice] = alice.next()
    assert "Request:  software-install" in body(notice) and "Software: Inkscape" in body(notice)


def test_an_incomplete_request_is_completed_by_reply(cat_desk: Desk) -> None:
    carol, ann = Mailbox(cat_desk, CAROL), Mailbox(cat_desk, ANN)
    ticket = request(cat_desk, "Request: New laptop", "For whom: dana@example.org\n")
    [asked] = carol.next()
    assert "model: missing" in body(asked) and "More details needed" in str(asked["Subject"])
    assert cat_desk.ticket(ticket["ref"])["status"] == "pending"
    plain_reply(cat_desk, asked, "Model: Developer", sender=CAROL)
    wait_until(lambda: cat_desk.ticket(ticket["ref"])["status"] == "awaiting-approval" or None)
    done = cat_desk.ticket(ticket["ref"])
    assert done["fields"] == {"user": "dana@example.org", "model": "developer"}
    [approval] = ann.next()
    assert "Approval needed" in str(approval["Subject"]) and "developer" in body(approval)


def test_approval_by_token_opens_the_ticket(cat_desk: Desk) -> None:
    carol, ann = Mailbox(cat_desk, CAROL), Mailbox(cat_desk, ANN)
    ticket = request(cat_desk, "Request: new-laptop", "For whom: dana\nmodel: standard")
    carol.next()  # the acknowledgement
    [approval] = ann.next()
    assert f"+{ticket['id']}-p" in str(approval["Reply-To"])
    assert cat_desk.ticket(ticket["ref"])["status"] == "awaiting-approval"
    answer(cat_desk, approval, "approve", sender=ANN)
    wait_until(lambda: cat_desk.ticket(ticket["ref"])["status"] == "open" or None)
    [told] = carol.next()
    assert "Approved" in str(told["Subject"])
    [row] = cat_desk.ticket(ticket["ref"])["approvals"]
    assert row["approver"] == ANN and row["decision"] == "approved"
    assert row["via"] == "the approver's reply token" and row["at"]
    [event] = events(cat_desk, ticket["ref"], "approval_approved")
    assert event["actor"] == ANN


def test_rejection_closes_with_the_reason(cat_desk: Desk) -> None:
    carol, ann = Mailbox(cat_desk, CAROL), Mailbox(cat_desk, ANN)
    ticket = request(cat_desk, "Request: new laptop", "For whom: dana\nmodel: standard")
    carol.next()
    [approval] = ann.next()
    answer(cat_desk, approval, "reject not in this year's budget", sender=ANN)
    wait_until(lambda: cat_desk.ticket(ticket["ref"])["status"] == "closed" or None)
    [told] = carol.next()
    assert "Not approved" in str(told["Subject"]) and "budget" in body(told)
    [row] = cat_desk.ticket(ticket["ref"])["approvals"]
    assert row["decision"] == "rejected" and "budget" in row["comment"]


def test_two_of_three_approve_a_change(cat_desk: Desk) -> None:
    boxes = {a: Mailbox(cat_desk, a) for a in (ANN, BEN, CEC)}
    ticket = request(cat_desk, "Request: Normal change", "Summary: patch the firewall")
    assert ticket["type"] == "change" and ticket["queue"] == "infra"
    mails = {a: box.next()[0] for a, box in boxes.items()}
    answer(cat_desk, mails[ANN], "#approve", sender=ANN)
    wait_until(lambda: events(cat_desk, ticket["ref"], "approval_approved") or None)
    assert cat_desk.ticket(ticket["ref"])["status"] == "awaiting-approval"
    answer(cat_desk, mails[CEC], "Approve\n\nlooks fine", sender=CEC)
    wait_until(lambda: cat_desk.ticket(ticket["ref"])["status"] == "open" or None)
    decisions = {r["approver"]: r["decision"] for r in cat_desk.ticket(ticket["ref"])["approvals"]}
    assert decisions == {ANN: "approved", BEN: "pending", CEC: "approved"}


def test_forged_approvals_change_nothing(cat_desk: Desk) -> None:
    boxes = {a: Mailbox(cat_desk, a) for a in (ANN, BEN, CEC)}
    ticket = request(cat_desk, "Request: Normal change", "Summary: patch the firewall")
    mails = {a: box.next()[0] for a, box in boxes.items()}
    ref = ticket["ref"]
    # The right From, but to the plain support address: no token.
    answer(cat_desk, mails[ANN], "approve", sender=ANN, to="support@example.com")
    # Ben answers with Ann's token.
    answer(cat_desk, mails[ANN], "approve", sender=BEN)
    # Ann's token with a stranger's From.
    answer(cat_desk, mails[ANN], "approve", sender="mallory@evil.example")
    wait_until(lambda: len(events(cat_desk, ref, "approval_refused")) >= 2 or None)
    cat_desk.wait_processed(4)
    after = cat_desk.ticket(ref)
    assert after["status"] == "awaiting-approval"
    assert {r["decision"] for r in after["approvals"]} == {"pending"}
    reasons = [e["data"]["reason"] for e in events(cat_desk, ref, "approval_refused")]
    assert any("neither their reply token" in r for r in reasons)
    assert any("not ben@example.net's" in r for r in reasons)


def test_reminder_then_expiry_with_an_injected_clock(cat_desk: Desk) -> None:
    carol, ann = Mailbox(cat_desk, CAROL), Mailbox(cat_desk, ANN)
    ticket = request(cat_desk, "Request: new laptop", "For whom: dana\nmodel: standard")
    carol.next()
    ann.next()
    now = cat_desk.app.now()
    assert jobs.check_approvals(cat_desk.app, now + timedelta(days=1)) == 0
    assert jobs.check_approvals(cat_desk.app, now + timedelta(days=3, minutes=1)) == 1
    # Queued at the injected time (the outbox sends it when that time comes).
    assert cat_desk.count_of("outbox", "WHERE kind = 'approval_reminder'") == 1
    [reminded] = events(cat_desk, ticket["ref"], "approval_reminded")
    assert reminded["data"]["approver"] == ANN
    assert jobs.check_approvals(cat_desk.app, now + timedelta(days=4)) == 0  # reminded once
    assert jobs.check_approvals(cat_desk.app, now + timedelta(days=6, minutes=1)) == 1
    assert cat_desk.count_of("outbox", "WHERE kind = 'request_expired'") == 1
    after = cat_desk.ticket(ticket["ref"])
    assert after["status"] == "closed"
    assert [r["decision"] for r in after["approvals"]] == ["expired"]


def test_the_sla_clock_stands_still_while_awaiting_approval(cat_desk: Desk) -> None:
    ticket = request(cat_desk, "Request: new laptop", "For whom: dana\nmodel: standard")
    ref = ticket["ref"]
    shown = cat_desk.ticket(ref)
    assert shown["status"] == "awaiting-approval" and shown["sla_policy"] == "hardware"
    [row] = [r for r in cat_desk.json("sla", "--all") if r["ref"] == ref]
    assert row["state"] == "paused", row
    [change] = [
        e for e in events(cat_desk, ref, "status") if e["data"]["to"] == "awaiting-approval"
    ]
    assert change["data"]["from"] == "new"


def test_cli_lists_the_catalog_and_waiting_approvals_and_decides(cat_desk: Desk) -> None:
    code, out = cat_desk.cli("catalog", "--json")
    assert code == 0, out
    items = {i["name"]: i for i in cat_desk.json("catalog")}
    assert items["normal-change"]["approvers"] == [ANN, BEN, CEC]
    assert items["new-laptop"]["fields"][1]["choices"] == ["standard", "developer"]
    carol = Mailbox(cat_desk, CAROL)
    ticket = request(cat_desk, "Request: new laptop", "For whom: dana\nmodel: standard")
    carol.next()
    [waiting] = cat_desk.json("approvals")
    assert waiting["ref"] == ticket["ref"] and waiting["approver"] == ANN
    assert waiting["age_hours"] >= 0
    code, out = cat_desk.cli("ticket", "approve", ticket["ref"], "--as", BEN)
    assert code != 0 and "not an approver" in out
    code, out = cat_desk.cli("ticket", "reject", ticket["ref"], "--as", ANN, "-m", "no budget")
    assert code == 0, out
    after = cat_desk.ticket(ticket["ref"])
    assert after["status"] == "closed"
    [row] = after["approvals"]
    assert row["decision"] == "rejected" and row["comment"] == "no budget"
    assert row["via"].startswith("command line")
    assert cat_desk.json("approvals") == []
