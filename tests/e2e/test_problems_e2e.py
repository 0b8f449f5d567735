"""Problem management in the running desk, over real SMTP: incidents linked to a problem,
its known error shown to agents, its resolution resolving the incidents and mailing each
requester once, in their own thread; detection of a burst of similar incidents. SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from maildesk import jobs
from tests.agents import events, open_ticket, reply
from tests.conftest import Desk, Sink, mail, running_desk, wait_until

PROBLEMS = """
[sla]
leads = { it = "lead@example.com" }

[problems]
detect = { incidents = 5, within = "1h", by = "category" }

[[rules]]
name = "printing"
when = { field = "subject", contains = "printer" }
set = { category = "printing" }
"""

REQUESTERS = ["carol@example.org", "dave@example.org", "erin@example.org"]


@pytest.fixture
def problem_desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    with running_desk(write_config(db_url, sink.port, extra=PROBLEMS), sink) as d:
        yield d


def fixed_mails(sink: Sink, address: str) -> list[str]:
    return [str(m["Subject"]) for m in sink.to(address) if "Fixed:" in str(m["Subject"])]


def test_problem_links_known_error_and_resolution(problem_desk: Desk) -> None:
    desk, sink = problem_desk, problem_desk.sink
    for who in REQUESTERS:
        desk.send(mail("VPN drops every hour", "Since Monday.", sender=who))
    desk.wait_tickets(3)
    wait_until(lambda: len(sink.to("alice@example.com")) >= 3 or None)
    code, out = desk.cli("ticket", "set", "MD-1", "problem=new", "--as", "alice@example.com")
    assert code == 0, out
    problem = desk.ticket("MD-4")
    assert (problem["type"], problem["subject"], problem["queue"]) == (
        "problem",
        "VPN drops every hour",
        "it",
    )
    assert problem["incidents"] == ["MD-1"]
    assert desk.ticket("MD-1")["problem"] == "MD-4"
    assert desk.cli("ticket", "set", "MD-2", "problem=MD-4")[0] == 0
    code, out = desk.cli("ticket", "set", "MD-4", "known_error=Reconnect with the 5.2 client")
    assert code == 0, out
    assert desk.ticket("MD-4")["known_error"] == "Reconnect with the 5.2 client"
    # An incident linked to a known error: its agents see the workaround.
    before = len(sink.to("alice@example.com"))
    assert desk.cli("ticket", "set", "MD-3", "problem=MD-4")[0] == 0
    notices = wait_until(lambda: sink.to("alice@example.com")[before:] or None)
    assert "Reconnect with the 5.2 client" in notices[0].get_body().get_content()  # type: ignore[union-attr]
    assert desk.ticket("MD-3")["known_error"] == "Reconnect with the 5.2 client"
    assert desk.ticket("MD-4")["incidents"] == ["MD-1", "MD-2", "MD-3"]
    # A link to something that is not a problem is refused, nothing changes.
    code, out = desk.cli("ticket", "set", "MD-2", "problem=MD-3")
    assert code != 0 and "not a problem" in out
    # Resolving the problem resolves the incidents and tells each requester once.
    assert desk.cli("ticket", "set", "MD-4", "status=resolved")[0] == 0
    assert {desk.ticket(f"MD-{n}")["status"] for n in (1, 2, 3)} == {"resolved"}
    for n, who in enumerate(REQUESTERS, start=1):
        (fixed,) = wait_until(lambda who=who: fixed_mails(sink, who) or None)
        assert f"[MD-{n}]" in fixed
        assert not [m for m in sink.to(who) if "Resolved:" in str(m["Subject"])]
        ack = next(m for m in sink.to(who) if "Fixed:" not in str(m["Subject"]))
        thread = next(m for m in sink.to(who) if "Fixed:" in str(m["Subject"]))
        assert ack["Message-ID"] in str(thread["References"] or thread["In-Reply-To"])
    assert sink.to("carol@example.org") and len(fixed_mails(sink, "carol@example.org")) == 1
    rows = desk.json("problems")
    assert [(p["ref"], p["incident_count"], p["open_incidents"]) for p in rows] == [("MD-4", 3, 0)]
    assert rows[0]["known_error"] == "Reconnect with the 5.2 client"


def test_detection_opens_one_problem_for_five_and_links_the_sixth(problem_desk: Desk) -> None:
    desk, sink = problem_desk, problem_desk.sink
    for n in range(5):
        desk.send(mail(f"The printer on floor {n} is jammed", sender=f"user{n}@example.org"))
    desk.send(mail("New laptop please", sender="zed@example.org"))
    desk.wait_tickets(6)
    assert jobs.detect_problems(desk.app, desk.app.now()) == 1
    (problem,) = desk.json("problems")
    assert problem["incident_count"] == 5
    assert jobs.detect_problems(desk.app, desk.app.now()) == 0  # nothing new, nothing again
    desk.send(mail("printer out of toner", sender="user9@example.org"))
    desk.wait_tickets(8)
    assert jobs.detect_problems(desk.app, desk.app.now()) == 0
    (problem,) = desk.json("problems")
    assert problem["incident_count"] == 6
    laptop = next(t for t in desk.tickets() if t["subject"] == "New laptop please")
    assert desk.ticket(laptop["ref"])["problem"] is None
    lead = wait_until(lambda: sink.to("lead@example.com") or None)
    assert len(lead) == 1 and "Possible problem" in str(lead[0]["Subject"])
    events = [e["kind"] for e in desk.ticket(problem["ref"])["events"]]
    assert events.count("problem_detected") == 1


def test_problem_commands_by_mail(problem_desk: Desk) -> None:
    desk = problem_desk
    first = open_ticket(desk, "Shared drive is slow", sender="carol@example.org")
    second = open_ticket(desk, "S: drive takes minutes", sender="dave@example.org")
    reply(desk, first.notice, "#problem new\n\nLooks like the file server.")
    wait_until(lambda: desk.ticket(first.ref)["problem"] or None)
    problem = desk.ticket(first.ref)["problem"]
    reply(desk, second.notice, f"#problem {problem}")
    wait_until(lambda: desk.ticket(second.ref)["problem"] == problem or None)
    assert desk.ticket(problem)["incidents"] == [first.ref, second.ref]
    # #known-error on an incident is refused (an error mail, nothing changes).
    reply(desk, first.notice, "#known-error restart it")
    wait_until(lambda: events(desk, first.ref, "commands_rejected") or None)
    assert desk.ticket(first.ref)["known_error"] is None
