"""The sections about mail coming in and going out: [smtp], [lmtp], [outbound] and
[[mailboxes]]."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from maildesk.config.fleet import DEFAULT_LEASE_TTL, lease_ttl
from maildesk.config.model import LmtpConfig, MailboxConfig, OutboundConfig, SmtpConfig
from maildesk.config.oauth2 import read_auth
from maildesk.config.reader import (
    Reader,
    int_between,
    parse_duration,
    parse_email,
    parse_hostport,
    parse_size,
)

_MAILBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,26}")
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the closing NUL


def read_smtp(r: Reader, t: dict[str, Any], desk_address: str) -> SmtpConfig:
    """[smtp]: where the listener listens, what it accepts and the limits it holds clients to."""
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
        accept=accept or (desk_address,),
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
        commit_timeout=r.seconds(t, "[smtp]", "commit_timeout", 30.0),
        max_backlog=_max_backlog(r, t),
    )
    r.done(t, "[smtp]")
    return smtp


def _max_backlog(r: Reader, t: dict[str, Any]) -> int:
    """Stored messages pending past which DATA is deferred; 0 turns the check off."""
    limit = r.take(t, "[smtp]", "max_backlog", int_between(0, 100_000_000), None)
    return SmtpConfig.max_backlog if limit is None else limit


def read_lmtp(r: Reader, t: dict[str, Any], base: Path) -> LmtpConfig:
    """[lmtp]: `listen` as "host:port", or a unix socket's path (absolute, or relative to
    the config file); no `listen`, no LMTP listener."""
    place = "[lmtp]"
    listen = r.take(t, place, "listen", str, None)
    r.done(t, place, ("listen",))
    if listen is None:
        return LmtpConfig()
    host, _, port = listen.rpartition(":")
    if host and "/" not in listen and port.isascii() and port.isdigit():
        try:
            host, number = parse_hostport(listen)
        except ValueError as exc:
            r.problem(f"{place} key 'listen'", str(exc))
            return LmtpConfig()
        return LmtpConfig(host=host, port=number)
    if not listen.strip() or "\0" in listen:
        r.problem(f"{place} key 'listen'", f"expected 'host:port' or a socket path, got {listen!r}")
        return LmtpConfig()
    path = base / listen
    if not path.parent.is_dir():
        r.problem(f"{place} key 'listen'", f"directory {path.parent} does not exist")
    elif len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        r.problem(
            f"{place} key 'listen'",
            f"socket path {path} is longer than {_MAX_SOCKET_PATH} bytes (the system's limit)",
        )
    return LmtpConfig(path=path)


def _checked_emails(r: Reader, values: tuple[str, ...], place: str) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(parse_email(v))
        except ValueError as exc:
            r.problem(place, str(exc))
    return out


def _checked_networks(r: Reader, values: tuple[str, ...], place: str) -> tuple[str, ...]:
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            r.problem(place, f"expected an IP address or network like '10.0.0.0/8', got {v!r}")
    return values


def read_outbound(r: Reader, t: dict[str, Any], base: Path) -> OutboundConfig:
    """[outbound]: the smarthost (or a Maildir) and how often a failed send is retried."""
    place = "[outbound]"
    transport = r.take(t, place, "transport", str, "smtp") or "smtp"
    if transport not in ("smtp", "maildir"):
        r.problem(f"{place} key 'transport'", f"must be 'smtp' or 'maildir', got {transport!r}")
    path = r.take(t, place, "path", str, None)
    if transport == "maildir" and not path:
        r.problem(f"{place} key 'path'", "is required when transport = 'maildir'")
    auth, oauth2 = read_auth(r, t, place, base, "smtp")
    password = _password(r, t, place, required=False)
    username = r.take(t, place, "username", str, None)
    if auth == "oauth2":
        _no_password(r, place, password)
        if not username:
            r.problem(f"{place} key 'username'", "is required with auth = 'oauth2'")
    cfg = OutboundConfig(
        transport=transport,
        host=r.take(t, place, "host", str, "127.0.0.1") or "127.0.0.1",
        port=r.take(t, place, "port", int_between(1, 65535), 25) or 25,
        path=(base / path) if path else None,
        starttls=bool(r.take(t, place, "starttls", bool, False)),
        ca_file=r.existing_file(place, "ca_file", base, r.take(t, place, "ca_file", str, None)),
        username=username,
        password=password,
        oauth2=oauth2,
        timeout=(
            r.take(t, place, "timeout", parse_duration, None) or timedelta(seconds=30)
        ).total_seconds(),
        max_attempts=r.take(t, place, "max_attempts", int_between(1, 1000), 10) or 10,
        backoff=r.take(t, place, "backoff", parse_duration, None) or timedelta(seconds=30),
        max_backoff=r.take(t, place, "max_backoff", parse_duration, None) or timedelta(hours=2),
    )
    r.done(t, place)
    return cfg


def _password(r: Reader, t: dict[str, Any], place: str, *, required: bool) -> str | None:
    """`password`, or the environment variable `password_env` names (which wins)."""
    password = r.take(t, place, "password", str, None)
    password_env = r.take(t, place, "password_env", str, None)
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            r.problem(f"{place} key 'password_env'", f"environment variable {password_env} unset")
    elif required and password is None:
        r.problem(place, "needs password or password_env")
    return password


def _no_password(r: Reader, place: str, password: str | None) -> None:
    if password is not None:
        r.problem(f"{place} key 'password'", "(or password_env) is not used with auth = 'oauth2'")


def read_mailboxes(
    r: Reader, tables: list[dict[str, Any]], max_size: int, base: Path
) -> list[MailboxConfig]:
    """[[mailboxes]]: the IMAP folders to read, each under a unique name."""
    out: list[MailboxConfig] = []
    for i, t in enumerate(tables):
        name = t.get("name")
        place = f"[[mailboxes]] '{name}'" if isinstance(name, str) else f"[[mailboxes]] #{i + 1}"
        name = r.take(t, place, "name", _mailbox_name, required=True) or f"#{i + 1}"
        if name in {m.name for m in out}:
            r.problem(place, "duplicate mailbox name")
        out.append(_mailbox(r, t, place, name, max_size, base))
        r.done(t, place)
    return out


def _mailbox_name(value: object) -> str:
    if not isinstance(value, str) or not _MAILBOX_NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 27 letters, digits, '.', '_' or '-' (it is stored as the origin "
            f"'imap:NAME'), got {value!r}"
        )
    return value


def _mailbox(
    r: Reader, t: dict[str, Any], place: str, name: str, max_size: int, base: Path
) -> MailboxConfig:
    """One mailbox's keys after its name."""
    tls = r.take(t, place, "tls", str, "ssl") or "ssl"
    if tls not in ("ssl", "starttls", "none"):
        r.problem(f"{place} key 'tls'", f"must be 'ssl', 'starttls' or 'none', got {tls!r}")
    auth, oauth2 = read_auth(r, t, place, base, "imap")
    password = _password(r, t, place, required=auth == "password")
    if auth == "oauth2":
        _no_password(r, place, password)
    folder, after, move_to, oversize_to = _folders(r, t, place)
    poll = r.take(t, place, "poll_interval", parse_duration, None) or timedelta(seconds=60)
    if poll < timedelta(seconds=1):
        r.problem(
            f"{place} key 'poll_interval'",
            f"must be at least 1s, got {poll.total_seconds():g}s",
        )
    return MailboxConfig(
        name=name,
        host=r.take(t, place, "host", str, required=True) or "",
        port=r.take(t, place, "port", int_between(1, 65535), None)
        or (993 if tls == "ssl" else 143),
        tls=tls,
        ca_file=r.existing_file(place, "ca_file", base, r.take(t, place, "ca_file", str, None)),
        username=r.take(t, place, "username", str, required=True) or "",
        password=password or "",
        oauth2=oauth2,
        folder=folder,
        idle=bool(r.take(t, place, "idle", bool, True)),
        poll_interval=max(poll.total_seconds(), 1.0),
        after=after,
        move_to=move_to,
        batch_size=r.take(t, place, "batch_size", int_between(1, 1000), 50) or 50,
        max_message_size=r.take(t, place, "max_message_size", parse_size, None) or max_size,
        oversize_to=oversize_to,
        lease_ttl=lease_ttl(r, t, place, DEFAULT_LEASE_TTL) if "lease_ttl" in t else None,
    )


def _folders(r: Reader, t: dict[str, Any], place: str) -> tuple[str, str, str | None, str | None]:
    """The folder read, what happens to mail once read, and where moved or oversize mail goes."""
    folder = r.take(t, place, "folder", str, "INBOX") or "INBOX"
    after = r.take(t, place, "after", str, "seen") or "seen"
    move_to = r.take(t, place, "move_to", str, None)
    oversize_to = r.take(t, place, "oversize_to", str, None)
    if after not in ("seen", "move", "delete"):
        r.problem(f"{place} key 'after'", f"must be 'seen', 'move' or 'delete', got {after!r}")
    if after == "move" and not move_to:
        r.problem(f"{place} key 'move_to'", "is required when after = 'move'")
    if move_to and after != "move":
        r.problem(f"{place} key 'move_to'", f"is only used with after = 'move' (after = {after!r})")
    for key, target in (("move_to", move_to), ("oversize_to", oversize_to)):
        if target is not None and target == folder:
            r.problem(f"{place} key '{key}'", f"must differ from folder {folder!r}")
    return folder, after, move_to, oversize_to
