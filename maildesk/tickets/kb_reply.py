"""Knowledge-base commands in an agent's reply.

`#kb SLUG`: the public article is put into the relayed mail, below the agent's text (its
title and text, or its title, first lines and link when `[kb] url` is set); an unknown
slug or an article for agents only refuses the whole reply, like any bad command.
`#kb-draft [TITLE]`: the reply's own text is kept as a draft article in `[kb] drafts`
(a Markdown file with TOML front matter) until `maildesk kb publish SLUG` moves it into
the knowledge base. A draft is a file: written when the reply is applied, it stays even
if that transaction later rolls back (a draft nobody asked for, never a lost one).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.kb import Article, knowledge_base
from maildesk.kb.articles import render_article
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.tickets.commands import CommandError, ParsedReply


def expand(app: App, parsed: ParsedReply) -> tuple[ParsedReply, list[CommandError]]:
    """The reply with its `#kb` articles appended to the text, or the problems."""
    wanted = [(c, slug) for c in parsed.commands if c.name == "kb" for slug in c.add]
    if not wanted:
        return parsed, []
    kb = knowledge_base(app.config.kb)
    errors, parts = [], [parsed.text]
    for c, slug in wanted:
        article = kb.get(slug)
        if article is None:
            known = ", ".join(a.slug for a in kb.articles if a.audience == "public") or "none"
            errors.append(CommandError(c.line, c.text, f"no article {slug!r} (known: {known})"))
        elif article.audience != "public":
            errors.append(CommandError(c.line, c.text, f"{slug!r} is for agents only"))
        else:
            parts.append(_as_text(app, article))
    return replace(parsed, text="\n\n".join(p for p in parts if p.strip())), errors


def _as_text(app: App, article: Article) -> str:
    url = app.config.kb.url
    if url:
        return f"{article.title}\n{article.summary()}\n{url}/{article.slug}"
    return f"{article.title}\n{'-' * min(len(article.title), 72)}\n\n{article.body}"


def save_drafts(
    app: App, session: Session, ticket: Ticket, parsed: ParsedReply, text: str, now: datetime
) -> list[str]:
    """Write each `#kb-draft` as a draft article of `text`; the changes, as receipts say."""
    changes = []
    for c in (c for c in parsed.commands if c.name == "kb-draft"):
        title = c.value or ticket.subject
        folder = app.config.kb.drafts
        if folder is None:
            changes.append("no draft kept: [kb] path is not set")
            continue
        path = _free_path(folder, slugify(title))
        draft = Article(path.stem, title, tuple(ticket.tags), (ticket.queue,), "public", text, path)
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(render_article(draft), encoding="utf-8")
        repo.add_event(session, ticket, "kb_draft", now, slug=draft.slug, title=title)
        changes.append(f"draft article {draft.slug} kept (maildesk kb publish {draft.slug})")
    return changes


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return slug or "article"


def _free_path(folder: Path, slug: str) -> Path:
    path, n = folder / f"{slug}.md", 2
    while path.exists():
        path, n = folder / f"{slug}-{n}.md", n + 1
    return path
