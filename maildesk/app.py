"""The application object: everything built from one config, passed explicitly (no globals)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from maildesk.config import Config, load_config
from maildesk.errors import ConfigError, ConfigProblem, StoreUnavailable
from maildesk.mail.render import Templates
from maildesk.mail.transport import Transport, transport_for
from maildesk.metrics import Metrics
from maildesk.routing.proof import Role, TokenCodec, plus_address
from maildesk.store import repo
from maildesk.store import tickets as repo_tickets
from maildesk.store.db import (
    create_db_engine,
    current_revision,
    session_factory,
    transaction,
    upgrade,
)
from maildesk.terms import Status

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sample_context(config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The context every template gets, with every documented field, and the extra
    variables some templates get (render.EXTRAS says which); for checking at load time."""
    desk = {
        "name": config.desk.name,
        "address": config.desk.address,
        "reopen_days": config.desk.reopen_window.days,
    }
    message = {
        "subject": "Printer on fire",
        "from": "requester@example.org",
        "from_name": "Requester",
        "body_text": "It is burning.",
        "body_omitted": 2500,  # as in a notice quoting part of a long message
        "attachments": [
            {
                "filename": "photo.jpg",
                "content_type": "image/jpeg",
                "size": 1,
                # the keys agent notices add (maildesk.notify.files)
                "size_text": "1 bytes",
                "number": 1,
                "attached": False,
                "inline": False,
                "save": "maildesk ticket attachment save MD-1 1",
            }
        ],
    }
    recipient = {"email": "requester@example.org", "name": "Requester"}
    context = {
        "desk": desk,
        "ticket": _sample_ticket(config),
        "message": message,
        "recipient": recipient,
    }
    return context, _sample_extras(config)


def _sample_ticket(config: Config) -> dict[str, Any]:
    """A sample ticket with every field a template may use."""
    return {
        "id": 42,
        "ref": f"{config.desk.ref_prefix}-42",
        "subject": "Printer on fire",
        "status": Status.NEW,
        "priority": "P3",
        "queue": config.default_queue.name,
        "type": "incident",
        "category": None,
        "assignee": None,
        "tags": ["sample"],
        "requester": "requester@example.org",
        "requester_name": "Requester",
        "organisation": "Example Corp",
        "vip": True,
        "impact": "high",
        "urgency": "medium",
        "watchers": ["watcher@example.org"],
        "matched_rules": ["sample rule"],
        "reply_address": config.desk.address,
        "status_url": "http://127.0.0.1:8025/status/42-0123456789abcdef0123456789abcdef",
        "sla_policy": "standard",
        "response_due": "2026-11-23T10:00:00Z",
        "resolution_due": "2026-11-25T17:00:00Z",
        "problem": f"{config.desk.ref_prefix}-7",
        "known_error": "Restart the print spooler",
        "alert": {
            "monitor": "nagios",
            "key": "web1/HTTP",
            "state": "problem",
            "severity": "CRITICAL",
            "count": 3,
            "first_at": "2026-11-23T09:00:00Z",
            "last_at": "2026-11-23T09:10:00Z",
        },
        "catalog_item": "new-laptop",
        "fields": [{"name": "user", "label": "For whom", "value": "dana@example.org"}],
    }


def _sample_extras(config: Config) -> dict[str, Any]:
    """Variables only some templates get (docs/templates.md says which)."""
    return {
        "agent": {"name": "Agent"},
        "flags": ["From claims agent agent@example.com, but it has no proof"],
        "errors": ['line 1 "#priority P9": priority must be one of P1, P2, P3, P4'],
        "commands": ["#priority P9"],
        "changes": ["priority: P3 -> P2"],
        "assigned_by": "agent@example.com",
        "noted_by": "Agent <agent@example.com>",
        "merged_into": {"ref": f"{config.desk.ref_prefix}-7", "subject": "Printers"},
        "why": "no answer from the requester",
        "resolve_after": 2,
        "tickets": [_status_line(config, "open", None)],
        "resolved": [_status_line(config, "resolved", "2026-11-20T09:00:00Z")],
        "csat": {"score": "bad", "comment": "took a week", "at": "2026-11-25T17:00:00Z"},
        "change": {
            "start": "2026-12-05T21:00:00Z",
            "end": "2026-12-05T22:30:00Z",
            "start_local": "Sat 5 Dec 22:00",
            "end_local": "Sat 5 Dec 23:30",
            "timezone": config.desk.timezone,
            "assignee": "agent@example.com",
        },
        "problem": {
            "ref": f"{config.desk.ref_prefix}-7",
            "subject": "Print spooler crashes",
            "known_error": "Restart the print spooler",
            "resolution": "The spooler was patched.",
            "incidents": [f"{config.desk.ref_prefix}-42"],
        },
        "sla": {
            "kind": "breach",
            "target": "resolution",
            "target_name": "resolution",
            "policy": "standard",
            "priority": "P2",
            "limit": "16h00m",
            "consumed": "16h05m",
            "crossed_at": "2026-11-25T17:00:00+00:00",
            "escalated_to": ["lead@example.com"],
        },
        **_catalog_extras(),
    }


