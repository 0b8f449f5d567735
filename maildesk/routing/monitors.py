"""Monitoring alerts by mail: which `[[monitors]]` entry a message comes from, and the
alerts it carries. Pure.

A monitor is recognised by its `when` condition (the rule condition language); its
`format` reads the tool's default notification mail:

- `nagios` (Icinga too): Nagios' `notify-service-by-email` / `notify-host-by-email`
  subjects `** PROBLEM Service Alert: web1/HTTP is CRITICAL **`, `** RECOVERY Host Alert:
  web1 is UP **`, and Icinga 2's `[PROBLEM] HTTP on web1 is CRITICAL!` /
  `[RECOVERY] Host web1 is UP!` (the host and service names of its body win).
- `zabbix`: `Problem: {EVENT.NAME}`, `Resolved: ...` or `Resolved in {EVENT.DURATION}: ...`,
  `Updated problem: ...`; the key is the body's `Original problem ID` (the default update
  message has none: add `Original problem ID: {EVENT.ID}` to it to have updates found).
- `alertmanager`: `[FIRING:2] alertname (labels)` / `[RESOLVED] ...`; the body (the
  default `email.default.html`, read as text) lists each alert's labels, under
  `[n] Firing` and `[n] Resolved`: one mail can carry several alerts, one key each.
- `regex`: a pattern with the named groups `key`, `state` and (optionally) `severity`,
  searched in the subject, a newline, and the body.

An alert's state is `problem`, `recovery`, `acknowledgement` or `info` (anything else the
tool reports, such as Nagios' FLAPPINGSTART or a downtime: recorded, never acted on).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from maildesk.routing.conditions import Condition, Facts, Routable, RouteContext

FORMATS = ("nagios", "zabbix", "alertmanager", "regex")
# The monitor a webhook call named (maildesk.http.alerts); trusted on that origin only.
WEBHOOK_MONITOR_HEADER = "X-Maildesk-Webhook-Monitor"
WEBHOOK_ORIGIN = "webhook"  # the raw messages such calls store
STATES = ("problem", "recovery", "acknowledgement", "info")

_STATE_WORDS = {
    "problem": "problem",
    "firing": "problem",
    "alert": "problem",
    "recovery": "recovery",
    "resolved": "recovery",
    "ok": "recovery",
    "up": "recovery",
    "acknowledgement": "acknowledgement",
    "acknowledged": "acknowledgement",
    "ack": "acknowledgement",
}


@dataclass(frozen=True)
class Alert:
    """One alert a monitor's mail reports."""

    key: str  # the correlation key: host/service, the problem ID, alertname{labels}
    state: str  # problem, recovery, acknowledgement, info
    severity: str  # as the tool says it: CRITICAL, DOWN, High, critical ("" if none)
    summary: str  # one line for the incident's subject
    host: str = ""  # the host it is about, as the tool names it ("" if none)


@dataclass(frozen=True, kw_only=True)
class Flap:
    """More than `changes` state changes within `within`: the alert flaps."""

    changes: int = 5
    within: timedelta = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class Monitor:
    """One `[[monitors]]` entry, compiled."""

    name: str
    when: Condition
    format: str
    queue: str | None = None
    priority: Mapping[str, str] = field(default_factory=dict)  # severity (upper) -> P1..P4
    pattern: re.Pattern[str] | None = None  # the regex format's
    flap: Flap = field(default_factory=Flap)

    def priority_of(self, severity: str) -> str | None:
        """The priority a severity maps to, if the monitor maps it."""
        return self.priority.get(severity.upper())


@dataclass(frozen=True)
class MonitorMail:
    """A message recognised as a monitor's, and the alerts it carries (maybe none)."""

    monitor: Monitor
    alerts: tuple[Alert, ...]


def recognise(msg: Routable, monitors: Iterable[Monitor], ctx: RouteContext) -> MonitorMail | None:
    """The first monitor whose `when` holds for the message, and its alerts; else None."""
    facts = Facts(msg, ctx)
    for monitor in monitors:
        if monitor.when.holds(facts):
            return MonitorMail(monitor, parse_alerts(monitor, msg.subject, msg.body_text))
    return None


def named(msg: Routable, monitors: Iterable[Monitor], name: str | None) -> MonitorMail | None:
    """The monitor of that name and the message's alerts (a webhook names its monitor)."""
    monitor = next((m for m in monitors if m.name == name), None)
    if monitor is None:
        return None
    return MonitorMail(monitor, parse_alerts(monitor, msg.subject, msg.body_text))


def parse_alerts(monitor: Monitor, subject: str, body: str) -> tuple[Alert, ...]:
    """The alerts of one mail in the monitor's format (none: not an alert we can read)."""
    subject = " ".join(subject.split())
    body = body.replace("\r\n", "\n")
    if monitor.format == "nagios":
        found = nagios(subject, body)
        return (found,) if found else ()
    if monitor.format == "zabbix":
        found = zabbix(subject, body)
        return (found,) if found else ()
    if monitor.format == "alertmanager":
        return alertmanager(subject, body)
    if monitor.pattern is not None:
        found = regex(monitor.pattern, subject, body)
        return (found,) if found else ()
    return ()


def state_of(word: str) -> str:
    """A tool's notification type or state word as one of STATES."""
    return _STATE_WORDS.get(word.strip().lower(), "info")


# --- Nagios and Icinga ------------------------------------------------------------------

