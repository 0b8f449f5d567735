"""Feedback: how the model's suggestions fared, read from the events. A suggestion counts as
right when the ticket's label ended where it said (an agent's later #queue/#category/#type
change decides); an applied one that an agent changed is a correction."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session

from maildesk.store import repo


def report(session: Session) -> dict[str, Any]:
    """Per label, and per label and month: suggested, applied, corrected, right."""
    routed = repo.routed_with_suggestions(session)
    changes = repo.label_changes(session, [ticket_id for ticket_id, _, _ in routed])
    totals: dict[str, dict[str, int]] = defaultdict(_counts)
    months: dict[tuple[str, str], dict[str, int]] = defaultdict(_counts)
    for ticket_id, at, data in routed:
        for s in data["suggestions"]:
            label, value = s["label"], s["value"]
            routed_to = value if s["applied"] else data.get(label)
            later = [to for kind, _actor, to in changes.get(ticket_id, []) if kind == label]
            final = later[-1] if later else routed_to
            for counts in (totals[label], months[(label, f"{at:%Y-%m}")]):
                counts["suggested"] += 1
                counts["right"] += final == value
                if s["applied"]:
                    counts["applied"] += 1
                    counts["corrected"] += bool(later) and final != value
    return {
        "labels": {label: _rates(c) for label, c in sorted(totals.items())},
        "months": [
            {"label": label, "month": month, **_rates(c)}
            for (label, month), c in sorted(months.items())
        ],
    }


def _counts() -> dict[str, int]:
    return {"suggested": 0, "applied": 0, "corrected": 0, "right": 0}


def _rates(c: dict[str, int]) -> dict[str, Any]:
    applied = c["applied"]
    return {
        **c,
        "accuracy": round(c["right"] / c["suggested"], 4) if c["suggested"] else None,
        "applied_accuracy": round(1 - c["corrected"] / applied, 4) if applied else None,
    }
