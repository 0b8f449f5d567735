"""The application object: everything built from one config, passed explicitly (no globals)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from maildesk.config import Config, load_config
from maildesk.errors import ConfigError, ConfigProblem, StoreUnavailable
from maildesk.mail.render import Templates
from maildesk.mail.transport import Transport, transport_for
from maildesk.metrics import Metrics
from maildesk.routing.proof import Role, TokenCodec, plus_address
from maildesk.samples import sample_context
from maildesk.store import repo
from maildesk.store import tickets as repo_tickets
from maildesk.store.db import (
    create_db_engine,
    current_revision,
    session_factory,
    transaction,
    upgrade,
)
from maildesk.store.spool import Spool, open_spool

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    spool: Spool | None = None  # SQLite: where SMTP mail is committed first (store/spool.py)

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
            spool=open_spool(config.database.url, busy_timeout=config.database.busy_timeout),
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

    @property
    def historic(self) -> bool:
        """Mail from the past is being imported (`maildesk import` without --notify):
        nothing is mailed, each notification is recorded as not sent."""
        return self.replay is not None and self.replay.historic

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
        if self.spool is not None:
            self.spool.close()
