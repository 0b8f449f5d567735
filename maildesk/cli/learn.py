"""`maildesk learn`: train learned routing on the desk's resolved tickets, or report how its
suggestions fared; and the suggestions `maildesk route test` shows (docs/learning.md)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from maildesk.app import App
from maildesk.cli.common import EX_OK, Parsers, open_app, print_json
from maildesk.config import Config
from maildesk.config.learning import LABELS
from maildesk.learn import feedback
from maildesk.learn.model import require_sklearn
from maildesk.learn.predict import suggest
from maildesk.learn.train import train_label
from maildesk.mail.message import ParsedMessage
from maildesk.routing.rules import RoutingDecision
from maildesk.store import repo
from maildesk.store.db import transaction


def cmd_learn(args: argparse.Namespace) -> int:
    """Train (cross-validate, store a new version of) each label's model, or --report."""
    app = open_app(args)
    try:
        if args.report:
            return _report(app, args.json)
        require_sklearn()
        labels = [args.label] if args.label else list(app.config.learning.labels)
        since = _since(args.since)
        results = [train_label(app, label, app.now(), since=since) for label in labels]
    finally:
        app.close()
    if args.json:
        print_json({"models": [r.__dict__ for r in results]})
        return EX_OK
    for r in results:
        if r.version is None:
            print(f"{r.label}: not trained: {r.skipped}")
            continue
        _print_metrics(r.label, r.version, r.examples, r.metrics)
    return EX_OK


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _print_metrics(label: str, version: int, examples: int, m: dict[str, Any]) -> None:
    print(f"{label}: model v{version} from {examples} tickets ({len(m['classes'])} values)")
    print(
        f"  cross-validated: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
        f"top-2 {m['top2_accuracy']:.3f}; trained in {m['train_seconds']:.1f}s"
    )
    for t, at in m["thresholds"].items():
        mark = "  <- apply_above" if m.get("apply_above") == float(t) else ""
        print(f"  above {t}: coverage {at['coverage']:.1%}, precision {at['precision']:.1%}{mark}")
    for pair in m["worst_pairs"]:
        print(f"  confused: {pair['true']} taken for {pair['predicted']} ({pair['count']}x)")


def _report(app: App, as_json: bool) -> int:
    with transaction(app.sessions, readonly=True) as session:
        result = feedback.report(session) | {"models": repo.list_models(session)}
    if as_json:
        models = [m | {"created_at": m["created_at"].isoformat()} for m in result["models"]]
        print_json(result | {"models": models})
        return EX_OK
    for m in result["models"]:
        acc = m["metrics"].get("accuracy")
        shown = f", cross-validated accuracy {acc:.3f}" if acc is not None else ""
        print(
            f"{m['label']} model v{m['version']}, trained {m['created_at']:%Y-%m-%d %H:%M}{shown}"
        )
    if not result["labels"]:
        print("no suggestions recorded yet")
    for row in result["months"]:
        right = row["accuracy"]
        applied = row["applied_accuracy"]
        print(
            f"{row['month']} {row['label']}: {row['suggested']} suggested, "
            f"{right:.1%} right; {row['applied']} applied, {row['corrected']} corrected by agents"
            + (f" ({applied:.1%} kept)" if applied is not None else "")
        )
    return EX_OK


def route_suggestions(
    config: Config, msg: ParsedMessage, decision: RoutingDecision, now: datetime
) -> tuple[RoutingDecision, list[dict[str, Any]]]:
    """For `route test`: the decision with suggestions applied, and the suggestions."""
    if not config.learning.enabled:
        return decision, []
    app = App.build(config, migrate=False)
    try:
        with transaction(app.sessions, readonly=True) as session:
            decided, found = suggest(app, session, msg, decision, now)
    finally:
        app.close()
    return decided, [s.json() for s in found]


def add_learn(parsers: Parsers) -> None:
    """`maildesk learn [--label L] [--since DATE] [--report] [--json]`."""
    sp = parsers.add(
        "learn", cmd_learn, "train learned routing on resolved tickets", [parsers.json_flag]
    )
    sp.add_argument("--label", choices=LABELS, help="only this label (default: [learning] labels)")
    sp.add_argument("--since", help="only tickets created since this date (ISO, e.g. 2026-01-01)")
    sp.add_argument(
        "--report", action="store_true", help="how the suggestions fared (agents' corrections)"
    )
