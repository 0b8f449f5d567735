"""Major incident communication over real SMTP into the running desk, on SQLite and
PostgreSQL, counted at the smarthost: an agent's `#broadcast` on a monitor's incident
reaches each subscriber of the affected services (the host's service and the one that
depends on it) once, threaded per incident; a subscriber's reply opens a ticket of its
own; the recovery sends one all-clear each, and only once. A requester who subscribes is
told once, on their own thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from maildesk.app import App
from maildesk.store.db import transaction
from maildesk.store.models import Ticket
from maildesk.terms import Status
from maildesk.tickets import lifecycle
from maildesk.tickets.lifecycle import Actor
from tests.agents import Mailbox, plain_reply, received, reply
from tests.conftest import Desk, Sink, mail, running_desk, wait_until
from tests.e2e.test_alerts_e2e import fixture_mail

BOB = "bob@example.com"
CAROL = "carol@example.org"
NAGIOS = "nagios@mon.example.com"
# In config order: web's, then shop's (shop depends on web); all-staff once.
SUBSCRIBERS = ["web-users@example.com", "all-staff@example.com", "shop-team@example.com", CAROL]
SERVICES = f"""
[[services]]
name = "network"
queue = "infra"
subscribers = ["it-ops@example.com"]

[[services]]
name = "web"
queue = "infra"
depends_on = ["network"]
subscribers = ["web-users@example.com", "all-staff@example.com", "support@example.com"]

[[services]]
name = "shop"
queue = "infra"
depends_on = ["web"]
subscribers = ["shop-team@example.com", "all-staff@example.com", "{CAROL}"]

[[services]]
name = "printing"
queue = "it"

[cmdb]
path = "inventory.csv"