def _catalog_extras() -> dict[str, Any]:
    """What the service-catalog mails get (maildesk.notify.approval_notices)."""
    item = {
        "name": "new-laptop",
        "title": "New laptop",
        "description": "A laptop for a new or existing employee.",
        "type": "request",
        "queue": "it",
        "fields": [
            {"name": "user", "label": "For whom", "required": True, "choices": [], "kind": "text"}
        ],
        "needs_approval": True,
        "approvals_required": 1,
        "example_subject": "Request: New laptop",
        "example_body": "For whom: ...",
    }
    return {
        "items": [item],
        "item": item,
        "missing": [{"name": "user", "label": "For whom", "problem": "missing", "example": "..."}],
        "approval": {"approver": "carol@example.com", "required": 1, "of": 2, "timeout_hours": 72},
        "reason": "not in this year's budget",
    }


def _status_line(config: Config, status: str, resolved_at: str | None) -> dict[str, Any]:
    """A ticket as a status list shows it (maildesk.notify.selfservice)."""
    return {
        "ref": f"{config.desk.ref_prefix}-42",
        "subject": "Printer on fire",
        "status": status,
        "assignee_name": "Agent",
        "updated_at": "2026-11-23T09:00:00Z",
        "resolved_at": resolved_at,
        "next_due": "2026-11-25T17:00:00Z",
    }


def load_templates(config: Config) -> Templates:
    """The template set for config; a template that fails to render is a config error."""
    templates = Templates(
        config.notify.templates,
        {q.name: q.templates for q in config.queues if q.templates},
        timezone=config.desk.timezone,
    )
    sample, extras = sample_context(config)
    problems = [
        ConfigProblem(str(config.path), "[notify] templates", p)
        for p in templates.check(sample, extras)
    ]
    for rule in config.rules:
        chosen = rule.actions.acknowledge
        if isinstance(chosen, str):
            problems += [
                ConfigProblem(str(config.path), f"[[rules]] '{rule.name}' key 'set.acknowledge'", p)
                for p in templates.check(sample, extras, only=[f"requester/{chosen}"])
            ]
    if problems:
        raise ConfigError(problems)
    return templates


def vanished_queues(config: Config, session: Session) -> list[ConfigProblem]:
    """Queues no longer in config that still have open tickets (their replies would notify
    nobody), unless a queue's `renamed_from` takes them."""
    kept = {q.name for q in config.queues} | {old for q in config.queues for old in q.renamed_from}
    return [
        ConfigProblem(
            str(config.path),
            "[[queues]]",
            f"queue {name!r} is gone but has {n} open ticket{'s' if n != 1 else ''}: "
            f'add renamed_from = "{name}" to the queue that takes them over, '
            f"or move them first with `maildesk queue move {name} NEW`",
        )
        for name, n in sorted(repo_tickets.open_tickets_by_queue(session).items())
        if name not in kept
    ]


def check_stored_queues(config: Config) -> None:
    """vanished_queues against the database config names (none if it has no schema yet);
    raise ConfigError listing them."""
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or ":memory:").exists():
        return  # a desk not yet initialised has no tickets to lose
    engine = create_db_engine(config.database.url, connect_timeout=config.database.connect_timeout)
    try:
        if current_revision(engine) is None:
            return
        with transaction(session_factory(engine), readonly=True) as session:
            problems = vanished_queues(config, session)
    finally:
        engine.dispose()
    if problems:
        raise ConfigError(problems)


