"""A small synthetic desk for learned routing: tickets with clear words per queue, opened
through the pipeline, then moved to their right queue and resolved as agents would."""

from __future__ import annotations

import random
from email.message import EmailMessage
from itertools import count

from sqlalchemy import select

from maildesk import pipeline
from maildesk.app import App
from maildesk.ingest.inbox import Incoming, store_raws
from maildesk.store.db import transaction
from maildesk.store.models import Event, Message, Ticket

WORDS = {
    "access": "password login account locked unlock permission credentials reset expired signin",
    "hardware": "laptop screen keyboard printer mouse battery charger monitor docking cable",
    "it": "calendar meeting outlook teams licence update software install question newsletter",
}
FILLER = ["please", "help", "thanks", "hello", "today", "colleague", "kind", "regards", "soon"]
LEARNING = """
[[agents]]
email = "carol@example.com"
name = "Carol"
queues = ["access", "hardware"]

[[queues]]
name = "access"

[[queues]]
name = "hardware"

[learning]
labels = ["queue"]
min_examples = 30
{more}
"""
_ids = count(1)


def mail(subject: str, body: str, sender: str | None = None) -> bytes:
    """A new message to the desk."""
    n = next(_ids)
    m = EmailMessage()
    m["From"] = sender or f"user{n}@example.org"
    m["To"] = "support@example.com"
    m["Subject"] = subject
    m["Message-ID"] = f"<synthetic-{n}@example.org>"
    m.set_content(body)
    return m.as_bytes()


def text_for(queue: str, rnd: random.Random) -> tuple[str, str]:
    """A subject and body that say which queue they belong to."""
    words = WORDS[queue].split()
    subject = " ".join(rnd.sample(words, 2))
    body = " ".join(rnd.sample(words, 4) + rnd.sample(FILLER, 3))
    return subject, body


def deliver(app: App, *raws: bytes) -> None:
    """Store the messages and run the pipeline until nothing is pending."""
    store_raws(app, [Incoming(raw, "smtp") for raw in raws])
    while pipeline.process_pending(app):
        pass


def seed(app: App, per_queue: int = 40, seed: int = 7) -> None:
    """Tickets for each queue, all first routed to the default queue, then moved to their
    queue and resolved (the labelled examples a desk collects)."""
    rnd = random.Random(seed)
    right: dict[str, str] = {}
    raws = []
    for i in range(per_queue * len(WORDS)):
        queue = list(WORDS)[i % len(WORDS)]
        raw = mail(*text_for(queue, rnd))
        raws.append(raw)
        right[raw.split(b"Message-ID: ")[1].split(b"\n")[0].strip().decode()] = queue
    deliver(app, *raws)
    with transaction(app.sessions) as session:
        rows = session.execute(select(Message.message_id, Message.ticket_id))
        for message_id, ticket_id in rows.all():
            if message_id in right:
                ticket = session.get_one(Ticket, ticket_id)
                ticket.queue, ticket.status = right[message_id], "resolved"


def routed(app: App, subject: str) -> tuple[Ticket, dict[str, object]]:
    """The newest ticket with that subject and its `routed` event's data."""
    with transaction(app.sessions, readonly=True) as session:
        stmt = select(Ticket).where(Ticket.subject == subject).order_by(Ticket.id.desc())
        ticket = session.scalars(stmt.limit(1)).one()
        data = session.scalars(
            select(Event.data).where(Event.ticket_id == ticket.id, Event.kind == "routed")
        ).one()
        session.expunge(ticket)
        return ticket, dict(data)