[[monitors]]
name = "nagios"
when = {{ field = "from", equals = "{NAGIOS}" }}
format = "nagios"
queue = "infra"
priority = {{ CRITICAL = "P1" }}
"""
INVENTORY = """\
name,kind,services,owner,aliases
web1,host,web,bob@example.com,192.0.2.10
core-sw1,switch,network,bob@example.com,
prn1,printer,printing,,
"""


@pytest.fixture
def served(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    config = write_config(db_url, sink.port, extra=SERVICES)
    (config.parent / "inventory.csv").write_text(INVENTORY, encoding="utf-8")
    with running_desk(config, sink) as d:
        yield d


def events(desk: Desk, ref: str, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in desk.ticket(ref)["events"] if e["kind"] == kind]


def boxes(desk: Desk, *addresses: str) -> dict[str, Mailbox]:
    return {a: Mailbox(desk, a) for a in addresses}


def one_each(mailboxes: dict[str, Mailbox]) -> dict[str, EmailMessage]:
    """The next mail of each mailbox, and then nothing more."""
    got = {a: box.next()[0] for a, box in mailboxes.items()}
    assert all(box.nothing_new() for box in mailboxes.values())
    return got


def assert_subscriber_mail(msg: EmailMessage, address: str, ref: str, root: str) -> None:
    """To that subscriber alone, from the plain desk address, marked bulk, threaded."""
    assert msg.get_all("To") == [address] and msg["Cc"] is None, msg["To"]
    assert str(msg["Reply-To"]) == "support@example.com"  # no reply token
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Precedence"] == "bulk"
    assert msg["In-Reply-To"] == root and str(msg["References"]).split() == [root]
    assert str(msg["Subject"]).startswith(f"[{ref}] ")


def test_broadcasts_reach_each_subscriber_once_and_the_recovery_clears_them(
    served: Desk,
) -> None:
    bob = Mailbox(served, BOB)
    served.send(fixture_mail("nagios_service_problem.eml"))  # web1/HTTP is CRITICAL
    [ticket] = served.wait_tickets(1)
    ref = ticket["ref"]
    assert (ticket["type"], ticket["services"]) == ("incident", ["web"])
    [notice] = bob.next()
    reply(served, notice, "#note the root password is hunter2", sender=BOB)
    bob.next()  # the receipt
    subscribers = boxes(served, *SUBSCRIBERS)
    others = boxes(served, "it-ops@example.com", NAGIOS, "support@example.com")

    reply(served, notice, "#broadcast The web shop is down; next update at 10:00.", sender=BOB)
    first = one_each(subscribers)
    [receipt] = bob.next()
    assert "broadcast to 4 subscribers (web, shop)" in receipt.get_content()
    [event] = events(served, ref, "broadcast")
    root = event["root"]
    assert event["text"] == "The web shop is down; next update at 10:00."
    assert (event["services"], event["recipients"], event["to"]) == (
        ["web", "shop"],
        4,
        SUBSCRIBERS,
    )
    for address, msg in first.items():
        assert_subscriber_mail(msg, address, ref, root)
        assert str(msg["Subject"]) == f"[{ref}] Service notice: web, shop — web1/HTTP is CRITICAL"
        body = msg.get_content()
        assert "The web shop is down; next update at 10:00." in body
        assert "hunter2" not in body and NAGIOS not in body and "+" not in body
    assert len({m["Message-ID"] for m in first.values()}) == 4

    reply(served, notice, "#broadcast A fix is being deployed.", sender=BOB)
    second = one_each(subscribers)
    for address, msg in second.items():
        assert_subscriber_mail(msg, address, ref, root)  # the same thread as the first
        assert msg["Message-ID"] != first[address]["Message-ID"]
    assert [e["root"] for e in events(served, ref, "broadcast")] == [root, root]

    # A subscriber answers: a ticket of their own, linked; the incident gains nothing.
    plain_reply(served, second["web-users@example.com"], "Still down here.", sender=SUBSCRIBERS[0])
    tickets = served.wait_tickets(2)
    own = next(t for t in tickets if t["ref"] != ref)
    assert own["requester"] == "web-users@example.com"
    incident = served.ticket(ref)
    assert all(m["from"] != "web-users@example.com" for m in incident["messages"])
    assert "web-users@example.com" not in incident.get("watchers", [])
    assert [e["data"]["ticket"] for e in incident["events"] if e["kind"] == "linked"] == [
        own["ref"]
    ]
    # An out-of-office answering the notice opens nothing and tells nobody.
    before = len(served.raw_statuses())
    plain_reply(
        served,
        second["shop-team@example.com"],
        "I am away until Monday.",
        sender="shop-team@example.com",
        headers={"Auto-Submitted": "auto-replied"},
    )
    assert served.wait_processed(before + 1)[-1] == "ignored"
    assert len(served.tickets()) == 2
    served.send(fixture_mail("nagios_service_recovery.eml"))
    wait_until(lambda: served.ticket(ref)["status"] == "resolved" or None)
    subscribers["web-users@example.com"].next()  # the acknowledgement of their own ticket
    cleared = one_each(subscribers)
    for address, msg in cleared.items():
        assert_subscriber_mail(msg, address, ref, root)
        assert str(msg["Subject"]).startswith(f"[{ref}] Service restored: web, shop — ")
    [done] = events(served, ref, "broadcast_all_clear")
    assert (done["recipients"], done["to"], done["root"]) == (4, SUBSCRIBERS, root)

    # Alerting and recovering again without a new broadcast tells nobody anything more.
    served.send(fixture_mail("nagios_service_problem.eml"))
    wait_until(lambda: served.ticket(ref)["status"] == "open" or None)
    served.send(fixture_mail("nagios_service_recovery.eml"))
    wait_until(lambda: served.ticket(ref)["status"] == "resolved" or None)
    assert all(box.nothing_new() for box in subscribers.values())
    assert len(events(served, ref, "broadcast_all_clear")) == 1
    assert all(box.nothing_new() for box in others.values())


def test_a_requester_who_subscribes_is_told_once_on_their_own_thread(served: Desk) -> None:
    carol = Mailbox(served, CAROL)
    served.send(mail("Shop down", "web1 answers nothing since 9:00."))
    [ticket] = served.wait_tickets(1)
    ref = ticket["ref"]
    assert (ticket["type"], ticket["services"]) == ("incident", ["web"])
    [ack] = carol.next()
    others = boxes(served, *SUBSCRIBERS[:3])

    code, out = served.cli("ticket", "broadcast", ref, "-m", "Shop is down.", "--as", BOB)
    assert code == 0 and "broadcast to 3 subscribers and the requester (web, shop)" in out, out
    [update] = carol.next()
    assert "+" in str(update["Reply-To"]) and update["In-Reply-To"] == ack["Message-ID"]
    assert "Shop is down." in update.get_content()
    first = one_each(others)
    [event] = events(served, ref, "broadcast")
    assert (event["recipients"], event["to"], event["requester"]) == (4, SUBSCRIBERS[:3], True)
    assert all(m["Precedence"] == "bulk" for m in first.values())

    code, out = served.cli("ticket", "set", ref, "status=resolved", "--as", BOB)
    assert code == 0, out
    cleared = one_each(others)
    assert all("Service restored" in str(m["Subject"]) for m in cleared.values())
    [resolved] = carol.next()  # the usual resolved notice, not an all-clear
    assert "Resolved:" in str(resolved["Subject"]) and carol.nothing_new()
    assert len(received(served, CAROL)) == 3


def test_resolving_the_problem_behind_the_incident_sends_its_all_clear(served: Desk) -> None:
    served.send(mail("Shop down", "web1 answers nothing.", sender="dave@example.org"))
    [ticket] = served.wait_tickets(1)
    ref = ticket["ref"]
    subscribers = boxes(served, *SUBSCRIBERS)
    code, out = served.cli("ticket", "broadcast", ref, "-m", "Shop is down.", "--as", BOB)
    assert code == 0, out
    one_each(subscribers)
    code, out = served.cli("ticket", "set", ref, "problem=new", "--as", BOB)
    assert code == 0, out
    problem = served.ticket(ref)["problem"]
    code, out = served.cli("ticket", "set", problem, "status=resolved", "--as", BOB)
    assert code == 0, out
    assert served.ticket(ref)["status"] == "resolved"
    cleared = one_each(subscribers)
    assert all("Service restored: web, shop" in str(m["Subject"]) for m in cleared.values())
    [done] = events(served, ref, "broadcast_all_clear")
    assert done["recipients"] == 4 and events(served, problem, "broadcast_all_clear") == []
    code, text = served.cli("ticket", "show", ref)
    assert code == 0 and "broadcast to 4 (web, shop): Shop is down." in text, text
    assert "all-clear to 4 (web, shop)" in text
    notified = ", ".join(SUBSCRIBERS)
    assert "out broadcast_all_clear" in text and f"notified {notified}" in text, text


def test_a_broadcast_that_cannot_go_is_refused_with_an_error_mail(served: Desk) -> None:
    alice = Mailbox(served, "alice@example.com")
    served.send(mail("Printer jam", "prn1 eats paper."))  # printing: no subscribers
    [jam] = alice.next()
    served.send(mail("Laptop slow", "Since this morning.", sender="dave@example.org"))
    [slow] = alice.next()
    tickets = {t["subject"]: t["ref"] for t in served.wait_tickets(2)}
    printer, laptop = tickets["Printer jam"], tickets["Laptop slow"]
    for answering, words, reason in [
        (jam, "#type request\n#broadcast Out.", f"only an incident is broadcast, and {printer} "),
        (jam, "#broadcast", "needs the text for the subscribers"),
        (jam, "#broadcast Printing is out.", f"no subscriber to tell: {printer} is about printing"),
        (slow, "#broadcast Slow.", f"{laptop} is about no service: link the CI"),
    ]:
        reply(served, answering, words, sender="alice@example.com")
        [error] = alice.next()
        assert "Commands not applied" in str(error["Subject"]), error["Subject"]
        assert reason in error.get_content(), error.get_content()
    assert served.ticket(printer)["type"] == "incident"  # nothing was applied
    assert events(served, printer, "broadcast") == events(served, laptop, "broadcast") == []

    # The CI linked in the same reply is what the broadcast goes by: the network, and the
    # services that depend on it, however far.
    it_ops = Mailbox(served, "it-ops@example.com")
    reply(served, slow, "#ci core-sw1\n#broadcast The network is slow.", sender="alice@example.com")
    [notice] = it_ops.next()
    assert "The network is slow." in notice.get_content() and it_ops.nothing_new()
    [event] = events(served, laptop, "broadcast")
    assert (event["services"], event["to"]) == (
        ["network", "web", "shop"],
        ["it-ops@example.com", *SUBSCRIBERS],
    )


def test_two_daemons_resolving_one_incident_at_once_send_one_all_clear(served: Desk) -> None:
    """Two transactions resolve the broadcast incident at the same moment (two daemons, or
    a recovery and `ticket set`): the second waits for the first, sees its all-clear, and
    sends none. On SQLite, with one writer, they run one after the other."""
    served.send(mail("Shop down", "web1 answers nothing.", sender="dave@example.org"))
    [ticket] = served.wait_tickets(1)
    ref = ticket["ref"]
    code, out = served.cli("ticket", "broadcast", ref, "-m", "Shop is down.", "--as", BOB)
    assert code == 0, out
    app, number = served.app, int(ref.rpartition("-")[2])
    postgres = app.engine.dialect.name == "postgresql"
    first_holds, errors = threading.Event(), []

    def resolve(name: str, wait_for: threading.Event | None) -> None:
        try:
            with transaction(app.sessions) as session:
                row = session.get_one(Ticket, number)
                if wait_for is not None:
                    assert wait_for.wait(10)
                actor = Actor(f"{name}@example.com", "cli")
                lifecycle.set_status(app, session, row, Status.RESOLVED, actor, app.now())
                if wait_for is None:
                    first_holds.set()  # its status change is flushed: the row is held
                    if postgres:
                        wait_until(lambda: _waiting_on_a_lock(app) or None)
        except Exception as exc:  # reported below, in the test's own thread
            errors.append(exc)

    second = threading.Thread(target=resolve, args=("second", first_holds))
    if postgres:
        second.start()  # it waits until the first holds the ticket, then for its commit
    resolve("first", None)
    if not postgres:
        second.start()
    second.join(20)
    assert errors == [] and not second.is_alive()
    assert len(events(served, ref, "broadcast_all_clear")) == 1
    clears = served.count_of("outbox", "WHERE kind = 'broadcast_all_clear'")
    assert clears == len(SUBSCRIBERS)
    assert served.ticket(ref)["status"] == "resolved"


def _waiting_on_a_lock(app: App) -> bool:
    with transaction(app.sessions, readonly=True) as s:
        waiting = s.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
        )
    return bool(waiting)
