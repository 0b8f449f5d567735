"""Load maildesk.toml into frozen, validated config objects.

Every problem is collected (not just the first) and reported with its place: file, section,
rule name and key. Unknown keys are errors, so a typo never silently does nothing.

    reader.py     the one TOML reader: typed keys, value kinds, problems with their places
    model.py      the frozen dataclasses (Config and one per section)
    load.py       load_config / parse_config, and the desk, database, notify, log ... sections
    partial.py    load_database_config: [database] alone, for read commands
    mail.py       [smtp], [outbound], [[mailboxes]]
    http.py       [http]: API, metrics, dashboard, status page, tokens
    rules.py      [[rules]], [priority_matrix], [routing]
    calendars.py  [[calendars]]         sla.py  [[sla_policies]], [sla]
"""

from maildesk.config.load import (
    CONFIG_ENV,
    DATABASE_URL_ENV,
    DEFAULT_CONFIG,
    load_config,
    parse_config,
    resolve_config_path,
)
from maildesk.config.model import (
    AGENT_NOTICE_MAX_BODY,
    STRANGER_POLICIES,
    Agent,
    Config,
    DatabaseConfig,
    DeskConfig,
    HttpConfig,
    HttpToken,
    LmtpConfig,
    MailboxConfig,
    NotifyConfig,
    OutboundConfig,
    Queue,
    SecurityConfig,
    SmtpConfig,
    ThreadingConfig,
)
from maildesk.config.partial import load_database_config
from maildesk.config.reader import int_between, parse_duration, parse_hostport, parse_size

__all__ = [
    "AGENT_NOTICE_MAX_BODY",
    "CONFIG_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_CONFIG",
    "STRANGER_POLICIES",
    "Agent",
    "Config",
    "DatabaseConfig",
    "DeskConfig",
    "HttpConfig",
    "HttpToken",
    "LmtpConfig",
    "MailboxConfig",
    "NotifyConfig",
    "OutboundConfig",
    "Queue",
    "SecurityConfig",
    "SmtpConfig",
    "ThreadingConfig",
    "int_between",
    "load_config",
    "load_database_config",
    "parse_config",
    "parse_duration",
    "parse_hostport",
    "parse_size",
    "resolve_config_path",
]
