"""One knowledge-base article: a Markdown file whose front matter says what it is.

    +++                              ---
    title = "VPN does not connect"   title: VPN does not connect
    tags = ["vpn", "remote"]         tags: [vpn, remote]
    queues = ["infra"]               queues: [infra]
    audience = "public"              audience: public
    +++                              ---

The slug is the file name without `.md`. `audience` is `public` (may be mailed to
requesters) or `agents`; `queues` empty means every queue. YAML is read with PyYAML's
safe loader, TOML with tomllib.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

AUDIENCES = ("public", "agents")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_FENCES = {"+++": "toml", "---": "yaml"}


class ArticleError(ValueError):
    """An article that cannot be read; the message names the file and the key."""


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    tags: tuple[str, ...]
    queues: tuple[str, ...]
    audience: str
    body: str  # the Markdown after the front matter
    path: Path

    def summary(self, lines: int = 3) -> str:
        """The first lines of text (no headings), for a suggestion in a mail."""
        text = [ln.strip() for ln in self.body.splitlines() if ln.strip()]
        return "\n".join([ln for ln in text if not ln.startswith("#")][:lines])

    def for_queue(self, queue: str) -> bool:
        return not self.queues or queue in self.queues


def split_front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    """The front matter as a dict, and the body."""
    lines = text.lstrip("\ufeff").splitlines()
    fence = lines[0].strip() if lines else ""
    kind = _FENCES.get(fence)
    if kind is None:
        raise ArticleError(f"{where}: must start with front matter ('+++' TOML or '---' YAML)")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == fence), None)
    if end is None:
        raise ArticleError(f"{where}: front matter is not closed with {fence!r}")
    head, body = "\n".join(lines[1:end]), "\n".join(lines[end + 1 :])
    try:
        data = tomllib.loads(head) if kind == "toml" else yaml.safe_load(head) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ArticleError(f"{where}: front matter is not valid {kind.upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ArticleError(f"{where}: front matter must be a table of keys")
    return data, body


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.pop(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArticleError(f"{where} key {key!r}: must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def parse_article(text: str, path: Path) -> Article:
    """An article from its file's text; ArticleError names the file and the key."""
    where = str(path)
    slug = path.stem
    if not SLUG.match(slug):
        raise ArticleError(f"{where}: the file name must be a slug (a-z, 0-9, '-'), got {slug!r}")
    data, body = split_front_matter(text, where)
    title = data.pop("title", None)
    if not isinstance(title, str) or not title.strip():
        raise ArticleError(f"{where} key 'title': required, a non-empty string")
    audience = data.pop("audience", "public")
    if audience not in AUDIENCES:
        raise ArticleError(f"{where} key 'audience': must be public or agents, got {audience!r}")
    tags, queues = _strings(data, "tags", where), _strings(data, "queues", where)
    if data:
        raise ArticleError(f"{where} key {sorted(data)[0]!r}: unknown (known: title, tags, "
                           "queues, audience)")  # fmt: skip
    return Article(slug, title.strip(), tags, queues, audience, body.strip(), path)


def render_article(article: Article) -> str:
    """The article as a file with TOML front matter (what `#kb-draft` writes)."""
    lines = [
        "+++",
        f"title = {_toml(article.title)}",
        f"tags = [{', '.join(_toml(t) for t in article.tags)}]",
        f"queues = [{', '.join(_toml(q) for q in article.queues)}]",
        f"audience = {_toml(article.audience)}",
        "+++",
        "",
        article.body.strip(),
        "",
    ]
    return "\n".join(lines)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
