"""A desk seeded with a known week: eleven tickets moved through the real pipeline and SLA
job on an injected clock, so every figure of its report is known in advance.

The week is Monday 2026-11-02 to Sunday 2026-11-08 (desk timezone UTC); the SLA calendar
"office" works Monday to Friday 09:00-17:00 UTC. Ticket ids (MD-n) in order:

  1  Fri 10-30 10:00 carol  "Old printer issue"   it P3   resolved Mon 09:30 (before the week)
  2  Mon 09:00 carol  "Printer jammed"          it P3  alice answers 10:00, resolves 15:00
  3  Mon 11:00 dave   "VPN slow"                it P3  bob answers 12:30, resolves Tue 11:00
  4  Mon 16:00 erin   "Mail server down"        infra P1  bob answers Tue 10:00 (breach),
                                                  resolution breached Tue 12:30, resolved 13:00
  5  Tue 09:00 carol  "Printer out of toner"    it P3  alice 09:30, resolves 10:00; carol
                                                  reopens Wed 09:00, alice resolves Wed 10:00
  6  Tue 14:00 frank  "Need a new laptop"       it P3  never answered: first response
                                                  breached Wed 12:00, resolution Fri 12:00
  7  Wed 10:00 dave   "Printer offline"         it P3  alice 11:00; resolution breached Fri 12:00
  8  Thu 09:00 gina   "Network down in B2"      infra P1  bob 09:20, resolves 11:00
  9  Fri 16:00 hank   "Password reset"          it P3  alice 16:30, resolves 16:45
 10  Sat 10:00 carol  "Printer smoke"           it P3  alice answers Sat 12:00 (no business time)
 11  Sun 20:00 ivy    "Question"                it P3  nothing
 12  Mon 11-09 00:30 ivy "Next week"            after the week

Wednesday 13:00 one message is quarantined; notifications are sent Monday and Wednesday
at 18:00 only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from maildesk import jobs, pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.notify.sender import send_due
from maildesk.terms import RawStatus
from tests.conftest import Clock, mail

WEEK_START, WEEK_END = date(2026, 11, 2), date(2026, 11, 8)

EXTRA = """
[[calendars]]
name = "office"
timezone = "UTC"
hours = { "mon-fri" = "09:00-17:00" }

[[sla_policies]]
name = "standard"
default = true
calendar = "office"
first_response = { P1 = "1h", P2 = "2h", P3 = "4h", P4 = "8h" }
resolution = { P1 = "4h", P2 = "8h", P3 = "16h", P4 = "32h" }
warn_at = 0.75

