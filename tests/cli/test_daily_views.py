"""The views an agent works a day from, run through the `maildesk` entry point: `maildesk
tickets` with its filters and sorts (in-process), and `ticket show` as a conversation (as a
real process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents import ALICE, CAROL, Mailbox, open_ticket
from tests.conftest import Desk, Sink, mail, require_slow, run_maildesk, running_desk, wait_until

DAVE = "dave@example.com"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:")
EXTRA = f"""
[[agents]]
email = "{DAVE}"
name = "Dave"
queues = ["it"]

[[sla_policies]]
name = "standard"
default = true
calendar = "24x7"
first_response = {{ P1 = "1h", P2 = "2h", P3 = "4h", P4 = "8h" }}
resolution = {{ P1 = "4h", P2 = "8h", P3 = "16h", P4 = "32h" }}
"""


@pytest.fixture
def desk(db_url: str, sink: Sink, write_config: Callable[..., Path]) -> Iterator[Desk]:
    """The shared desk with a second agent in queue `it` and a 24x7 SLA policy."""
    with running_desk(write_config(db_url, sink.port, extra=EXTRA), sink) as d:
        yield d


def maildesk(
    desk: Desk, *args: str, agent: str | None = None, process: bool = False
) -> tuple[int, str, str]:
    """`maildesk ARGS --config ...` (in this process, or with `process` as a real process):
    exit code, stdout, stderr."""
    env: dict[str, str | None] = {"COLUMNS": "250", "MAILDESK_AGENT": agent}  # subjects whole
    argv = [*args, "--config", str(desk.config_path)]
    if not process:
        ran = run_maildesk(*argv, env=env)
        return ran.returncode, ran.stdout, ran.stderr
    require_slow("a maildesk process")
    done = subprocess.run(
        [sys.executable, "-m", "maildesk", *argv],
        capture_output=True,
        text=True,
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def listed(desk: Desk, *args: str, agent: str | None = None) -> list[dict[str, Any]]:
    code, out, err = maildesk(desk, "tickets", "--json", *args, agent=agent)
    assert (code, err) == (0, ""), err
    result: list[dict[str, Any]] = json.loads(out)
    return result


def test_tickets_for_daily_work(desk: Desk) -> None:
    printer = open_ticket(desk, "Printer on fire").ticket["ref"]
    desk.send(mail("VPN outage", "Nobody can connect.", sender=CAROL))  # infra, P1 by rule
    vpn = next(t["ref"] for t in desk.wait_tickets(2) if t["subject"] == "VPN outage")
    old = open_ticket(desk, "Old question").ticket["ref"]
    assert desk.cli("ticket", "set", printer, "assignee=alice", "--as", ALICE)[0] == 0
    assert desk.cli("ticket", "set", old, "status=resolved", "--as", ALICE)[0] == 0
    everything = {t["ref"]: t for t in listed(desk, "--all")}

    # Open tickets only by default; --all adds the resolved one.
    assert [t["ref"] for t in listed(desk)] == [vpn, printer]
    assert set(everything) == {printer, vpn, old}
    # Mine, as --as or $MAILDESK_AGENT says; the next SLA target first.
    assert [t["ref"] for t in listed(desk, "--mine", "--as", "alice")] == [printer]
    assert [t["ref"] for t in listed(desk, "--mine", agent=ALICE)] == [printer]
    assert [t["ref"] for t in listed(desk, "--assignee", "none")] == [vpn]
    assert [t["ref"] for t in listed(desk, "--priority", "P1")] == [vpn]
    assert [t["ref"] for t in listed(desk, "--sort", "due", "--all")] == [vpn, printer, old]
    assert everything[vpn]["sla_due"] < everything[printer]["sla_due"]
    assert everything[old]["sla_due"] is None  # resolved: no target left, so listed last
    wanted = {everything[old]["status"], everything[vpn]["status"]}
    several = listed(desk, "--status", ",".join(sorted(wanted)))
    assert {t["ref"] for t in several} >= {old, vpn}
    assert all(t["status"] in wanted for t in several)

    code, out, err = maildesk(desk, "tickets", "--mine", "--sort", "due", agent=ALICE)
    assert (code, err) == (0, "")
    assert "assignee" in out and "sla due" in out
    [row] = [line for line in out.splitlines() if printer in line]
    assert ALICE in row and "Printer on fire" in row
    assert not ISO.search(out)  # times in the desk's timezone, as people read them

    code, out, err = maildesk(desk, "tickets", "--mine")
    assert code == 1 and "--mine needs to know who you are: --as" in err
    assert "Traceback" not in err
    code, out, err = maildesk(desk, "tickets", "--status", "opne")
    assert code == 2 and "status must be one of new, open" in err
    assert "Traceback" not in err


@pytest.mark.slow  # `ticket show` as a process
def test_ticket_show_reads_like_a_conversation(desk: Desk) -> None:
    opened = open_ticket(desk, "Printer on fire", "The printer on floor 2 is smoking.")
    alice = Mailbox(desk, ALICE)
    # A mail claiming alice's address without proof: kept, flagged, not acted on.
    forged = mail(
        f"Re: [{opened.ref}] Printer on fire",
        "#priority P1\nWe are on it.",
        sender=f"Alice <{ALICE}>",
        in_reply_to=str(opened.ack["Message-ID"]),
    )
    desk.send(forged)
    wait_until(lambda: alice.next())

    code, story, err = maildesk(desk, "ticket", "show", opened.ref, process=True)

    assert (code, err) == (0, ""), err
    lines = story.splitlines()
    [notified] = [line for line in lines if "notified" in line and "agent_new_ticket" in line]
    assert f"notified {ALICE}, {DAVE}" in notified
    copies = [line for line in lines if line.startswith("--- out agent_new_ticket")]
    assert copies == [notified]  # the agents' copies are that line, not shown in full
    [sla] = [line for line in lines if line.startswith("sla standard")]
    assert "first response due" in sla and "resolution due" in sla and ": ok;" in sla
    heading = next(
        i for i, line in enumerate(lines) if line.startswith("--- in mail") and ALICE in line
    )
    assert lines[heading + 1].startswith("NOT VERIFIED as an agent's mail")
    assert not ISO.search(story)
