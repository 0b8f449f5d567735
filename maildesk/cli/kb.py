"""The knowledge base from the shell: `maildesk kb list|show|search|publish` (docs/kb.md).

Reads the `[kb] path` folder of the config (no database). `publish SLUG` moves a draft
made by `#kb-draft` from `[kb] drafts` into the folder, where acknowledgements and
`#kb` find it from then on.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from maildesk.cli.common import EX_OK, Parsers, err, print_json, print_table
from maildesk.config import load_config
from maildesk.config.kb import KbConfig
from maildesk.errors import MaildeskError, NotFound
from maildesk.kb import Article, KnowledgeBase, knowledge_base
from maildesk.kb.index import read_folder


def _kb(args: argparse.Namespace) -> tuple[KbConfig, KnowledgeBase]:
    cfg = load_config(args.config).kb
    if not cfg.enabled:
        raise MaildeskError("no knowledge base: set [kb] path in the config")
    if cfg.path is not None and not cfg.path.is_dir():
        raise MaildeskError(f"[kb] path: no such folder: {cfg.path}")
    return cfg, knowledge_base(cfg)


def article_json(a: Article, *, body: bool = False) -> dict[str, Any]:
    """An article as `kb list|show --json` give it."""
    out: dict[str, Any] = {
        "slug": a.slug,
        "title": a.title,
        "tags": list(a.tags),
        "queues": list(a.queues),
        "audience": a.audience,
        "path": str(a.path),
    }
    if body:
        out["body"] = a.body
    return out


def cmd_kb_list(args: argparse.Namespace) -> int:
    """Every article (and every file that could not be read, on stderr)."""
    _, kb = _kb(args)
    for problem in kb.problems:
        err(f"left out: {problem}")
    if args.json:
        print_json([article_json(a) for a in kb.articles])
        return EX_OK
    table = Table("slug", "title", "audience", "queues", "tags")
    for a in kb.articles:
        table.add_row(a.slug, a.title, a.audience, ", ".join(a.queues) or "all", ", ".join(a.tags))
    print_table(table)
    return EX_OK


def cmd_kb_show(args: argparse.Namespace) -> int:
    """One article with its text."""
    _, kb = _kb(args)
    article = kb.get(args.slug)
    if article is None:
        raise NotFound(f"no article {args.slug!r} (maildesk kb list)")
    if args.json:
        print_json(article_json(article, body=True))
        return EX_OK
    print(f"{article.title}  [{article.slug}, {article.audience}]")
    print(article.body)
    return EX_OK


def cmd_kb_search(args: argparse.Namespace) -> int:
    """Articles for a question, best first, with their BM25 score."""
    _, kb = _kb(args)
    found = kb.search(args.query, limit=args.limit)
    if args.json:
        print_json([{**article_json(s.article), "score": s.score} for s in found])
        return EX_OK
    for s in found:
        print(f"{s.score:7.3f}  {s.article.slug}  {s.article.title}  ({s.article.audience})")
    if not found:
        print("no article matches")
    return EX_OK


def cmd_kb_publish(args: argparse.Namespace) -> int:
    """Move a draft into the knowledge base."""
    cfg, kb = _kb(args)
    assert cfg.path is not None and cfg.drafts is not None
    drafts = read_folder(cfg.drafts) if cfg.drafts.is_dir() else KnowledgeBase([], [])
    draft = drafts.get(args.slug)
    if draft is None:
        known = ", ".join(a.slug for a in drafts.articles) or "none"
        raise NotFound(f"no draft {args.slug!r} in {cfg.drafts} (drafts: {known})")
    target = cfg.path / draft.path.name
    if kb.get(draft.slug) is not None or target.exists():
        raise MaildeskError(f"the knowledge base already has an article {draft.slug!r}")
    draft.path.replace(target)
    print(f"published {draft.slug}: {target}")
    return EX_OK


def add_kb(parsers: Parsers) -> None:
    """`maildesk kb list|show|search|publish`."""
    kb = parsers.group("kb", "the knowledge base ([kb] path)", "kb_command")
    kb.add("list", cmd_kb_list, "every article", [parsers.json_flag])
    sp = kb.add("show", cmd_kb_show, "one article", [parsers.json_flag])
    sp.add_argument("slug", help="the article's name (its file name without .md)")
    sp = kb.add("search", cmd_kb_search, "articles for a question", [parsers.json_flag])
    sp.add_argument("query", help="the question, in words")
    sp.add_argument("--limit", type=int, default=10, help="at most this many (default 10)")
    sp = kb.add("publish", cmd_kb_publish, "move a #kb-draft into the knowledge base")
    sp.add_argument("slug", help="the draft's name, as the #kb-draft receipt gave it")
