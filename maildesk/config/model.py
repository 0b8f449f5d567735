"""The configuration as frozen dataclasses: what `load_config` builds, everything else reads.

Plain data with a few look-ups (the default queue, an agent by address, the desk's own
addresses); reading and checking maildesk.toml is `load.py`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from maildesk.config.catalog import LEAD_PREFIX
from maildesk.config.changes import ChangeFreeze
from maildesk.config.fleet import FleetConfig
from maildesk.config.kb import KbConfig
from maildesk.config.learning import LearningConfig
from maildesk.config.pipeline import PipelineConfig
from maildesk.config.services import CmdbConfig
from maildesk.config.survey import SurveyConfig
from maildesk.mail.address import normalise_address
from maildesk.mail.oauth2 import OAuth2Settings
from maildesk.routing.catalog import CatalogItem
from maildesk.routing.cis import Inventory, Service
from maildesk.routing.conditions import RouteContext
from maildesk.routing.monitors import Monitor
from maildesk.routing.organisations import Organisation, organisation_for
from maildesk.routing.rules import DEFAULT_MATRIX, Rule
from maildesk.sla.policy import SlaConfig


@dataclass(frozen=True, kw_only=True)
class DeskConfig:
    name: str
    ref_prefix: str
    address: str
    timezone: str
    reopen_window: timedelta
    # The reply-token secret; None: generated once and kept in the database.
    secret: str | None = field(default=None, repr=False)
    # An agent's public reply to an unassigned ticket makes them its assignee.
    assign_on_reply: bool = True
    # A requester's short thank-you reopens a resolved ticket (default: recorded only).
    gratitude_reopens: bool = False

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    url: str
    busy_timeout: float  # a write waits this long for a lock (SQLite busy, PostgreSQL lock)
    connect_timeout: float = 10.0  # PostgreSQL: give up connecting after this long


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    host: str
    port: int
    accept: tuple[str, ...]
    max_message_size: int
    max_recipients: int = 100  # per transaction; more get 452 (the client sends them later)
    timeout: float = 300.0  # seconds a client may go without progress (NOOPs are none); 421
    max_connections: int = 100  # open at once; one more gets 421
    max_connections_per_client: int = 20  # open at once from one address; one more gets 421
    per_client_exceptions: tuple[str, ...] = ("127.0.0.1", "::1")  # networks not held to that
    max_junk_commands: int = 100  # commands without progress in a session; then 421
    min_data_rate: int = 1000  # bytes/s a client keeps up in DATA after the first `timeout`
    commit_timeout: float = 30.0  # DATA waits this long for its commit, then gets 451
    max_backlog: int = 10_000  # stored messages pending; past it DATA gets 451 (0: no limit)


@dataclass(frozen=True, kw_only=True)
class LmtpConfig:
    """`[lmtp]`: where the LMTP listener listens, on TCP or a unix socket (None: not at all).
    The accept list and limits are `[smtp]`'s."""

    host: str | None = None
    port: int = 0
    path: Path | None = None  # a unix socket (resolved against the config file's directory)

    @property
    def enabled(self) -> bool:
        return self.host is not None or self.path is not None

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else f"{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class MailboxConfig:
    """One `[[mailboxes]]` entry: an IMAP folder maildesk reads mail from."""

    name: str
    host: str
    port: int
    tls: str  # "ssl", "starttls" or "none"
    ca_file: Path | None = None  # verify the server against this CA file, not the system CAs
    username: str
    password: str = field(repr=False)
    oauth2: OAuth2Settings | None = None  # auth = "oauth2": log in with an access token
    folder: str = "INBOX"
    idle: bool = True
    poll_interval: float = 60.0  # seconds between polls (and IDLE renewals are sooner)
    after: str = "seen"  # "seen", "move" (to move_to) or "delete"
    move_to: str | None = None
    batch_size: int = 50
    max_message_size: int = 25 * 1000**2
    oversize_to: str | None = None  # move mail over max_message_size here (else leave it)
    lease_ttl: timedelta | None = None  # several daemons: this mailbox's lease ([fleet] default)


@dataclass(frozen=True, kw_only=True)
class OutboundConfig:
    transport: str  # "smtp" or "maildir"
    host: str
    port: int
    path: Path | None
    starttls: bool
    ca_file: Path | None = None  # verify the smarthost against this CA file, not the system CAs
    username: str | None
    password: str | None
    oauth2: OAuth2Settings | None = None  # auth = "oauth2": AUTH XOAUTH2 (or OAUTHBEARER)
    timeout: float
    max_attempts: int
    backoff: timedelta
    max_backoff: timedelta