@dataclass
class Replay:
    """Mail from a mailbox's past being imported, and what its notifications did.

    `historic` (the default of `maildesk import`): nothing is mailed, each suppressed
    notification is recorded with SUPPRESSED_REASON, and the pipeline dates what it does by
    each message's own Date. Without it (`import --notify`) the mail runs as new mail does.
    """

    historic: bool = True
    sent: Counter[str] = field(default_factory=Counter)  # notifications queued, by kind
    suppressed: Counter[str] = field(default_factory=Counter)  # held back, by kind
    without_sla: int = 0  # tickets older than the SLA's horizon, opened with no clock


SUPPRESSED_REASON = "imported mail from the past (maildesk import without --notify)"


@dataclass
class App:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    templates: Templates
    transport: Transport
    clock: Callable[[], datetime] = field(default=utcnow)
    metrics: Metrics = field(default_factory=Metrics)  # this daemon's counters
    _tokens: TokenCodec | None = field(default=None, repr=False)
    replay: Replay | None = None  # set while `maildesk import` runs mail through the pipeline

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        transport: Transport | None = None,
        clock: Callable[[], datetime] | None = None,
        migrate: bool = True,
    ) -> App:
        """Build the app from config; bring the schema up to date unless migrate is False."""
        templates = load_templates(config)
        engine = create_db_engine(
            config.database.url,
            busy_timeout=config.database.busy_timeout,
            connect_timeout=config.database.connect_timeout,
        )
        if migrate:
            upgrade(engine)
        app = cls(
            config=config,
            engine=engine,
            sessions=session_factory(engine),
            templates=templates,
            transport=transport or transport_for(config.outbound),
            clock=clock or utcnow,
        )
        if migrate:
            # Resolve the token secret now, not inside some later write transaction (on
            # SQLite a second writer in the same thread would wait for itself).
            _ = app.tokens
        return app

    def pinned(self) -> App:
        """A copy whose config and templates a concurrent reload cannot change."""
        _ = self.tokens  # resolve the secret once here, not once per message
        return replace(self)

    def now(self) -> datetime:
        return self.clock()

    def ref(self, ticket_id: int) -> str:
        return f"{self.config.desk.ref_prefix}-{ticket_id}"

    @property
    def tokens(self) -> TokenCodec:
        """Reply tokens under `[desk] secret`, or else the secret kept in the database."""
        if self._tokens is None:
            secret = self.config.desk.secret
            if secret is None:
                with transaction(self.sessions) as session:
                    secret = repo.desk_secret(session)
            self._tokens = TokenCodec(secret.encode())
        return self._tokens

    def reply_address(self, ticket_id: int, role: Role = "requester", agent: str = "") -> str:
        """support+TOKEN@…: replies to it thread; an agent's also proves that agent."""
        return plus_address(self.config.desk.address, self.tokens.mint(ticket_id, role, agent))

    def status_url(self, ticket_id: int) -> str | None:
        """The requester's status page of a ticket, when `[http] status_page` is on."""
        http = self.config.http
        if not (http.enabled and http.status_page):
            return None
        return f"{http.base_url}/status/{self.tokens.status_token(ticket_id)}"

    def reload(self) -> bool:
        """Re-read the config file; on any error keep the old config and return False."""
        try:
            config = load_config(self.config.path)
            templates = load_templates(config)
            with transaction(self.sessions, readonly=True) as session:
                problems = vanished_queues(config, session)
            if problems:
                raise ConfigError(problems)
        except ConfigError as exc:
            log.error("config reload refused, keeping the old config:\n%s", exc)
            return False
        except StoreUnavailable as exc:
            log.error("config reload refused, cannot count the queues' tickets: %s", exc)
            return False
        if config.database.url != self.config.database.url:
            log.warning("[database] url changed; restart maildesk to use the new database")
            config = replace(config, database=self.config.database)
        if config.outbound != self.config.outbound:
            self.transport = transport_for(config.outbound)
        if config.desk.secret != self.config.desk.secret:
            self._tokens = None
        self.config, self.templates = config, templates
        log.info("config reloaded from %s (%d rules)", config.path, len(config.rules))
        self.follow_renamed_queues()
        return True

    def follow_renamed_queues(self) -> int:
        """Move the tickets of each queue's old names (`renamed_from`) to it; how many."""
        moved = 0
        with transaction(self.sessions) as session:
            for queue in self.config.queues:
                for old in queue.renamed_from:
                    n = repo_tickets.move_queue(
                        session, old, queue.name, self.now(), actor="config", via="config"
                    )
                    if n:
                        log.info("moved %d tickets from queue %r to %r", n, old, queue.name)
                    moved += n
        return moved

    def close(self) -> None:
        self.engine.dispose()
