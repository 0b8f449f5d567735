"""[learning]: learned routing (maildesk.learn; docs/learning.md).

    [learning]
    labels = ["queue", "category"]   # which ticket fields the model suggests (default: queue)
    min_examples = 50                # resolved/closed tickets a label needs before training
    apply_above = 0.9                # apply a suggestion above this confidence (absent: never)
    # apply_above = { queue = 0.9 }  # or per label
    retrain = "1d"                   # the scheduler retrains this often (absent: only by hand)
    queues = ["access", "hardware"]  # queues a suggestion may name (default: every queue)

Without the section the desk routes by rules only and never looks for a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from maildesk.config.reader import Reader, int_between, parse_duration

SECTION = "[learning]"
LABELS = ("queue", "category", "type")
KEYS = ("labels", "min_examples", "apply_above", "retrain", "queues")


@dataclass(frozen=True, kw_only=True)
class LearningConfig:
    enabled: bool = False  # the section is present
    labels: tuple[str, ...] = ("queue",)
    min_examples: int = 50
    apply_above: Mapping[str, float] = field(default_factory=dict)  # label -> threshold
    retrain: timedelta | None = None
    queues: tuple[str, ...] = ()  # empty: every configured queue

    def threshold(self, label: str) -> float | None:
        """The confidence above which a suggestion for `label` is applied; None: never."""
        return self.apply_above.get(label)


def read_learning(r: Reader, data: Mapping[str, Any], *, queues: set[str]) -> LearningConfig:
    """The [learning] section, checked; problems name the section and the key."""
    if "learning" not in data:
        return LearningConfig()
    t = r.table(data, "learning")
    labels = r.strings(t, SECTION, "labels") if "labels" in t else ("queue",)
    for label in labels:
        if label not in LABELS:
            r.problem(
                f"{SECTION} key 'labels'", f"unknown label {label!r} (known: queue, category, type)"
            )
    labels = tuple(dict.fromkeys(x for x in labels if x in LABELS))
    min_examples = r.take(t, SECTION, "min_examples", int_between(2, 10**7), 50)
    apply_above = _thresholds(r, t.pop("apply_above", None), labels)
    retrain = r.take(t, SECTION, "retrain", parse_duration, None)
    if retrain is not None and retrain < timedelta(minutes=1):
        r.problem(f"{SECTION} key 'retrain'", "must be at least '1m'")
        retrain = None
    eligible = r.strings(t, SECTION, "queues")
    for q in eligible:
        if q not in queues:
            known = ", ".join(sorted(queues))
            r.problem(f"{SECTION} key 'queues'", f"unknown queue {q!r} (known: {known})")
    r.done(t, SECTION, KEYS)
    return LearningConfig(
        enabled=True,
        labels=labels,
        min_examples=min_examples,
        apply_above=apply_above,
        retrain=retrain,
        queues=eligible,
    )


def _thresholds(r: Reader, value: object, labels: tuple[str, ...]) -> dict[str, float]:
    """A number (every label) or a table label -> number, each in (0, 1]."""
    if value is None:
        return {}
    place = f"{SECTION} key 'apply_above'"
    table = value if isinstance(value, Mapping) else dict.fromkeys(labels, value)
    found: dict[str, float] = {}
    for label, v in table.items():
        where = place if not isinstance(value, Mapping) else f"{SECTION} key 'apply_above.{label}'"
        if label not in labels:
            r.problem(where, f"label {label!r} is not in [learning] labels ({', '.join(labels)})")
        elif isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            r.problem(where, f"must be a confidence above 0 and at most 1, got {v!r}")
        else:
            found[label] = float(v)
    return found
