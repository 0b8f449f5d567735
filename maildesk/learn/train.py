"""Training: the desk's resolved and closed tickets (subject and first message, each label's
final value, i.e. after agents corrected it), cross-validated, stored as a new version.

`fit_and_score` is the pure part (texts and labels in, estimator and metrics out), shared with
`bench/learn.py --direct`; `train_label` reads the store and writes the model back.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maildesk.app import App
from maildesk.learn.model import build_estimator, dump, require_sklearn, signing_key, ticket_text
from maildesk.learn.predict import allowed_values
from maildesk.store import repo
from maildesk.store.db import transaction

log = logging.getLogger(__name__)

FOLDS = 3
SEED = 20261202
THRESHOLDS = (0.5, 0.7, 0.9)  # coverage and precision are shown at these and at apply_above


@dataclass(frozen=True)
class TrainResult:
    label: str
    examples: int
    version: int | None = None  # None: nothing stored (see skipped)
    skipped: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


def score(
    y_true: Sequence[str], proba: Any, classes: Sequence[str], thresholds: Sequence[float]
) -> dict[str, Any]:
    """Accuracy, macro-F1, top-2 accuracy, the worst confused pairs, coverage and precision
    (among the suggestions above it) at each threshold, from out-of-sample probabilities."""
    from sklearn.metrics import f1_score

    order = proba.argsort(axis=1)[:, ::-1]
    best = [classes[i] for i in order[:, 0]]
    second = [classes[i] for i in order[:, 1]] if len(classes) > 1 else best
    confidence = proba.max(axis=1)
    right = [t == p for t, p in zip(y_true, best, strict=True)]
    n = len(y_true)
    pairs = Counter((t, p) for t, p in zip(y_true, best, strict=True) if t != p)
    at: dict[str, dict[str, float]] = {}
    for t in sorted(set(thresholds)):
        covered = [ok for ok, c in zip(right, confidence, strict=True) if c > t]
        at[f"{t:g}"] = {
            "coverage": len(covered) / n if n else 0.0,
            "precision": sum(covered) / len(covered) if covered else 0.0,
        }
    return {
        "examples": n,
        "accuracy": sum(right) / n if n else 0.0,
        "macro_f1": float(f1_score(y_true, best, average="macro", zero_division=0)),
        "top2_accuracy": sum(t in (a, b) for t, a, b in zip(y_true, best, second, strict=True))
        / (n or 1),
        "worst_pairs": [
            {"true": t, "predicted": p, "count": c} for (t, p), c in pairs.most_common(5)
        ],
        "thresholds": at,
    }


def fit_and_score(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    folds: int = FOLDS,
    cross_validate: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Cross-validate (stratified, fixed seed), then fit on everything; (estimator, metrics)."""
    require_sklearn()
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    metrics: dict[str, Any] = {"classes": dict(Counter(labels).most_common())}
    if cross_validate:
        started = time.perf_counter()
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
        proba = cross_val_predict(
            build_estimator(folds=folds), list(texts), list(labels), cv=cv, method="predict_proba"
        )
        metrics.update(score(list(labels), proba, sorted(set(labels)), thresholds))
        metrics["cv_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    estimator = build_estimator(folds=folds).fit(list(texts), list(labels))
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    return estimator, metrics


def examples_for(app: App, label: str, since: datetime | None) -> tuple[list[str], list[str]]:
    """The texts and values to learn `label` from: unset values and values no longer
    allowed (a queue not configured or not eligible, an unknown type) are left out."""
    with transaction(app.sessions, readonly=True) as session:
        rows = repo.training_examples(session, since)
    allowed = allowed_values(app.config, label)
    texts, labels = [], []
    for row in rows:
        value = getattr(row, label)
        if value and (allowed is None or value in allowed):
            texts.append(ticket_text(row.subject, row.body))
            labels.append(value)
    return texts, labels


def train_label(
    app: App, label: str, now: datetime, *, since: datetime | None = None
) -> TrainResult:
    """Train, cross-validate and store a new version of `label`'s model (if there are
    enough examples: `[learning] min_examples`, and two values with `FOLDS` each)."""
    require_sklearn()
    texts, labels = examples_for(app, label, since)
    counts = Counter(labels)
    keep = {v for v, c in counts.items() if c >= FOLDS}
    pairs = [(t, v) for t, v in zip(texts, labels, strict=True) if v in keep]
    minimum = app.config.learning.min_examples
    if len(pairs) < minimum or len(keep) < 2:
        why = f"{len(pairs)} examples in {len(keep)} values (needs {minimum} in at least 2)"
        return TrainResult(label, len(pairs), skipped=why)
    threshold = app.config.learning.threshold(label)
    thresholds = (*THRESHOLDS, threshold) if threshold is not None else THRESHOLDS
    estimator, metrics = fit_and_score(
        [t for t, _ in pairs], [v for _, v in pairs], thresholds=thresholds
    )
    metrics["rare_values_left_out"] = sorted(set(counts) - keep)
    metrics["apply_above"] = threshold
    with transaction(app.sessions) as session:
        secret = app.config.desk.secret or repo.desk_secret(session)
        blob, digest = dump(label, estimator, signing_key(secret))
        metrics["bytes"] = len(blob)
        version = repo.save_model(session, label, blob, digest, metrics, now)
    log.info(
        "learned %s model v%d from %d tickets: accuracy %.3f",
        label,
        version,
        len(pairs),
        metrics.get("accuracy", 0.0),
    )
    return TrainResult(label, len(pairs), version, metrics=metrics)
