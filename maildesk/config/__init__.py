"""Load maildesk.toml into frozen, validated config objects.

Every problem is collected (not just the first) and reported with its place: file, section,
rule name and key. Unknown keys are errors, so a typo never silently does nothing.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from maildesk.errors import ConfigError, ConfigProblem
from maildesk.routing.conditions import RouteContext
from maildesk.routing.rules import DEFAULT_MATRIX, Rule, compile_matrix, compile_rules
from maildesk.sla.policy import SECTIONS as SLA_SECTIONS
from maildesk.sla.policy import SlaConfig, compile_sla

DEFAULT_CONFIG = "maildesk.toml"
DATABASE_URL_ENV = "MAILDESK_DATABASE_URL"
CONFIG_ENV = "MAILDESK_CONFIG"

T = TypeVar("T")


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
    folder: str = "INBOX"
    idle: bool = True
    poll_interval: float = 60.0  # seconds between polls (and IDLE renewals are sooner)
    after: str = "seen"  # "seen", "move" (to move_to) or "delete"
    move_to: str | None = None
    batch_size: int = 50
    max_message_size: int = 25 * 1000**2
    oversize_to: str | None = None  # move mail over max_message_size here (else leave it)


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
    timeout: float
    max_attempts: int
    backoff: timedelta
    max_backoff: timedelta


AGENT_NOTICE_MAX_BODY = 64 * 1024  # [notify] agent_notice_max_body, "64KiB"


@dataclass(frozen=True, kw_only=True)
class NotifyConfig:
    templates: Path | None
    acknowledge: bool
    notify_agents: bool
    command_receipts: bool = True  # a short receipt to the agent after commands by mail
    per_ticket_per_hour: int = 30  # mails one ticket may send within an hour (loop cap)
    # Loop and flood guards, per sender address and rolling hour; 0 turns a limit off.
    auto_replies_per_hour: int = 5  # acknowledgements to one address
    new_tickets_per_hour: int = 30  # more new tickets from one sender are held as "flood"
    # How much of a message's text an agent notice quotes (bytes of UTF-8); the rest stays
    # on the ticket, so a big message is not copied into every agent's notice.
    agent_notice_max_body: int = AGENT_NOTICE_MAX_BODY


@dataclass(frozen=True, kw_only=True)
class SecurityConfig:
    """Who is trusted to vouch for an agent's From address (see maildesk.routing.proof)."""

    trusted_authserv_ids: tuple[str, ...] = ()


STRANGER_POLICIES = ("new-ticket", "append")


@dataclass(frozen=True, kw_only=True)
class ThreadingConfig:
    # A message that threads only by the [MD-n] in its subject, from someone who is not
    # the requester, a watcher or an agent: "new-ticket" (linked to the one it names) or
    # "append" (join the conversation, as older desks do).
    subject_ref_from_strangers: str = "new-ticket"


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
    mailboxes: tuple[MailboxConfig, ...] = ()
    security: SecurityConfig = field(default_factory=SecurityConfig)
    threading: ThreadingConfig = field(default_factory=ThreadingConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)

    @property
    def default_queue(self) -> Queue:
        return next((q for q in self.queues if q.default), self.queues[0])

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    def agent(self, email: str) -> Agent | None:
        wanted = email.lower()
        return next((a for a in self.agents if a.email.lower() == wanted), None)

    def route_context(self, when: datetime, envelope_to: Sequence[str] = ()) -> RouteContext:
        """What the router needs besides the message, with `when` in the desk's timezone."""
        return RouteContext(
            now=when.astimezone(ZoneInfo(self.desk.timezone)),
            agents=frozenset(a.email.lower() for a in self.agents),
            vips=self.vips,
            envelope_to=tuple(a.lower() for a in envelope_to),
        )

    def agents_of(self, queue: str) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if queue in a.queues)

    @property
    def own_addresses(self) -> frozenset[str]:
        """Every address that is the desk itself: notifications come from these, mail
        arrives at them (the SMTP accept list and the IMAP mailboxes' logins)."""
        boxes = (m.username.lower() for m in self.mailboxes if "@" in m.username)
        return frozenset(
            {self.desk.address.lower(), *(a.lower() for a in self.smtp.accept), *boxes}
        )


