"""The pipeline's learned-routing step: for each label no rule set, the newest model's
suggestion, applied above `[learning] apply_above`.

Each daemon keeps the newest model per label in memory (per database engine) and asks the
store for newer versions at most every POLL, so a model trained by any daemon or by
`maildesk learn` is used everywhere without a restart. Nothing here may fail the pipeline:
without scikit-learn, without a model, or with a model that does not load, the desk routes
by rules only, and says so once in the log.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.config import Config
from maildesk.learn.model import LearnUnavailable, Model, load, signing_key, ticket_text
from maildesk.mail.message import ParsedMessage
from maildesk.routing.rules import RoutingDecision
from maildesk.store import repo
from maildesk.terms import TYPES

log = logging.getLogger(__name__)

POLL = timedelta(minutes=1)  # how often a daemon asks for a newer model


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    label: str
    value: str
    confidence: float
    applied: bool
    version: int

    def json(self) -> dict[str, Any]:
        """As the `routed` event, the notice and `route test --json` show it."""
        return {
            "label": self.label,
            "value": self.value,
            "confidence": round(self.confidence, 4),
            "applied": self.applied,
            "version": self.version,
        }


@dataclass
class _Loaded:
    """One database's models in this process."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    models: dict[str, Model] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # what was loaded (or refused)
    checked_at: datetime | None = None
    said: set[str] = field(default_factory=set)  # what was logged once


_LOADED: weakref.WeakKeyDictionary[Engine, _Loaded] = weakref.WeakKeyDictionary()


def forget(app: App) -> None:
    """Drop this process's models of app's database: the next message loads the newest."""
    _LOADED.pop(app.engine, None)


def models(app: App, session: Session, now: datetime) -> dict[str, Model]:
    """The newest loadable model per configured label (asks the store at most every POLL)."""
    loaded = _LOADED.setdefault(app.engine, _Loaded())
    with loaded.lock:
        last = loaded.checked_at
        if last is not None and last <= now < last + POLL:
            return loaded.models
        loaded.checked_at = now
        # In a savepoint of its own: should a query fail, the message's transaction goes on.
        with session.begin_nested():
            newest = repo.model_versions(session)
            for label in app.config.learning.labels:
                version = newest.get(label)
                if version is None:
                    _once(loaded, f"none:{label}", "no learned %s model yet: rules only", label)
                elif loaded.versions.get(label) != version:
                    loaded.versions[label] = version
                    _load(app, session, loaded, label, version)
        return loaded.models


def _load(app: App, session: Session, loaded: _Loaded, label: str, version: int) -> None:
    stored = repo.stored_model(session, label, version)
    if stored is None:
        return
    try:
        secret = app.config.desk.secret or repo.desk_secret(session)
        model = load(label, version, stored.blob, stored.digest, signing_key(secret))
    except LearnUnavailable as exc:
        _once(loaded, f"bad:{exc}", "learned routing off for %s: %s", label, exc)
        loaded.models.pop(label, None)
        return
    except Exception as exc:  # a model that does not unpickle: the rules still route
        _once(
            loaded, f"bad:{label}:{version}", "learned %s model v%d broken: %s", label, version, exc
        )
        loaded.models.pop(label, None)
        return
    loaded.models[label] = model
    log.info("using learned %s model v%d", label, version)


def _once(loaded: _Loaded, key: str, text: str, *args: Any) -> None:
    if key not in loaded.said:
        loaded.said.add(key)
        log.warning(text, *args)


def rule_set(config: Config, decision: RoutingDecision) -> set[str]:
    """The labels a rule (or, for the queue, the sender's organisation) decided."""
    by_name = {rule.name: rule for rule in config.rules}
    found = {
        label
        for name in decision.matched
        if name in by_name
        for label in ("queue", "category", "type")
        if getattr(by_name[name].actions, label)
    }
    org = config.organisation(decision.organisation)
    if org is not None and org.queue:
        found.add("queue")
    return found


def suggest(
    app: App, session: Session, msg: ParsedMessage, decision: RoutingDecision, now: datetime
) -> tuple[RoutingDecision, list[Suggestion]]:
    """The decision with confident suggestions applied, and every suggestion made; the
    decision unchanged (and no suggestions) if learning is off or anything goes wrong."""
    config = app.config
    if not config.learning.enabled:
        return decision, []
    try:
        return _suggest(app, session, msg, decision, now)
    except Exception as exc:  # never fail the pipeline: rules only
        loaded = _LOADED.setdefault(app.engine, _Loaded())
        _once(loaded, f"error:{type(exc).__name__}", "learned routing failed, rules only: %r", exc)
        return decision, []


def _suggest(
    app: App, session: Session, msg: ParsedMessage, decision: RoutingDecision, now: datetime
) -> tuple[RoutingDecision, list[Suggestion]]:
    available = models(app, session, now)
    if not available:
        return decision, []
    config = app.config
    decided = rule_set(config, decision)
    text = ticket_text(msg.subject, msg.body_text)
    found: list[Suggestion] = []
    changes: dict[str, Any] = {}
    for label in config.learning.labels:
        model = available.get(label)
        if model is None or label in decided:
            continue
        allowed = allowed_values(config, label)
        ranked = [(v, p) for v, p in model.rank(text) if allowed is None or v in allowed]
        if not ranked:
            continue
        value, confidence = ranked[0]
        threshold = config.learning.threshold(label)
        applied = threshold is not None and confidence > threshold
        if applied:
            changes[label] = value
        found.append(
            Suggestion(
                label=label,
                value=value,
                confidence=confidence,
                applied=applied,
                version=model.version,
            )
        )
    return (replace(decision, **changes) if changes else decision), found


def allowed_values(config: Config, label: str) -> set[str] | None:
    """What a suggestion for `label` may be: a configured (eligible) queue, a known type."""
    if label == "queue":
        return set(config.learning.queues or (q.name for q in config.queues))
    if label == "type":
        return set(TYPES)
    return None


def event_data(suggestions: list[Suggestion]) -> dict[str, Any]:
    """What the `routed` event records of the suggestions (nothing when there are none)."""
    return {"suggestions": [s.json() for s in suggestions]} if suggestions else {}
