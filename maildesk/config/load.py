"""Load maildesk.toml into a validated `Config`: one small reader per section.

Every problem is collected (not just the first) and reported with its place: file, section,
rule name and key. Unknown sections and keys are errors, so a typo never silently does
nothing. The sections read elsewhere: mail in and out (`mail.py`), routing (`rules.py`) and
service levels (`sla.py`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

# make_url only parses the URL (no SQL, no connection), to resolve a relative SQLite path.
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from maildesk.config.catalog import check_rule_items, read_catalog
from maildesk.config.changes import read_freezes
from maildesk.config.fleet import read_fleet
from maildesk.config.http import read_http
from maildesk.config.kb import read_kb
from maildesk.config.learning import read_learning
from maildesk.config.mail import read_lmtp, read_mailboxes, read_outbound, read_smtp
from maildesk.config.model import (
    AGENT_NOTICE_MAX_BODY,
    ATTACH_LIMIT,
    MIN_IMAGE_BYTES,
    STRANGER_POLICIES,
    Config,
    DatabaseConfig,
    DeskConfig,
    LogConfig,
    NotifyConfig,
    SecurityConfig,
    ThreadingConfig,
)
from maildesk.config.monitors import read_monitors, read_problems
from maildesk.config.organisations import read_organisations
from maildesk.config.pipeline import read_pipeline
from maildesk.config.queues import read_agents, read_queues
from maildesk.config.reader import (
    Reader,
    int_between,
    parse_duration,
    parse_email,
    parse_size,
    zone_name,
)
from maildesk.config.rules import read_matrix, read_rules, read_vips
from maildesk.config.services import check_rule_services, read_cmdb, read_services
from maildesk.config.sla import SECTIONS as SLA_SECTIONS
from maildesk.config.sla import compile_sla
from maildesk.config.survey import read_survey
from maildesk.errors import ConfigError, ConfigProblem
from maildesk.logctx import FORMATS as LOG_FORMATS
from maildesk.sla.policy import SlaConfig

DEFAULT_CONFIG = "maildesk.toml"
DATABASE_URL_ENV = "MAILDESK_DATABASE_URL"
CONFIG_ENV = "MAILDESK_CONFIG"

_SECTIONS = {
    *SLA_SECTIONS,
    "mailboxes",
    "kb",
    "security",
    "threading",
    "desk",
    "database",
    "smtp",
    "lmtp",
    "outbound",
    "notify",
    "agents",
    "queues",
    "rules",
    "routing",
    "priority_matrix",
    "organisations",
    "http",
    "monitors",
    "problems",
    "learning",
    "survey",
    "change_freeze",
    "catalog",
    "log",
    "services",
    "cmdb",
    "fleet",
    "pipeline",
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
    r = Reader(str(cfg_path))
    base = cfg_path.resolve().parent
    for section in data:
        if section not in _SECTIONS:
            r.problem(f"[{section}]", f"unknown section (known: {', '.join(sorted(_SECTIONS))})")
    desk = _desk(r, r.table(data, "desk"))
    database = _database(r, r.table(data, "database"), base)
    smtp = read_smtp(r, r.table(data, "smtp"), desk.address)
    lmtp = read_lmtp(r, r.table(data, "lmtp"), base)
    outbound = read_outbound(r, r.table(data, "outbound"), base)
    notify = _notify(r, r.table(data, "notify"), base)
    queues = read_queues(r, r.array(data, "queues"), base)
    agents = read_agents(r, r.array(data, "agents"), {q.name for q in queues})
    queue_names, agent_names = {q.name for q in queues}, {a.email for a in agents}
    rules = read_rules(r, r.array(data, "rules"), queues=queue_names, agents=agent_names)
    matrix = read_matrix(r, data.get("priority_matrix"))  # priority_matrix, impact_from_service
    vips = read_vips(r, r.table(data, "routing"))
    mailboxes = read_mailboxes(r, r.array(data, "mailboxes"), smtp.max_message_size, base)
    security = _security(r, r.table(data, "security"), agent_names)
    threading = _threading(r, r.table(data, "threading"))
    sla, sla_problems = compile_sla(
        data,
        queues=queue_names,
        agents=agent_names,
        rules={rule.name for rule in rules},
        desk_timezone=desk.timezone,
    )
    r.extend(sla_problems)
    organisations = read_organisations(
        r,
        r.array(data, "organisations"),
        queues=queue_names,
        policies={p.name for p in sla.policies},
    )
    service_desk = _service_desk(r, data, queue_names, base, sla, desk.timezone, database.url)
    check_rule_items(r, rules, service_desk["catalog"])
    check_rule_services(r, rules, service_desk["services"])
    r.check()
    return Config(
        path=cfg_path,
        desk=desk,
        database=database,
        smtp=smtp,
        lmtp=lmtp,
        outbound=outbound,
        notify=notify,
        agents=tuple(agents),
        queues=tuple(queues),
        rules=rules,
        vips=vips,
        **matrix,
        mailboxes=tuple(mailboxes),
        security=security,
        threading=threading,
        sla=sla,
        organisations=organisations,
        **service_desk,
    )


def _service_desk(
    r: Reader,
    data: Mapping[str, Any],
    queues: set[str],
    base: Path,
    sla: SlaConfig,
    timezone: str,
    database_url: str,
) -> dict[str, Any]:
    """The sections beyond the help desk (and [log]), as Config's keyword arguments of the
    same names."""
    policies = {p.name for p in sla.policies}
    services = read_services(r, r.array(data, "services"), queues=queues, policies=policies)
    return {
        "services": services,
        "cmdb": read_cmdb(r, r.table(data, "cmdb"), base, {s.name for s in services}),
        "change_freezes": read_freezes(
            r,
            r.array(data, "change_freeze"),
            queues=queues,
            timezone=timezone,
            services={s.name for s in services},
        ),
        "catalog": read_catalog(
            r,
            r.array(data, "catalog"),
            queues=queues,
            policies={p.name for p in sla.policies},
            leads=sla.leads,
        ),
        "http": read_http(r, r.table(data, "http")),
        "monitors": read_monitors(r, r.array(data, "monitors"), queues=queues),
        "problems": read_problems(r, r.table(data, "problems")),
        "learning": read_learning(r, data, queues=queues),
        "survey": read_survey(r, r.table(data, "survey"), queues=queues),
        "kb": read_kb(r, r.table(data, "kb"), base),
        "log": _log(r, r.table(data, "log")),
        "fleet": read_fleet(r, r.table(data, "fleet")),
        "pipeline": read_pipeline(r, r.table(data, "pipeline"), database_url),
    }


def _log(r: Reader, t: dict[str, Any]) -> LogConfig:
    """[log]: format, "text" (the default) or "json"."""
    kind = r.take(t, "[log]", "format", str, "text") or "text"
    if kind not in LOG_FORMATS:
        allowed = " or ".join(map(repr, LOG_FORMATS))
        r.problem("[log] key 'format'", f"must be {allowed}, got {kind!r}")
    r.done(t, "[log]")
    return LogConfig(format=kind if kind in LOG_FORMATS else "text")


def _desk(r: Reader, t: dict[str, Any]) -> DeskConfig:
    """[desk]: the desk's name, address, reference prefix, timezone and reply secret."""
    desk = DeskConfig(
        name=r.take(t, "[desk]", "name", str, "maildesk") or "maildesk",
        ref_prefix=r.take(t, "[desk]", "ref_prefix", _ref_prefix, "MD") or "MD",
        address=r.take(t, "[desk]", "address", parse_email, required=True)
        or "support@invalid.test",
        timezone=r.take(t, "[desk]", "timezone", zone_name, "UTC") or "UTC",
        reopen_window=r.take(t, "[desk]", "reopen_window", parse_duration, timedelta(days=14))
        or timedelta(0),
        secret=_secret(r, t),
        assign_on_reply=bool(r.take(t, "[desk]", "assign_on_reply", bool, True)),
        gratitude_reopens=bool(r.take(t, "[desk]", "gratitude_reopens", bool, False)),
    )
    r.done(t, "[desk]")
    return desk