_NAGIOS_SERVICE = re.compile(
    r"^\*\* (?P<type>[A-Z]+) Service Alert: (?P<host>[^/]+)/(?P<service>.+) is (?P<state>\S+) \*\*$"
)
_NAGIOS_HOST = re.compile(
    r"^\*\* (?P<type>[A-Z]+) Host Alert: (?P<host>.+) is (?P<state>\S+) \*\*$"
)
_ICINGA_HOST = re.compile(r"^\[(?P<type>[A-Z]+)\] Host (?P<host>.+) is (?P<state>\S+?)!?$")
_ICINGA_SERVICE = re.compile(
    r"^\[(?P<type>[A-Z]+)\] (?P<service>.+) on (?P<host>.+) is (?P<state>\S+?)!?$"
)


def nagios(subject: str, body: str) -> Alert | None:
    """A Nagios or Icinga (1 and 2) default notification."""
    for pattern in (_NAGIOS_SERVICE, _NAGIOS_HOST, _ICINGA_HOST, _ICINGA_SERVICE):
        m = pattern.match(subject)
        if m is None:
            continue
        parts = m.groupdict()
        host = _body_field(body, "Host") if pattern is _ICINGA_HOST else None
        host = host or parts["host"]
        service = parts.get("service")
        if service is not None and pattern is _ICINGA_SERVICE:
            host = _body_field(body, "Host") or host
            service = _body_field(body, "Service") or service
        key = f"{host}/{service}" if service else host
        state = parts["state"]
        summary = f"{key} is {state}"
        return Alert(key, state_of(parts["type"]), state.upper(), summary, host.strip())
    return None


def _body_field(body: str, name: str) -> str | None:
    """`Name: value` (any spacing) on a line of its own."""
    m = re.search(rf"^{name}:[ \t]+(\S.*?)[ \t]*$", body, re.M)
    return m.group(1) if m else None


# --- Zabbix -----------------------------------------------------------------------------

_ZABBIX_SUBJECT = re.compile(
    r"^(?:(?P<problem>Problem)|(?P<resolved>Resolved)(?: in [^:]+)?|"
    r"(?P<updated>Updated problem)(?: in [^:]+)?): (?P<name>.+)$"
)


def zabbix(subject: str, body: str) -> Alert | None:
    """A Zabbix default problem, recovery or update message (keyed by the problem ID)."""
    m = _ZABBIX_SUBJECT.match(subject)
    event_id = _body_field(body, "Original problem ID")
    if m is None or (event_id is None and not m.group("updated")):
        return None
    if m.group("problem"):
        state = "problem"
    elif m.group("resolved"):
        state = "recovery"
    else:
        state = "acknowledgement" if re.search(r"\backnowledged\b", body) else "info"
    severity = _body_field(body, "Severity") or ""
    name = _body_field(body, "Problem name") or m.group("name")
    host = _body_field(body, "Host")
    summary = f"{name} on {host}" if host else name
    # The default update message names no problem ID: keyed by its name, it finds no
    # incident (recorded, opens nothing) unless the template adds the ID.
    key = f"zabbix:{event_id}" if event_id else f"zabbix:name:{name}"
    return Alert(key, state, severity, summary, host or "")


# --- Prometheus Alertmanager ------------------------------------------------------------

_AM_SUBJECT = re.compile(r"^\[(?P<status>FIRING|RESOLVED)(?::\d+)?\] (?P<rest>.*)$")
_AM_SECTION = re.compile(r"^\[\d+\] (Firing|Resolved)$")
_AM_PAIR = re.compile(r"^(?:- )?([A-Za-z_][A-Za-z0-9_]*) = (.*)$")


def alertmanager(subject: str, body: str) -> tuple[Alert, ...]:
    """The alerts of an Alertmanager group mail, one per alert, keyed by all its labels."""
    m = _AM_SUBJECT.match(subject)
    if m is None:
        return ()
    section = "problem" if m.group("status") == "FIRING" else "recovery"
    alerts: list[Alert] = []
    labels: dict[str, str] | None = None

    def close() -> None:
        if labels and "alertname" in labels:
            alerts.append(_am_alert(labels, section))

    for line in (raw.strip() for raw in body.split("\n")):
        heading = _AM_SECTION.match(line)
        if heading:
            close()
            labels, section = None, "problem" if heading.group(1) == "Firing" else "recovery"
        elif line.rstrip(":") == "Labels":
            close()
            labels = {}
        elif line.rstrip(":") in ("Annotations", "Source") or line.startswith("Source:"):
            close()
            labels = None
        elif labels is not None and (pair := _AM_PAIR.match(line)):
            labels[pair.group(1)] = pair.group(2).strip()
    close()
    return tuple(alerts)


def _am_alert(labels: Mapping[str, str], state: str) -> Alert:
    # Severity is not identity here: an alert that turns critical is the same incident.
    others = ",".join(
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
    )
    name = labels["alertname"]
    key = f"{name}{{{others}}}"
    where = labels.get("instance") or labels.get("job") or others
    summary = f"{name} on {where}" if where else name
    host = labels.get("host") or _host_of(labels.get("instance", ""))
    return Alert(key, state, labels.get("severity", ""), summary, host)


def _host_of(instance: str) -> str:
    """An Alertmanager `instance` label's host: `mail01:9100` -> `mail01`."""
    if instance.startswith("["):  # [fe80::1]:9100
        return instance[1:].partition("]")[0]
    host, colon, port = instance.rpartition(":")
    return host if colon and port.isdigit() and ":" not in host else instance


# --- regex ------------------------------------------------------------------------------


def regex(pattern: re.Pattern[str], subject: str, body: str) -> Alert | None:
    """The named groups `key`, `state` and `severity` of the first match."""
    m = pattern.search(f"{subject}\n{body}")
    if m is None or not m.group("key"):
        return None
    groups = m.groupdict()
    severity = (groups.get("severity") or "").strip()
    key = m.group("key").strip()
    host = (groups.get("host") or "").strip()
    return Alert(key, state_of(m.group("state") or ""), severity, subject or key, host)