# --- small parsers for the value kinds the config uses ----------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KIB|MIB|GIB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def parse_size(value: object) -> int:
    """'25MB' -> 25000000; MB is 10^6 bytes, MiB is 2^20; a bare int is bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    size = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "B").upper()]) if m else 0
    if size <= 0:
        raise ValueError(f"expected a size above zero like '25MB' or '10MiB', got {value!r}")
    return size


def int_between(low: int, high: int) -> Callable[[object], int]:
    """A validator for an integer key in [low, high]."""

    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    return check


def parse_duration(value: object) -> timedelta:
    """'14d' -> 14 days; units ms, s, m, h, d, w; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"expected a duration like '30s', '15m', '4h' or '14d', got {value!r}")
    return timedelta(seconds=float(m.group(1)) * _DURATION_UNITS[m.group(2)])


def parse_hostport(value: object) -> tuple[str, int]:
    """'127.0.0.1:2525' -> ('127.0.0.1', 2525)."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"expected 'host:port', got {value!r}")
    host, _, port = value.rpartition(":")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _email(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value):
        raise ValueError(f"expected an email address, got {value!r}")
    return value.lower()


def _zone(value: object) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r}") from exc
    return str(value)


# --- the reader: takes typed keys from a table and records problems with their place ----


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []

    def problem(self, place: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, place, message))

    def table(self, data: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(f"[{key}]", "must be a table")
            return {}
        return dict(value)

    def array(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(f"[[{key}]]", "must be an array of tables")
            return []
        return [dict(v) for v in value]

    def take(
        self,
        table: dict[str, Any],
        place: str,
        key: str,
        kind: type[T] | Callable[[object], T],
        default: T | None = None,
        *,
        required: bool = False,
    ) -> T | None:
        if key not in table:
            if required:
                self.problem(f"{place} key '{key}'", "is required")
            return default
        value = table.pop(key)
        if isinstance(kind, type):
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if not ok:
                self.problem(f"{place} key '{key}'", f"must be {kind.__name__}, got {value!r}")
                return default
            return cast(T, value)
        try:
            return kind(value)
        except ValueError as exc:
            self.problem(f"{place} key '{key}'", str(exc))
            return default

    def strings(self, table: dict[str, Any], place: str, key: str) -> tuple[str, ...]:
        value = table.pop(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{place} key '{key}'", f"must be a list of strings, got {value!r}")
            return ()
        return tuple(value)

    def done(self, table: dict[str, Any], place: str) -> None:
        for key in table:
            self.problem(f"{place} key '{key}'", "unknown key")


_SECTIONS = {
    *SLA_SECTIONS,
    "mailboxes",
    "security",
    "threading",
    "desk",
    "database",
    "smtp",
    "outbound",
    "notify",
    "agents",
    "queues",
    "rules",
    "routing",
    "priority_matrix",
}


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """The config file to use: explicit path, else $MAILDESK_CONFIG, else ./maildesk.toml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    cfg_path = resolve_config_path(path)
    file = str(cfg_path)
    try:
        data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(file, "file", "not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(file, "file", f"cannot read: {exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(file, "file", f"not valid TOML: {exc}")]) from None
    return parse_config(data, cfg_path)


