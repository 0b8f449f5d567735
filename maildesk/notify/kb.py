"""Knowledge-base articles in the desk's mail: suggestions in the acknowledgement of a new
ticket, and the articles an agent's `#kb SLUG` puts into a relayed reply."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.kb import Article, knowledge_base
from maildesk.mail.render import OutgoingAttachment
from maildesk.store import repo
from maildesk.store.models import Message, Ticket

log = logging.getLogger(__name__)
QUERY_CHARS = 4000  # of the first mail's text: enough to say what it is about


@dataclass(frozen=True)
class KbSuggestions:
    """What the acknowledgement shows (`kb` in its template) and attaches."""

    items: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[OutgoingAttachment] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def record(self, session: Session, ticket: Ticket, now: datetime) -> None:
        """The suggestion shown, as an event (`kb_suggested` in the ticket's JSON)."""
        if self.scores:
            slugs = list(self.scores)
            repo.add_event(session, ticket, "kb_suggested", now, slugs=slugs, scores=self.scores)


def article_item(app: App, article: Article) -> dict[str, Any]:
    """An article as templates see it: slug, title, summary, url (None: attached)."""
    url = app.config.kb.url
    return {
        "slug": article.slug,
        "title": article.title,
        "summary": article.summary(),
        "body": article.body,
        "url": f"{url}/{article.slug}" if url else None,
    }


def article_file(article: Article) -> OutgoingAttachment:
    text = f"{article.title}\n\n{article.body}\n"
    return OutgoingAttachment(f"{article.slug}.txt", "text/plain", text.encode("utf-8"))


def suggestions(
    app: App, session: Session, ticket: Ticket, inbound: Message, now: datetime
) -> KbSuggestions:
    """Up to `[kb] suggest` public articles for a new ticket's first mail, recorded on the
    ticket as the acknowledgement shows them."""
    cfg = app.config.kb
    if not cfg.enabled or cfg.suggest == 0:
        return KbSuggestions()
    query = f"{ticket.subject}\n{inbound.body_text[:QUERY_CHARS]}"
    found = knowledge_base(cfg).suggest(
        query, queue=ticket.queue, count=cfg.suggest, min_score=cfg.min_score
    )
    if found:
        log.info("%s: suggesting %s", app.ref(ticket.id), [s.article.slug for s in found])
    shown = KbSuggestions(
        items=[article_item(app, s.article) for s in found],
        attachments=[] if cfg.url else [article_file(s.article) for s in found],
        scores={s.article.slug: s.score for s in found},
    )
    shown.record(session, ticket, now)
    return shown
