"""The knowledge base of a `[kb]` config: its articles, re-read when a file changes.

There is no watcher thread: each use compares the folder's listing (names, sizes and
modification times) with the one last read, and reads it again if they differ. A file
that cannot be read is logged with its name and left out; the others stay in.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from maildesk.config.kb import KbConfig
from maildesk.kb.articles import Article, ArticleError, parse_article
from maildesk.kb.rank import Bm25

log = logging.getLogger(__name__)
TITLE_WEIGHT, TAG_WEIGHT = 3.0, 2.0
_Listing = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Suggestion:
    article: Article
    score: float
    shared: int  # distinct words of the question the article has


class KnowledgeBase:
    """The articles of one folder, with a BM25 index over title, tags and text."""

    def __init__(self, articles: list[Article], problems: list[str]) -> None:
        self.articles = sorted(articles, key=lambda a: a.slug)
        self.problems = problems
        self._by_slug = {a.slug: a for a in self.articles}
        self._bm25 = Bm25(
            [
                [(TITLE_WEIGHT, a.title), (TAG_WEIGHT, " ".join(a.tags)), (1.0, a.body)]
                for a in self.articles
            ]
        )

    def get(self, slug: str) -> Article | None:
        return self._by_slug.get(slug.strip().lower())

    def search(self, query: str, *, limit: int = 10) -> list[Suggestion]:
        """Articles sharing words with the query, best first (ties by slug)."""
        scored = zip(self.articles, self._bm25.scores(query), strict=True)
        found = [Suggestion(a, round(s, 4), n) for a, (s, n) in scored if s > 0]
        found.sort(key=lambda s: (-s.score, s.article.slug))
        return found[:limit]

    def suggest(
        self, query: str, *, queue: str, count: int, min_score: float, min_shared: int = 2
    ) -> list[Suggestion]:
        """Up to `count` public articles for `queue` scoring at least `min_score` and
        sharing at least `min_shared` words with the question (all of a shorter one): one
        word in common ("report", "space") is a coincidence more often than an answer."""
        found = self.search(query, limit=len(self.articles))
        shared = min(min_shared, Bm25.query_size(query))
        return [
            s
            for s in found
            if s.article.audience == "public"
            and s.article.for_queue(queue)
            and s.score >= min_score
            and s.shared >= shared
        ][:count]


def read_folder(folder: Path, skip: Path | None = None) -> KnowledgeBase:
    """Every `*.md` article under `folder` (not under `skip`, the drafts)."""
    articles, problems = [], []
    for path in _article_files(folder, skip):
        try:
            articles.append(parse_article(path.read_text(encoding="utf-8"), path))
        except (OSError, UnicodeDecodeError, ArticleError) as exc:
            problems.append(str(exc) if isinstance(exc, ArticleError) else f"{path}: {exc}")
            log.error("knowledge base article left out: %s", problems[-1])
    return KnowledgeBase(articles, problems)


def _article_files(folder: Path, skip: Path | None) -> list[Path]:
    files = sorted(p for p in folder.rglob("*.md") if p.is_file())
    return [p for p in files if skip is None or not p.is_relative_to(skip)]


def _listing(folder: Path, skip: Path | None) -> _Listing:
    out = []
    for p in _article_files(folder, skip):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


_cache: dict[Path, tuple[_Listing, KnowledgeBase]] = {}
_lock = threading.Lock()


def knowledge_base(config: KbConfig) -> KnowledgeBase:
    """The knowledge base of `config`, read again if any article file changed; empty when
    `[kb] path` is not set or the folder is gone."""
    folder = config.path
    if folder is None or not folder.is_dir():
        return KnowledgeBase([], [])
    listing = _listing(folder, config.drafts)
    with _lock:
        cached = _cache.get(folder)
        if cached is not None and cached[0] == listing:
            return cached[1]
    kb = read_folder(folder, config.drafts)
    with _lock:
        _cache[folder] = (listing, kb)
    log.info("knowledge base %s: %d articles", folder, len(kb.articles))
    return kb