[[rules]]
name = "printers"
match = { subject = "(?i)printer" }
set = { category = "printing" }
"""


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in November 2026 (UTC)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


class Seeder:
    """Mail into the desk at chosen instants; counts what it sent per day."""

    def __init__(self, app: App, clock: Clock) -> None:
        self.app, self.clock = app, clock
        self.mail_in: Counter[date] = Counter()

    def _store(self, raw: bytes, sender: str, to: str, when: datetime) -> pipeline.Outcome:
        self.clock.now = when
        self.mail_in[when.date()] += 1
        raw_id = inbox.store_raw(
            self.app, raw, origin="test", envelope_from=sender, envelope_to=[to]
        )
        return pipeline.process(self.app, raw_id)

    def open(self, when: datetime, name: str, subject: str) -> int:
        sender = f"{name}@example.org"
        msg = mail(subject, "Please help.", sender=f"{name.title()} <{sender}>")
        outcome = self._store(msg.as_bytes(), sender, "support@example.com", when)
        assert outcome.ticket_id is not None, outcome
        return outcome.ticket_id

    def agent(self, when: datetime, ticket_id: int, body: str, agent: str) -> None:
        address = self.app.reply_address(ticket_id, "agent", f"{agent}@example.com")
        sender = f"{agent}@example.com"
        msg = mail(f"Re: [MD-{ticket_id}] help", body, sender=sender, to=address)
        outcome = self._store(msg.as_bytes(), sender, address, when)
        assert outcome.status in ("agent_reply", "commands", "note"), outcome

    def requester(self, when: datetime, ticket_id: int, name: str) -> None:
        sender = f"{name}@example.org"
        msg = mail(f"Re: [MD-{ticket_id}] help", "Still broken.", sender=sender)
        outcome = self._store(msg.as_bytes(), sender, "support@example.com", when)
        assert outcome.ticket_id == ticket_id, outcome

    def quarantine(self, when: datetime) -> None:
        outcome = self._store(
            b"\x00\x01 not mail \xff\n", "x@example.org", "support@example.com", when
        )
        assert outcome.status == RawStatus.QUARANTINED, outcome

    def tick(self, when: datetime) -> None:
        self.clock.now = when
        jobs.run_due(self.app, when)

    def send(self, when: datetime) -> int:
        self.clock.now = when
        report = send_due(
            self.app.sessions, self.app.transport, self.app.config.outbound, self.clock
        )
        return report.sent


def seed(app: App, clock: Clock) -> Seeder:
    """The week described at the top of this module."""
    s = Seeder(app, clock)
    old = s.open(datetime(2026, 10, 30, 10, 0, tzinfo=UTC), "carol", "Old printer issue")
    s.agent(at(2, 9, 30), old, "#status resolved", "alice")
    t2 = s.open(at(2, 9), "carol", "Printer jammed")
    s.agent(at(2, 10), t2, "Try opening tray 2.", "alice")
    t3 = s.open(at(2, 11), "dave", "VPN slow")
    s.agent(at(2, 12, 30), t3, "Looking into it.", "bob")
    s.agent(at(2, 15), t2, "#status resolved", "alice")
    t4 = s.open(at(2, 16), "erin", "Mail server down")
    s.send(at(2, 18))
    t5 = s.open(at(3, 9), "carol", "Printer out of toner")
    s.agent(at(3, 9, 30), t5, "New toner is on its way.", "alice")
    s.agent(at(3, 10), t4, "Restarting it.", "bob")
    s.agent(at(3, 10, 0), t5, "#status resolved", "alice")
    s.agent(at(3, 11), t3, "#status resolved", "bob")
    s.tick(at(3, 12, 30))
    s.agent(at(3, 13), t4, "#status resolved", "bob")
    t6 = s.open(at(3, 14), "frank", "Need a new laptop")
    s.requester(at(4, 9), t5, "carol")
    s.agent(at(4, 10), t5, "#status resolved", "alice")
    t7 = s.open(at(4, 10), "dave", "Printer offline")
    s.agent(at(4, 11), t7, "Is it plugged in?", "alice")
    s.tick(at(4, 12))
    s.quarantine(at(4, 13))
    s.send(at(4, 18))
    t8 = s.open(at(5, 9), "gina", "Network down in B2")
    s.agent(at(5, 9, 20), t8, "On it.", "bob")
    s.agent(at(5, 11), t8, "#status resolved", "bob")
    s.tick(at(6, 12))
    t9 = s.open(at(6, 16), "hank", "Password reset")
    s.agent(at(6, 16, 30), t9, "Done, check your mail.", "alice")
    s.agent(at(6, 16, 45), t9, "#status resolved", "alice")
    t10 = s.open(at(7, 10), "carol", "Printer smoke")
    s.agent(at(7, 12), t10, "Unplug it now.", "alice")
    s.open(at(8, 20), "ivy", "Question")
    s.open(at(9, 0, 30), "ivy", "Next week")
    assert [old, t2, t3, t4, t5, t6, t7, t8, t9, t10] == list(range(1, 11))
    return s


def seeded_desk(
    db_url: str, write_config: Callable[..., Path], sink_port: int
) -> tuple[App, Seeder]:
    """An app on a fresh database with the week seeded; the caller closes the app."""
    clock = Clock(at(2, 0))
    app = App.build(load_config(write_config(db_url, sink_port, extra=EXTRA)), clock=clock)
    return app, seed(app, clock)
