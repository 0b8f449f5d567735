"""Mail reads as words (end to end, real SMTP in and out): SLA times in the desk's timezone,
no Python reprs, no In-Reply-To to an id the requester's mail never had.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from maildesk import jobs
from tests.agents import ALICE, CAROL, Mailbox, open_ticket, reply
from tests.conftest import Clock, Sink, mail, running_desk

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 11:00 in Berlin
SLA = """
[[sla_policies]]
name = "standard"
default = true
calendar = "24x7"
first_response = { P1 = "1h", P2 = "2h", P3 = "4h", P4 = "8h" }
resolution = { P1 = "4h", P2 = "8h", P3 = "16h", P4 = "32h" }
warn_at = 0.75
"""


def _berlin(config: Path) -> Path:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[desk]\n", '[desk]\ntimezone = "Europe/Berlin"\n', 1))
    return config


def _year(day: datetime) -> str:
    return "" if day.year == datetime.now(UTC).year else f" {day.year}"


def test_sla_mail_gives_times_in_the_desk_timezone_and_changes_in_words(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = _berlin(write_config(db_url, sink.port, extra=SLA))
    clock = Clock(MONDAY)
    with running_desk(config, sink, clock=clock) as desk:
        opened = open_ticket(desk)  # P3: first response due in 4h, warned at 3h
        alice = Mailbox(desk, ALICE)
        clock.now = MONDAY + timedelta(hours=3)
        jobs.run_due(desk.app, clock.now)
        [warning] = alice.next()
        text = warning.get_content()
        assert f"First response due: Mon 23 Nov{_year(MONDAY)} 15:00 (Europe/Berlin)" in text
        assert "2026-11-23T" not in text

        reply(desk, opened.notice, "#category printers")
        [receipt] = alice.next()
        assert "category: none -> printers" in receipt.get_content()
        assert "None" not in receipt.get_content()


def test_no_in_reply_to_for_mail_that_had_no_message_id(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    with running_desk(write_config(db_url, sink.port), sink) as desk:
        carol, alice = Mailbox(desk, CAROL), Mailbox(desk, ALICE)
        msg: EmailMessage = mail("No id here", sender=f"Carol <{CAROL}>")
        del msg["Message-ID"]
        desk.send(msg.as_bytes(), to=["support@example.com"], mail_from=CAROL)

        [ack] = carol.next()
        [notice] = alice.next()
        assert ack["In-Reply-To"] is None and ack["References"] is None
        assert notice["In-Reply-To"] is None and notice["References"] is None
        [ticket] = desk.tickets()
        stored = desk.ticket(ticket["ref"])["messages"][0]["message_id"]
        assert stored.endswith("@no-message-id.maildesk.invalid>")  # kept for threading
