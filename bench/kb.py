"""Knowledge-base suggestions: precision@3 and time per suggestion on held-out questions.

The KB (bench/kb_set.toml, its source stated there) is written out as Markdown articles
with front matter and read by maildesk.kb like `[kb] path`; each held-out question is
asked as an acknowledgement asks it (`suggest`, up to 3, at `[kb] min_score`).

    precision@3  relevant articles among those suggested, over all suggestions made
    hit@3        questions whose article is among their suggestions
    none         questions that got no suggestion
    unrelated    off-topic questions that got a suggestion anyway (want 0)

Every `--scores` threshold gets a row (0 = plain BM25 ranking, no threshold), once with
one shared word enough and once with two (what acknowledgements use).

    python bench/kb.py [--scores 0 1 2 3] [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from common import target

from maildesk.config.kb import KbConfig
from maildesk.kb import KnowledgeBase, knowledge_base
from maildesk.kb.articles import Article, render_article

SET = Path(__file__).with_name("kb_set.toml")


def build(folder: Path, data: dict[str, Any]) -> KnowledgeBase:
    for a in data["articles"]:
        path = folder / f"{a['slug']}.md"
        article = Article(a["slug"], a["title"], tuple(a["tags"]), (), "public", a["body"], path)
        path.write_text(render_article(article), encoding="utf-8")
    return knowledge_base(KbConfig(path=folder, drafts=folder / "drafts"))


def measure(
    kb: KnowledgeBase, data: dict[str, Any], min_score: float, shared: int, repeat: int
) -> dict[str, Any]:
    asked = [(q, a["slug"]) for a in data["articles"] for q in a["questions"]]
    shown = relevant = hits = none = 0
    start = time.perf_counter()
    for _ in range(repeat):
        for question, _slug in asked:
            kb.suggest(question, queue="it", count=3, min_score=min_score, min_shared=shared)
    ms = (time.perf_counter() - start) * 1000 / (repeat * len(asked))
    for question, slug in asked:
        got = [
            s.article.slug
            for s in kb.suggest(
                question, queue="it", count=3, min_score=min_score, min_shared=shared
            )
        ]
        shown += len(got)
        relevant += slug in got
        hits += slug in got
        none += not got
    unrelated = sum(
        bool(kb.suggest(q, queue="it", count=3, min_score=min_score, min_shared=shared))
        for q in data["unrelated"]["questions"]
    )
    return {
        "min_score": min_score,
        "min_shared": shared,
        "questions": len(asked),
        "precision_at_3": round(relevant / shown, 3) if shown else None,
        "hit_at_3": round(hits / len(asked), 3),
        "none": none,
        "unrelated_suggested": f"{unrelated}/{len(data['unrelated']['questions'])}",
        "ms_per_suggestion": round(ms, 3),
    }


def report(articles: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run as run_all.py reads it; the targets are the acknowledgement's settings."""
    used = next((r for r in rows if r["min_shared"] == 2 and r["min_score"] == 2.0), None)
    precision = used["precision_at_3"] if used else None
    ms = used["ms_per_suggestion"] if used else None
    return {
        "benchmark": "kb",
        "articles": articles,
        "questions": rows[0]["questions"],
        "results": rows,
        "targets": [
            target("precision@3 (shared 2, min_score 2)", precision, ">= 0.7",
                   None if precision is None else precision >= 0.7),
            target("ms per suggestion", ms, "< 5", None if ms is None else ms < 5),
        ],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = tomllib.loads(SET.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        kb = build(Path(tmp), data)
        repeat = 3 if args.quick else args.repeat
        rows = [measure(kb, data, s, n, repeat) for n in (1, 2) for s in args.scores]
    if args.json:
        print(json.dumps(report(len(kb.articles), rows), indent=2))
        return 0
    print(f"knowledge base: {len(kb.articles)} articles, {rows[0]['questions']} held-out questions")
    print("shared  min_score  precision@3  hit@3  no suggestion  unrelated  ms/suggestion")
    for r in rows:
        p = "-" if r["precision_at_3"] is None else f"{r['precision_at_3']:.3f}"
        print(
            f"{r['min_shared']:6d}  {r['min_score']:9.1f}  {p:>11}  {r['hit_at_3']:5.3f}"
            f"  {r['none']:13d}  {r['unrelated_suggested']:>9}  {r['ms_per_suggestion']:13.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