def parse_config(data: Mapping[str, Any], cfg_path: Path) -> Config:
    """Validate an already-parsed TOML document (see load_config)."""
    r = _Reader(str(cfg_path))
    base = cfg_path.resolve().parent
    for section in data:
        if section not in _SECTIONS:
            r.problem(f"[{section}]", f"unknown section (known: {', '.join(sorted(_SECTIONS))})")

    t = r.table(data, "desk")
    desk = DeskConfig(
        name=r.take(t, "[desk]", "name", str, "maildesk") or "maildesk",
        ref_prefix=r.take(t, "[desk]", "ref_prefix", _ref_prefix, "MD") or "MD",
        address=r.take(t, "[desk]", "address", _email, required=True) or "support@invalid.test",
        timezone=r.take(t, "[desk]", "timezone", _zone, "UTC") or "UTC",
        reopen_window=r.take(t, "[desk]", "reopen_window", parse_duration, timedelta(days=14))
        or timedelta(0),
        secret=_secret(r, t),
        assign_on_reply=bool(r.take(t, "[desk]", "assign_on_reply", bool, True)),
    )
    r.done(t, "[desk]")

    t = r.table(data, "database")
    url = os.environ.get(DATABASE_URL_ENV) or r.take(t, "[database]", "url", str, None)
    t.pop("url", None)
    database = DatabaseConfig(
        url=_database_url(r, url or "sqlite:///var/maildesk.db", base),
        busy_timeout=(
            r.take(t, "[database]", "busy_timeout", parse_duration, timedelta(seconds=10))
            or timedelta(seconds=10)
        ).total_seconds(),
        connect_timeout=_seconds(r, t, "[database]", "connect_timeout", 10.0),
    )
    r.done(t, "[database]")

    t = r.table(data, "smtp")
    host, port = r.take(t, "[smtp]", "listen", parse_hostport, ("127.0.0.1", 2525)) or (
        "127.0.0.1",
        2525,
    )
    accept = tuple(_checked_emails(r, r.strings(t, "[smtp]", "accept"), "[smtp] key 'accept'"))
    exceptions = (
        _checked_networks(
            r,
            r.strings(t, "[smtp]", "per_client_exceptions"),
            "[smtp] key 'per_client_exceptions'",
        )
        if "per_client_exceptions" in t
        else SmtpConfig.per_client_exceptions
    )
    smtp = SmtpConfig(
        host=host,
        port=port,
        accept=accept or (desk.address,),
        max_message_size=r.take(t, "[smtp]", "max_message_size", parse_size, 25 * 1000**2)
        or 25 * 1000**2,
        max_recipients=r.take(t, "[smtp]", "max_recipients", int_between(1, 10_000), 100) or 100,
        timeout=(
            r.take(t, "[smtp]", "timeout", parse_duration, None) or timedelta(minutes=5)
        ).total_seconds(),
        max_connections=r.take(t, "[smtp]", "max_connections", int_between(1, 100_000), 100) or 100,
        max_connections_per_client=r.take(
            t, "[smtp]", "max_connections_per_client", int_between(1, 100_000), 20
        )
        or 20,
        per_client_exceptions=exceptions,
        max_junk_commands=r.take(t, "[smtp]", "max_junk_commands", int_between(1, 100_000), 100)
        or 100,
        min_data_rate=r.take(t, "[smtp]", "min_data_rate", parse_size, 1000) or 1000,
        commit_timeout=_seconds(r, t, "[smtp]", "commit_timeout", 30.0),
    )
    r.done(t, "[smtp]")

    outbound = _outbound(r, r.table(data, "outbound"), base)
    t = r.table(data, "notify")
    templates_dir = r.take(t, "[notify]", "templates", str, None)
    notify = NotifyConfig(
        templates=(base / templates_dir) if templates_dir else None,
        acknowledge=bool(r.take(t, "[notify]", "acknowledge", bool, True)),
        notify_agents=bool(r.take(t, "[notify]", "notify_agents", bool, True)),
        command_receipts=bool(r.take(t, "[notify]", "command_receipts", bool, True)),
        per_ticket_per_hour=_limit(
            r.take(t, "[notify]", "per_ticket_per_hour", int_between(0, 100_000), 30), 30
        ),
        auto_replies_per_hour=_limit(
            r.take(t, "[notify]", "auto_replies_per_hour", int_between(0, 10_000), 5), 5
        ),
        new_tickets_per_hour=_limit(
            r.take(t, "[notify]", "new_tickets_per_hour", int_between(0, 1_000_000), 30), 30
        ),
        agent_notice_max_body=_limit(
            r.take(t, "[notify]", "agent_notice_max_body", parse_size), AGENT_NOTICE_MAX_BODY
        ),
    )
    if notify.templates is not None and not notify.templates.is_dir():
        r.problem("[notify] key 'templates'", f"directory {notify.templates} does not exist")
    r.done(t, "[notify]")

    queues = _queues(r, r.array(data, "queues"), base)
    agents = _agents(r, r.array(data, "agents"), {q.name for q in queues})
    rules, rule_problems = compile_rules(
        r.array(data, "rules"),
        queues={q.name for q in queues},
        agents={a.email for a in agents},
    )
    for place, message in rule_problems:
        r.problem(place, message)
    matrix, matrix_problems = compile_matrix(data.get("priority_matrix"))
    for place, message in matrix_problems:
        r.problem(place, message)
    t = r.table(data, "routing")
    vips = tuple(v.lower() for v in r.strings(t, "[routing]", "vips") if _vip(r, v))
    r.done(t, "[routing]")

    mailboxes = _mailboxes(r, r.array(data, "mailboxes"), smtp.max_message_size, base)

    t = r.table(data, "security")
    security = SecurityConfig(
        trusted_authserv_ids=tuple(
            v.lower() for v in r.strings(t, "[security]", "trusted_authserv_ids")
        )
    )
    r.done(t, "[security]")
    t = r.table(data, "threading")
    strangers = r.take(t, "[threading]", "subject_ref_from_strangers", str, "new-ticket")
    if strangers not in STRANGER_POLICIES:
        r.problem(
            "[threading] key 'subject_ref_from_strangers'",
            f"must be {' or '.join(map(repr, STRANGER_POLICIES))}, got {strangers!r}",
        )
    threading = ThreadingConfig(subject_ref_from_strangers=strangers or "new-ticket")
    r.done(t, "[threading]")

    sla, sla_problems = compile_sla(
        data,
        queues={q.name for q in queues},
        agents={a.email for a in agents},
        rules={rule.name for rule in rules},
        desk_timezone=desk.timezone,
    )
    for place, message in sla_problems:
        r.problem(place, message)

    if r.problems:
        raise ConfigError(r.problems)
    return Config(
        path=cfg_path,
        desk=desk,
        database=database,
        smtp=smtp,
        outbound=outbound,
        notify=notify,
        agents=tuple(agents),
        queues=tuple(queues),
        rules=tuple(rules),
        vips=vips,
        priority_matrix=matrix,
        mailboxes=tuple(mailboxes),
        security=security,
        threading=threading,
        sla=sla,
    )


