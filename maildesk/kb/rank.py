"""Words and BM25 for the knowledge base: pure Python over a few hundred articles.

Words are runs of letters and digits, lowercased, common English words dropped, and a
light suffix stripping ("connects", "connecting" -> "connect") so a question finds an
article worded a little differently. A field's words count its weight times (title 3,
tags 2, text 1): BM25F in its simplest form.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

K1, B = 1.2, 0.75
_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = """a about after again all also am an and any are as at be because been before being
    but by can cannot could did do does doing done for from get gets got had has have
    having he her here hi hello his how i if in into is it its just me my no nor not now of
    off on once only or other our out over please same she should so some still such than
    thank thanks that the their them then there these they this those to too under until
    up us very was we were what when where which while who why will with would you your
    yours dear regards best"""
STOPWORDS = frozenset(_STOPWORDS.split())
_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """The words BM25 counts."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class Bm25:
    """An index of documents, each a list of (weight, text) fields."""

    def __init__(self, docs: Sequence[Iterable[tuple[float, str]]]) -> None:
        self.tf: list[dict[str, float]] = []
        self.length: list[float] = []
        for fields in docs:
            counts: dict[str, float] = {}
            for weight, text in fields:
                for t in terms(text):
                    counts[t] = counts.get(t, 0.0) + weight
            self.tf.append(counts)
            self.length.append(float(sum(counts.values())))
        n = len(self.tf)
        self.avg = (sum(self.length) / n) if n else 1.0
        df: Counter[str] = Counter(t for counts in self.tf for t in counts)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def scores(self, query: str) -> list[tuple[float, int]]:
        """Each document's BM25 score for the query (0 for no shared word), and how many
        distinct query words it shares."""
        q = set(terms(query))
        out = []
        for counts, length in zip(self.tf, self.length, strict=True):
            norm = K1 * (1 - B + B * length / (self.avg or 1.0))
            shared = [t for t in q if counts.get(t)]
            score = sum(self.idf[t] * counts[t] * (K1 + 1) / (counts[t] + norm) for t in shared)
            out.append((score, len(shared)))
        return out

    @staticmethod
    def query_size(query: str) -> int:
        return len(set(terms(query)))
