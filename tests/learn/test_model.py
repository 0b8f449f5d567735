"""The model: the per-message arithmetic gives scikit-learn's own probabilities; signed
bytes only load with this desk's key."""

from __future__ import annotations

import random

import pytest

from maildesk.learn.model import LearnUnavailable, Model, dump, load, signing_key, ticket_text
from maildesk.learn.train import fit_and_score
from tests.learn.synthetic import WORDS, text_for

pytest.importorskip("sklearn")


def _data(n: int, queues: list[str]) -> tuple[list[str], list[str]]:
    rnd = random.Random(3)
    labels = [queues[i % len(queues)] for i in range(n)]
    return [ticket_text(*text_for(q, rnd)) for q in labels], labels


@pytest.mark.parametrize("queues", [list(WORDS), ["access", "hardware"]])
def test_rank_gives_the_estimators_probabilities(queues: list[str]) -> None:
    texts, labels = _data(90, queues)
    estimator, metrics = fit_and_score(texts, labels)
    assert metrics["accuracy"] > 0.9 and metrics["top2_accuracy"] >= metrics["accuracy"]
    model = Model("queue", 1, estimator)
    expected = estimator.predict_proba(texts[:20])
    for text, row in zip(texts[:20], expected, strict=True):
        ranked = dict(model.rank(text, top=len(queues)))
        for cls, p in zip(estimator.classes_, row, strict=True):
            assert ranked[cls] == pytest.approx(p, abs=1e-6)  # float32 features
    assert model.rank("no known word at all zzz")  # nothing matches: still an answer


def test_only_this_desks_signature_loads() -> None:
    texts, labels = _data(60, ["access", "it"])
    estimator, _ = fit_and_score(texts, labels, cross_validate=False)
    blob, digest = dump("queue", estimator, signing_key("our secret of 16+ chars"))
    assert load("queue", 1, blob, digest, signing_key("our secret of 16+ chars")).version == 1
    with pytest.raises(LearnUnavailable, match="not signed by this desk"):
        load("queue", 1, blob, digest, signing_key("another desk's secret"))
    with pytest.raises(LearnUnavailable, match="unknown format"):
        load("category", 1, blob, digest, signing_key("our secret of 16+ chars"))