def _secret(r: _Reader, t: dict[str, Any]) -> str | None:
    secret = r.take(t, "[desk]", "secret", str, None)
    secret_env = r.take(t, "[desk]", "secret_env", str, None)
    if secret_env:
        secret = os.environ.get(secret_env)
        if secret is None:
            r.problem("[desk] key 'secret_env'", f"environment variable {secret_env} unset")
    if secret is not None and len(secret.encode()) < 16:
        r.problem("[desk] key 'secret'", "must be at least 16 characters (use 32 random ones)")
    return secret


_MAILBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,26}")


def _mailbox_name(value: object) -> str:
    if not isinstance(value, str) or not _MAILBOX_NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 27 letters, digits, '.', '_' or '-' (it is stored as the origin "
            f"'imap:NAME'), got {value!r}"
        )
    return value


def _mailboxes(
    r: _Reader, tables: list[dict[str, Any]], max_size: int, base: Path
) -> list[MailboxConfig]:
    out: list[MailboxConfig] = []
    for i, t in enumerate(tables):
        name = t.get("name")
        place = f"[[mailboxes]] '{name}'" if isinstance(name, str) else f"[[mailboxes]] #{i + 1}"
        name = r.take(t, place, "name", _mailbox_name, required=True) or f"#{i + 1}"
        if name in {m.name for m in out}:
            r.problem(place, "duplicate mailbox name")
        tls = r.take(t, place, "tls", str, "ssl") or "ssl"
        if tls not in ("ssl", "starttls", "none"):
            r.problem(f"{place} key 'tls'", f"must be 'ssl', 'starttls' or 'none', got {tls!r}")
        password = r.take(t, place, "password", str, None)
        password_env = r.take(t, place, "password_env", str, None)
        if password_env:
            password = os.environ.get(password_env)
            if password is None:
                r.problem(
                    f"{place} key 'password_env'", f"environment variable {password_env} unset"
                )
        elif password is None:
            r.problem(place, "needs password or password_env")
        folder = r.take(t, place, "folder", str, "INBOX") or "INBOX"
        after = r.take(t, place, "after", str, "seen") or "seen"
        move_to = r.take(t, place, "move_to", str, None)
        oversize_to = r.take(t, place, "oversize_to", str, None)
        if after not in ("seen", "move", "delete"):
            r.problem(f"{place} key 'after'", f"must be 'seen', 'move' or 'delete', got {after!r}")
        if after == "move" and not move_to:
            r.problem(f"{place} key 'move_to'", "is required when after = 'move'")
        if move_to and after != "move":
            r.problem(
                f"{place} key 'move_to'", f"is only used with after = 'move' (after = {after!r})"
            )
        for key, target in (("move_to", move_to), ("oversize_to", oversize_to)):
            if target is not None and target == folder:
                r.problem(f"{place} key '{key}'", f"must differ from folder {folder!r}")
        poll = r.take(t, place, "poll_interval", parse_duration, None) or timedelta(seconds=60)
        if poll < timedelta(seconds=1):
            r.problem(
                f"{place} key 'poll_interval'",
                f"must be at least 1s, got {poll.total_seconds():g}s",
            )
        out.append(
            MailboxConfig(
                name=name,
                host=r.take(t, place, "host", str, required=True) or "",
                port=r.take(t, place, "port", int_between(1, 65535), None)
                or (993 if tls == "ssl" else 143),
                tls=tls,
                ca_file=_file(r, place, "ca_file", base, r.take(t, place, "ca_file", str, None)),
                username=r.take(t, place, "username", str, required=True) or "",
                password=password or "",
                folder=folder,
                idle=bool(r.take(t, place, "idle", bool, True)),
                poll_interval=max(poll.total_seconds(), 1.0),
                after=after,
                move_to=move_to,
                batch_size=r.take(t, place, "batch_size", int_between(1, 1000), 50) or 50,
                max_message_size=r.take(t, place, "max_message_size", parse_size, None) or max_size,
                oversize_to=oversize_to,
            )
        )
        r.done(t, place)
    return out


