"""Loop and flood guards with real SMTP on both sides: a badly behaved autoresponder, two
desks pointed at each other, a sender flooding the desk."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Sink, free_port, mail, running_desk, wait_until

LIMITS = """
[notify]
notify_agents = false
auto_replies_per_hour = {replies}
new_tickets_per_hour = {tickets}
"""


class RudeAutoresponder:
    """Answers every message with a brand-new one: new subject, no threading headers, no
    Auto-Submitted, no Precedence. The worst kind, and common enough in the wild."""

    def __init__(self) -> None:
        self.desk_port = 0
        self.answered = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        incoming = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.answered += 1
            n = self.answered
        reply = mail(
            f"Thanks for your mail #{n}",
            f"Got: {incoming['Subject']}",
            sender="robot@vendor.example",
        )
        with smtplib.SMTP("127.0.0.1", self.desk_port, timeout=10) as smtp:
            smtp.send_message(reply)
        return "250 OK"


@pytest.fixture
def autoresponder() -> Iterator[tuple[RudeAutoresponder, int]]:
    handler = RudeAutoresponder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_rude_autoresponder_loop_stops_at_the_rate_limit(
    db_url: str,
    sink: Sink,
    write_config: Callable[..., Path],
    autoresponder: tuple[RudeAutoresponder, int],
) -> None:
    robot, port = autoresponder
    config = write_config(db_url, port, extra=LIMITS.format(replies=3, tickets=1000))
    with running_desk(config, sink) as desk:
        robot.desk_port = desk.port
        desk.send(mail("Hello", sender="robot@vendor.example"))
        # Each acknowledgement makes the robot write again: a new ticket each time. After
        # three acknowledgements within the hour the desk stops answering.
        wait_until(lambda: len(desk.tickets()) >= 4, timeout=20)
        desk.wait_processed(4)
        tickets = desk.tickets()
        assert robot.answered == 3
        assert len(tickets) == 4
        last = desk.ticket(max(t["id"] for t in tickets))
        [suppressed] = [
            e
            for e in last["events"]
            if e["kind"] == "notification_suppressed"
            and e["data"]["notification"] == "acknowledgement"
        ]
        assert "rate limit: 3 acknowledgements" in suppressed["data"]["reason"]
        acks = [e for e in desk.json("outbox") if e["kind"] == "acknowledgement"]
        assert len(acks) == 3


def test_two_desks_pointed_at_each_other_stop(
    tmp_path: Path, db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    a_port, b_port = free_port(), free_port()

    def desk_config(name: str, address: str, listen: int, peer: int) -> Path:
        path = write_config(
            db_url if name == "a" else f"sqlite:///{tmp_path / 'b.db'}",
            peer,
            extra="[notify]\nnotify_agents = false\n",
        )
        text = path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{listen}"')
        text = text.replace("support@example.com", address)
        target = tmp_path / f"{name}.toml"
        target.write_text(text)
        return target

    a = desk_config("a", "support@a.example", a_port, b_port)
    b = desk_config("b", "support@b.example", b_port, a_port)
    with running_desk(a, sink) as desk_a, running_desk(b, sink) as desk_b:
        # Someone forges desk B's address as the sender of a mail to desk A.
        desk_a.send(
            mail("Ping", sender="support@b.example", to="support@a.example"),
            to=["support@a.example"],
        )
        # A cannot tell B is a desk: it acknowledges once. B gets an auto-reply
        # (Auto-Submitted, X-Maildesk-Loop of another desk) and must not answer it.
        wait_until(lambda: len(desk_b.tickets()) == 1, timeout=15)
        desk_b.wait_processed(1)
        wait_until(lambda: all(e["status"] != "queued" for e in desk_a.json("outbox")))
        assert desk_b.json("outbox") == []
        [b_ticket] = desk_b.tickets()
        suppressed = [
            e
            for e in desk_b.ticket(b_ticket["ref"])["events"]
            if e["kind"] == "notification_suppressed"
        ]
        assert "Auto-Submitted: auto-replied" in suppressed[0]["data"]["reason"]
        assert len(desk_a.tickets()) == 1 and len(desk_a.json("outbox")) == 1


def test_flooding_sender_is_held_not_ticketed(
    db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, sink.port, extra=LIMITS.format(replies=100, tickets=3))
    with running_desk(config, sink) as desk:
        for n in range(5):
            desk.send(mail(f"Alert {n}", sender="monitor@flood.example"))
        desk.send(mail("Real problem", sender="dave@example.org"))
        desk.wait_processed(6)
        subjects = sorted(t["subject"] for t in desk.tickets())
        assert subjects == ["Alert 0", "Alert 1", "Alert 2", "Real problem"]
        held = desk.json("quarantine", "--status", "flood")
        assert sorted(h["subject"] for h in held) == ["Alert 3", "Alert 4"]
        assert all("new_tickets_per_hour" in h["reason"] for h in held)