AGENT_NOTICE_MAX_BODY = 64 * 1024  # [notify] agent_notice_max_body, "64KiB"
ATTACH_LIMIT = 10 * 1000**2  # [notify] attach_limit, "10MB"
# [notify] min_image_bytes: 1x1 tracking pixels are under 100 bytes and the spacers, social
# icons and logos of signatures mostly under 2 KB, while even a small cropped screenshot of
# an error dialog is several KB as PNG; smaller images stay stored, only unlisted.
MIN_IMAGE_BYTES = 2048


@dataclass(frozen=True, kw_only=True)
class NotifyConfig:
    templates: Path | None
    acknowledge: bool
    notify_agents: bool
    command_receipts: bool = True  # a short receipt to the agent after commands by mail
    # A ticket an agent opened on a customer's behalf (a forward) acknowledges the customer.
    acknowledge_forwarded: bool = False
    per_ticket_per_hour: int = 30  # mails one ticket may send within an hour (loop cap)
    # Loop and flood guards, per sender address and rolling hour; 0 turns a limit off.
    auto_replies_per_hour: int = 5  # acknowledgements to one address
    new_tickets_per_hour: int = 30  # more new tickets from one sender are held as "flood"
    # How much of a message's text an agent notice quotes (bytes of UTF-8); the rest stays
    # on the ticket, so a big message is not copied into every agent's notice.
    agent_notice_max_body: int = AGENT_NOTICE_MAX_BODY
    # The requester's files an agent notice carries, in all (decoded bytes); the rest are
    # named in it with the command that saves them.
    attach_limit: int = ATTACH_LIMIT
    # Images smaller than this are signature logos and tracking pixels: kept on the message,
    # neither listed in nor attached to agent notices.
    min_image_bytes: int = MIN_IMAGE_BYTES


@dataclass(frozen=True, kw_only=True)
class SecurityConfig:
    """Who is trusted to vouch for an agent's From address (see maildesk.routing.proof),
    and which operating-system users may act as which agents on the command line."""

    trusted_authserv_ids: tuple[str, ...] = ()
    # OS user -> agent addresses (or "*": any agent); None: any OS user may act as any agent.
    cli_agents: Mapping[str, tuple[str, ...]] | None = None

    def may_act_as(self, os_user: str, agent: str) -> bool:
        """Whether the OS user may act as the agent at the command line."""
        if self.cli_agents is None:
            return True
        allowed = self.cli_agents.get(os_user, ())
        return "*" in allowed or agent.lower() in allowed


STRANGER_POLICIES = ("new-ticket", "append")


@dataclass(frozen=True, kw_only=True)
class ThreadingConfig:
    # A message that threads only by the [MD-n] in its subject, from someone who is not
    # the requester, a watcher or an agent: "new-ticket" (linked to the one it names) or
    # "append" (join the conversation, as older desks do).
    subject_ref_from_strangers: str = "new-ticket"


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    """`[log]`: how `serve` writes its log lines on stderr: "text" or "json" (one object a
    line, with the message id, ticket ref and daemon in each)."""

    format: str = "text"


@dataclass(frozen=True, kw_only=True)
class HttpToken:
    """A bearer token of `[http] tokens`: `read` sees everything but internal notes,
    `admin` the agents' view (docs/http.md)."""

    name: str
    secret: str = field(repr=False)
    role: str = "read"


@dataclass(frozen=True, kw_only=True)
class HttpConfig:
    """`[http]`: where the API, metrics and dashboard listen (None: not at all)."""

    host: str | None = None
    port: int = 0
    tokens: tuple[HttpToken, ...] = ()
    status_page: bool = False  # the requester status page /status/{token}
    public_url: str | None = None  # how requesters reach it; default http://listen

    @property
    def enabled(self) -> bool:
        return self.host is not None

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class Agent:
    email: str
    name: str
    queues: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Queue:
    name: str
    default: bool
    acknowledge: bool
    templates: Path | None = None  # this queue's own template overrides
    # Old names of this queue: their tickets move here when the daemon starts or reloads.
    renamed_from: tuple[str, ...] = ()


DETECT_BY = ("category", "queue", "rule", "monitor", "subject")


@dataclass(frozen=True, kw_only=True)
class DetectRule:
    """[problems] detect: `incidents` alike within `within` open a problem candidate."""

    incidents: int = 5
    within: timedelta = timedelta(hours=1)
    by: str = "category"  # one of DETECT_BY ("monitor": the alert key)