def _file(r: _Reader, place: str, key: str, base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = base / value
    if not path.is_file():
        r.problem(f"{place} key '{key}'", f"file {path} does not exist")
    return path


def _directory(r: _Reader, place: str, base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = base / value
    if not path.is_dir():
        r.problem(f"{place} key 'templates'", f"directory {path} does not exist")
    return path


def _limit(value: int | None, default: int) -> int:
    return default if value is None else value


def _seconds(r: _Reader, t: dict[str, Any], place: str, key: str, default: float) -> float:
    """A duration key that must be more than zero, in seconds."""
    value = r.take(t, place, key, parse_duration, None)
    if value is None:
        return default
    if value <= timedelta(0):
        r.problem(f"{place} key '{key}'", "must be more than 0")
        return default
    return value.total_seconds()


def _vip(r: _Reader, value: str) -> bool:
    if _EMAIL.match(value) or re.fullmatch(r"@[^@\s]+\.[^@\s]+", value):
        return True
    r.problem("[routing] key 'vips'", f"expected an address or @domain, got {value!r}")
    return False


def _ref_prefix(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,15}", value):
        raise ValueError(f"must be letters and digits starting with a letter, got {value!r}")
    return value


def _checked_emails(r: _Reader, values: tuple[str, ...], place: str) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(_email(v))
        except ValueError as exc:
            r.problem(place, str(exc))
    return out


def _checked_networks(r: _Reader, values: tuple[str, ...], place: str) -> tuple[str, ...]:
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            r.problem(place, f"expected an IP address or network like '10.0.0.0/8', got {v!r}")
    return values


def _database_url(r: _Reader, url: str, base: Path) -> str:
    """Make a relative SQLite path relative to the config file's directory."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        r.problem("[database] key 'url'", f"not a database URL: {exc}")
        return url
    db = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and db
        and db != ":memory:"
        and not Path(db).is_absolute()
    ):
        parsed = parsed.set(database=str(base / db))
    return parsed.render_as_string(hide_password=False)


def _outbound(r: _Reader, t: dict[str, Any], base: Path) -> OutboundConfig:
    place = "[outbound]"
    transport = r.take(t, place, "transport", str, "smtp") or "smtp"
    if transport not in ("smtp", "maildir"):
        r.problem(f"{place} key 'transport'", f"must be 'smtp' or 'maildir', got {transport!r}")
    path = r.take(t, place, "path", str, None)
    if transport == "maildir" and not path:
        r.problem(f"{place} key 'path'", "is required when transport = 'maildir'")
    password = r.take(t, place, "password", str, None)
    password_env = r.take(t, place, "password_env", str, None)
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            r.problem(f"{place} key 'password_env'", f"environment variable {password_env} unset")
    cfg = OutboundConfig(
        transport=transport,
        host=r.take(t, place, "host", str, "127.0.0.1") or "127.0.0.1",
        port=r.take(t, place, "port", int_between(1, 65535), 25) or 25,
        path=(base / path) if path else None,
        starttls=bool(r.take(t, place, "starttls", bool, False)),
        ca_file=_file(r, place, "ca_file", base, r.take(t, place, "ca_file", str, None)),
        username=r.take(t, place, "username", str, None),
        password=password,
        timeout=(
            r.take(t, place, "timeout", parse_duration, None) or timedelta(seconds=30)
        ).total_seconds(),
        max_attempts=r.take(t, place, "max_attempts", int_between(1, 1000), 10) or 10,
        backoff=r.take(t, place, "backoff", parse_duration, None) or timedelta(seconds=30),
        max_backoff=r.take(t, place, "max_backoff", parse_duration, None) or timedelta(hours=2),
    )
    r.done(t, place)
    return cfg


def _queues(r: _Reader, tables: list[dict[str, Any]], base: Path) -> list[Queue]:
    queues: list[Queue] = []
    for i, t in enumerate(tables):
        name = t.get("name")
        place = f"[[queues]] '{name}'" if isinstance(name, str) else f"[[queues]] #{i + 1}"
        q = Queue(
            name=r.take(t, place, "name", str, required=True) or "",
            default=bool(r.take(t, place, "default", bool, False)),
            acknowledge=bool(r.take(t, place, "acknowledge", bool, True)),
            templates=_directory(r, place, base, r.take(t, place, "templates", str, None)),
        )
        r.done(t, place)
        if q.name in {x.name for x in queues}:
            r.problem(place, "duplicate queue name")
        queues.append(q)
    if not queues:
        queues.append(Queue(name="general", default=True, acknowledge=True))
    if sum(q.default for q in queues) > 1:
        r.problem("[[queues]]", "more than one queue has default = true")
    return queues


def _agents(r: _Reader, tables: list[dict[str, Any]], queue_names: set[str]) -> list[Agent]:
    agents: list[Agent] = []
    for i, t in enumerate(tables):
        email = t.get("email")
        place = f"[[agents]] '{email}'" if isinstance(email, str) else f"[[agents]] #{i + 1}"
        a = Agent(
            email=r.take(t, place, "email", _email, required=True) or "",
            name=r.take(t, place, "name", str, "") or "",
            queues=r.strings(t, place, "queues"),
        )
        for q in a.queues:
            if q not in queue_names:
                r.problem(f"{place} key 'queues'", f"unknown queue {q!r}")
        r.done(t, place)
        agents.append(a)
    return agents