def _secret(r: Reader, t: dict[str, Any]) -> str | None:
    secret = r.take(t, "[desk]", "secret", str, None)
    secret_env = r.take(t, "[desk]", "secret_env", str, None)
    if secret_env:
        secret = os.environ.get(secret_env)
        if secret is None:
            r.problem("[desk] key 'secret_env'", f"environment variable {secret_env} unset")
    if secret is not None and len(secret.encode()) < 16:
        r.problem("[desk] key 'secret'", "must be at least 16 characters (use 32 random ones)")
    return secret


def _ref_prefix(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,15}", value):
        raise ValueError(f"must be letters and digits starting with a letter, got {value!r}")
    return value


def _database(r: Reader, t: dict[str, Any], base: Path) -> DatabaseConfig:
    """[database]: the URL ($MAILDESK_DATABASE_URL wins) and how long to wait for it."""
    url = os.environ.get(DATABASE_URL_ENV) or r.take(t, "[database]", "url", str, None)
    t.pop("url", None)
    database = DatabaseConfig(
        url=_database_url(r, url or "sqlite:///var/maildesk.db", base),
        busy_timeout=(
            r.take(t, "[database]", "busy_timeout", parse_duration, timedelta(seconds=10))
            or timedelta(seconds=10)
        ).total_seconds(),
        connect_timeout=r.seconds(t, "[database]", "connect_timeout", 10.0),
    )
    r.done(t, "[database]")
    return database


