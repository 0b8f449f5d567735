"""[kb]: the knowledge base, a folder of Markdown articles (maildesk.kb reads them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maildesk.config.reader import Reader


@dataclass(frozen=True, kw_only=True)
class KbConfig:
    """Where the articles are, and how many the acknowledgement of a new ticket suggests."""

    path: Path | None = None  # None: no knowledge base
    drafts: Path | None = None  # `#kb-draft` articles, until `maildesk kb publish`
    suggest: int = 3
    min_score: float = 2.0
    url: str | None = None  # articles link to f"{url}/{slug}"; None: the text is attached

    @property
    def enabled(self) -> bool:
        return self.path is not None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ValueError(f"must be a whole number from 0 to 10, got {value!r}")
    return value


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"must be a number of at least 0, got {value!r}")
    return float(value)


def read_kb(r: Reader, t: dict[str, Any], base: Path) -> KbConfig:
    """[kb]: path and drafts (relative to the config file), suggest, min_score, url."""
    place = "[kb]"
    path = r.take(t, place, "path", str, None)
    drafts = r.take(t, place, "drafts", str, None)
    url = r.take(t, place, "url", str, None)
    if url is not None and not re.match(r"^https?://[^\s/]+", url):
        r.problem(f"{place} key 'url'", f"must be an http(s) URL, got {url!r}")
    folder = (base / path).resolve() if path else None
    # A folder missing now is no config error (it may be mounted later, or the config copied
    # without it): the knowledge base is empty until it appears; `maildesk kb list` says so.
    if drafts and not path:
        r.problem(f"{place} key 'drafts'", "needs 'path' (the folder drafts are published to)")
    kb = KbConfig(
        path=folder,
        drafts=(base / drafts).resolve() if drafts else (folder / "drafts" if folder else None),
        suggest=r.take(t, place, "suggest", _count, 3),
        min_score=r.take(t, place, "min_score", _score, 2.0),
        url=(url or "").rstrip("/") or None,
    )
    r.done(t, place)
    return kb
