"""`maildesk import` replays a mailbox's past: it mails nobody unless told to, dates
tickets by their messages and starts no SLA clock on an old ticket.

A running desk sends its outbox to an aiosmtpd sink, so what the import queued really
goes out (or does not).
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from tests.conftest import Sink, mail, run_cli, running_desk, wait_until

SLA = """
[[sla_policies]]
name = "standard"
default = true
calendar = "24x7"
first_response = { P1 = "1h", P2 = "2h", P3 = "4h", P4 = "8h" }
resolution = { P1 = "4h", P2 = "8h", P3 = "16h", P4 = "32h" }
"""


def _mbox(path: Path, *messages: object) -> Path:
    box = mailbox.mbox(path)
    for m in messages:
        box.add(m.as_bytes())  # type: ignore[attr-defined]
    box.close()
    return path


def _dated(subject: str, when: datetime, **kwargs: str) -> object:
    return mail(subject, headers={"Date": format_datetime(when)}, **kwargs)


def test_import_mails_nobody_dates_tickets_by_their_mail_and_notify_opts_in(
    tmp_path: Path, db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, sink.port, extra=SLA)
    now = datetime.now(UTC).replace(microsecond=0)
    old = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
    history = _mbox(
        tmp_path / "old.mbox",
        _dated("Cannot print", old, message_id="<h1@client.example.org>"),
        _dated(
            "Re: Cannot print",
            old + timedelta(days=1),
            message_id="<h2@client.example.org>",
            in_reply_to="<h1@client.example.org>",
        ),
        _dated("VPN slow", now - timedelta(hours=2), message_id="<h3@client.example.org>"),
        _dated("Ancient", datetime(2025, 1, 5, tzinfo=UTC), message_id="<h4@client.example.org>"),
        _dated("From the future", now + timedelta(days=30), message_id="<h5@client.example.org>"),
    )
    with running_desk(config, sink) as desk:
        code, out = desk.cli("import", str(history), "-q", "--since", "2026-01-01")

        assert code == 0, out
        assert "imported 5 messages" in out and "1 before --since" in out
        assert "sent nothing: " in out and "use --notify to send them" in out
        assert "acknowledgements to requesters" in out
        assert "1 ticket(s) older than a day started no SLA clock" in out
        tickets = {t["subject"]: t for t in desk.tickets()}
        assert sorted(tickets) == ["Cannot print", "From the future", "VPN slow"]
        printing = tickets["Cannot print"]
        assert printing["created_at"] == "2026-03-02T09:15:00Z"
        assert printing["updated_at"] == "2026-03-03T09:15:00Z"
        assert printing["sla_policy"] is None and printing["resolution_due"] is None
        recent = tickets["VPN slow"]
        assert recent["created_at"] == (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
        assert recent["sla_policy"] == "standard" and recent["resolution_due"] is not None
        future = datetime.fromisoformat(tickets["From the future"]["created_at"])
        assert now <= future <= datetime.now(UTC) + timedelta(seconds=5)  # not in the future
        events = desk.ticket(printing["ref"])["events"]
        held = [e for e in events if e["kind"] == "notification_suppressed"]
        assert {e["data"]["notification"] for e in held} >= {
            "acknowledgement",
            "agent_new_ticket",
        }
        assert all("maildesk import without --notify" in e["data"]["reason"] for e in held)
        assert desk.json("outbox") == []

        fresh = _mbox(
            tmp_path / "new.mbox",
            _dated("Monitor flickers", now, message_id="<h6@client.example.org>"),
        )
        code, out = desk.cli("import", str(fresh), "-q", "--notify")

        assert code == 0, out
        assert "sent 2 notification(s)" in out and "1 acknowledgements to requesters" in out
        received = sink.wait_for(2)
        wait_until(lambda: len(sink.messages) >= 2)
        assert all("Monitor flickers" in str(m["Subject"]) for m in received)
        assert len(sink.messages) == 2  # the earlier import queued nothing to send


def test_import_since_that_is_not_a_date_is_an_error(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}")
    box = _mbox(tmp_path / "in.mbox", mail("Hello"))
    code, out = run_cli("import", str(box), "-q", "--since", "last week", "--config", str(config))
    assert code != 0
    assert "import --since last week: not a date or time" in out