def _database_url(r: Reader, url: str, base: Path) -> str:
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


def _notify(r: Reader, t: dict[str, Any], base: Path) -> NotifyConfig:
    """[notify]: templates, which notices go out, and the loop and flood limits."""
    templates_dir = r.take(t, "[notify]", "templates", str, None)
    notify = NotifyConfig(
        templates=(base / templates_dir) if templates_dir else None,
        acknowledge=bool(r.take(t, "[notify]", "acknowledge", bool, True)),
        notify_agents=bool(r.take(t, "[notify]", "notify_agents", bool, True)),
        command_receipts=bool(r.take(t, "[notify]", "command_receipts", bool, True)),
        acknowledge_forwarded=bool(r.take(t, "[notify]", "acknowledge_forwarded", bool, False)),
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
        attach_limit=_limit(r.take(t, "[notify]", "attach_limit", parse_size), ATTACH_LIMIT),
        min_image_bytes=_limit(
            r.take(t, "[notify]", "min_image_bytes", _size_or_zero), MIN_IMAGE_BYTES
        ),
    )
    if notify.templates is not None and not notify.templates.is_dir():
        r.problem("[notify] key 'templates'", f"directory {notify.templates} does not exist")
    r.done(t, "[notify]")
    return notify


def _limit(value: int | None, default: int) -> int:
    return default if value is None else value


def _size_or_zero(value: object) -> int:
    """A size like parse_size's, or 0 (turns a threshold off)."""
    return 0 if value == 0 or value == "0" else parse_size(value)


def _security(r: Reader, t: dict[str, Any], agents: set[str]) -> SecurityConfig:
    """[security]: whose Authentication-Results headers are trusted, and which OS users
    may act as which agents at the command line (`cli_agents`)."""
    security = SecurityConfig(
        trusted_authserv_ids=tuple(
            v.lower() for v in r.strings(t, "[security]", "trusted_authserv_ids")
        ),
        cli_agents=_cli_agents(r, t.pop("cli_agents", None), agents),
    )
    r.done(t, "[security]")
    return security


def _cli_agents(r: Reader, value: object, agents: set[str]) -> dict[str, tuple[str, ...]] | None:
    """cli_agents = { "alice" = ["alice@example.com"], "root" = ["*"] }."""
    if value is None:
        return None
    place = "[security] key 'cli_agents'"
    if not isinstance(value, Mapping):
        r.problem(place, 'must be a table of OS user = ["agent address", ...] or ["*"]')
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for user, allowed in value.items():
        where = f"[security] key 'cli_agents.{user}'"
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            r.problem(where, f'must be a list of agent addresses or ["*"], got {allowed!r}')
            continue
        for a in allowed:
            if a != "*" and a.lower() not in agents:
                known = ", ".join(sorted(agents)) or "none configured"
                r.problem(where, f'unknown agent {a!r} (agents: {known}; or "*")')
        found[str(user)] = tuple(a.lower() for a in allowed)
    return found


def _threading(r: Reader, t: dict[str, Any]) -> ThreadingConfig:
    """[threading]: what a subject reference from a stranger does."""
    strangers = r.take(t, "[threading]", "subject_ref_from_strangers", str, "new-ticket")
    if strangers not in STRANGER_POLICIES:
        r.problem(
            "[threading] key 'subject_ref_from_strangers'",
            f"must be {' or '.join(map(repr, STRANGER_POLICIES))}, got {strangers!r}",
        )
    threading = ThreadingConfig(subject_ref_from_strangers=strangers or "new-ticket")
    r.done(t, "[threading]")
    return threading