@dataclass(frozen=True, kw_only=True)
class ProblemsConfig:
    resolve_incidents: bool = True  # resolving a problem resolves its open incidents
    detect: DetectRule | None = None


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path
    desk: DeskConfig
    database: DatabaseConfig
    smtp: SmtpConfig
    outbound: OutboundConfig
    notify: NotifyConfig
    agents: tuple[Agent, ...]
    queues: tuple[Queue, ...]
    rules: tuple[Rule, ...] = field(default=())
    vips: tuple[str, ...] = ()  # [routing] vips: addresses, or "@domain"
    priority_matrix: Mapping[tuple[str, str], str] = field(default_factory=lambda: DEFAULT_MATRIX)
    impact_from_service: bool = False  # [priority_matrix]: a new incident's impact from its service
    mailboxes: tuple[MailboxConfig, ...] = ()
    security: SecurityConfig = field(default_factory=SecurityConfig)
    threading: ThreadingConfig = field(default_factory=ThreadingConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    organisations: tuple[Organisation, ...] = ()
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    monitors: tuple[Monitor, ...] = ()
    problems: ProblemsConfig = field(default_factory=ProblemsConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    survey: SurveyConfig = field(default_factory=SurveyConfig)
    kb: KbConfig = field(default_factory=KbConfig)
    change_freezes: tuple[ChangeFreeze, ...] = ()
    catalog: tuple[CatalogItem, ...] = ()
    services: tuple[Service, ...] = ()
    cmdb: CmdbConfig = field(default_factory=CmdbConfig)
    lmtp: LmtpConfig = field(default_factory=LmtpConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)  # worker processes

    def lease_ttl(self, box: MailboxConfig) -> timedelta:
        """How long a mailbox's lease holds without renewal (several daemons)."""
        return box.lease_ttl or self.fleet.lease_ttl

    @property
    def default_queue(self) -> Queue:
        return next((q for q in self.queues if q.default), self.queues[0])

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    def agent(self, email: str) -> Agent | None:
        wanted = normalise_address(email)
        return next((a for a in self.agents if a.email == wanted), None)

    def route_context(
        self, when: datetime, envelope_to: Sequence[str] = (), cis: Sequence[str] = ()
    ) -> RouteContext:
        """What the router needs besides the message, with `when` in the desk's timezone;
        `cis`: the CIs the message is about (maildesk.routing.cis)."""
        return RouteContext(
            now=when.astimezone(ZoneInfo(self.desk.timezone)),
            agents=frozenset(a.email for a in self.agents),
            vips=self.vips,
            envelope_to=tuple(normalise_address(a) for a in envelope_to),
            organisations=self.organisations,
            cis=tuple(cis),
            ci_services=self.inventory.services_of(cis),
            services=self.services,
            impact_from_service=self.impact_from_service,
        )

    @property
    def inventory(self) -> Inventory:
        """The CIs of `[cmdb] path` (empty without one)."""
        return self.cmdb.inventory

    def service(self, name: str | None) -> Service | None:
        """The service of that name; None for None or one no longer configured."""
        return next((s for s in self.services if s.name == name), None)

    def organisation(self, name: str | None) -> Organisation | None:
        """The organisation of that name; None for None or one no longer configured."""
        return next((o for o in self.organisations if o.name == name), None)

    def organisation_of(self, address: str) -> Organisation | None:
        """The organisation an address belongs to, by its mail domain."""
        return organisation_for(address, self.organisations)

    def catalog_item(self, name: str | None) -> CatalogItem | None:
        """The catalog item of that name; None for None or one no longer configured."""
        return next((i for i in self.catalog if i.name == name), None)

    def approvers_of(self, item: CatalogItem) -> tuple[str, ...]:
        """The item's approvers as addresses ("lead:QUEUE" read from [sla] leads)."""
        found: list[str] = []
        for a in item.approvers:
            if a.startswith(LEAD_PREFIX):
                a = self.sla.lead(a[len(LEAD_PREFIX) :]) or ""
            if a and normalise_address(a) not in found:
                found.append(normalise_address(a))
        return tuple(found)

    def agents_of(self, queue: str) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if queue in a.queues)

    @property
    def own_addresses(self) -> frozenset[str]:
        """Every address that is the desk itself: notifications come from these, mail
        arrives at them (the SMTP accept list and the IMAP mailboxes' logins)."""
        boxes = (normalise_address(m.username) for m in self.mailboxes if "@" in m.username)
        return frozenset({self.desk.address, *self.smtp.accept, *boxes})
