"""`auth = "oauth2"` and its `oauth2` table, for `[[mailboxes]]` and `[outbound]`.

    auth = "oauth2"
    oauth2 = { provider = "microsoft", tenant = "contoso.onmicrosoft.com",
               client_id = "...", client_secret_env = "MAILDESK_M365_SECRET" }

`provider` fills in the token endpoint and the scope Microsoft 365 or Google Workspace
want; `generic` (the default) takes them from `token_url` and `scope`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from maildesk.config.reader import Reader, parse_duration
from maildesk.mail.oauth2 import GRANTS, MECHANISMS, OAuth2Settings

AUTHS = ("password", "oauth2")
PROVIDERS = ("generic", "microsoft", "google")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")

# What each provider wants for a mail login: the token endpoint (from the tenant for
# Microsoft) and the scope per grant and protocol.
_MICROSOFT = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
_GOOGLE = "https://oauth2.googleapis.com/token"
_SCOPES = {
    ("microsoft", "client_credentials", "imap"): "https://outlook.office365.com/.default",
    ("microsoft", "client_credentials", "smtp"): "https://outlook.office365.com/.default",
    ("microsoft", "refresh_token", "imap"): (
        "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
    ),
    ("microsoft", "refresh_token", "smtp"): "https://outlook.office.com/SMTP.Send offline_access",
    ("google", "refresh_token", "imap"): "https://mail.google.com/",
    ("google", "refresh_token", "smtp"): "https://mail.google.com/",
}


def read_auth(
    r: Reader, t: dict[str, Any], place: str, base: Path, protocol: str
) -> tuple[str, OAuth2Settings | None]:
    """Pop `auth` and `oauth2`: the way to log in, and the OAuth2 settings it needs."""
    auth = r.take(t, place, "auth", str, "password") or "password"
    if auth not in AUTHS:
        r.problem(f"{place} key 'auth'", f"must be 'password' or 'oauth2', got {auth!r}")
    table = t.pop("oauth2", None)
    if table is not None and not isinstance(table, dict):
        r.problem(f"{place} key 'oauth2'", 'must be a table like { client_id = "...", ... }')
        return auth, None
    if auth != "oauth2":
        if table is not None:
            r.problem(
                f"{place} key 'oauth2'", f"is only used with auth = 'oauth2' (auth = {auth!r})"
            )
        return auth, None
    if table is None:
        r.problem(f"{place} key 'oauth2'", "is required with auth = 'oauth2'")
        return auth, None
    settings = _settings(r, dict(table), f"{place} oauth2", base, protocol)
    return auth, settings


def _settings(
    r: Reader, t: dict[str, Any], place: str, base: Path, protocol: str
) -> OAuth2Settings:
    provider = _choice(r, t, place, "provider", PROVIDERS, "generic")
    refresh_file = r.take(t, place, "refresh_token_file", str, None)
    grant = _choice(
        r, t, place, "grant", GRANTS, "refresh_token" if refresh_file else "client_credentials"
    )
    token_url = _token_url(r, t, place, provider)
    client_id = r.take(t, place, "client_id", str, required=True) or ""
    secret_given = any(k.startswith("client_secret") for k in t)
    secret = _secret(r, t, place, base)
    if grant == "client_credentials" and not secret_given:
        r.problem(
            place,
            "grant 'client_credentials' needs client_secret, client_secret_env or "
            "client_secret_file",
        )
    if grant == "refresh_token" and not refresh_file:
        r.problem(f"{place} key 'refresh_token_file'", "is required with grant 'refresh_token'")
    if grant == "client_credentials" and refresh_file:
        r.problem(f"{place} key 'refresh_token_file'", "is only used with grant 'refresh_token'")
    if provider == "google" and grant == "client_credentials":
        r.problem(
            f"{place} key 'grant'",
            "Google has no client-credentials grant for mail (service accounts sign a JWT "
            "instead): use grant = 'refresh_token'",
        )
    scope = r.take(t, place, "scope", str, None)
    mechanism = _choice(r, t, place, "mechanism", MECHANISMS, "xoauth2")
    timeout = r.take(t, place, "timeout", parse_duration, None) or timedelta(seconds=30)
    r.done(t, place)
    return OAuth2Settings(
        token_url=token_url,
        grant=grant,
        client_id=client_id,
        client_secret=secret,
        scope=scope if scope is not None else _SCOPES.get((provider, grant, protocol), ""),
        refresh_token_file=r.existing_file(place, "refresh_token_file", base, refresh_file),
        mechanism=mechanism,
        timeout=max(timeout.total_seconds(), 1.0),
    )


def _choice(
    r: Reader, t: dict[str, Any], place: str, key: str, choices: tuple[str, ...], default: str
) -> str:
    value = r.take(t, place, key, str, default) or default
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        r.problem(f"{place} key '{key}'", f"must be one of {listed}, got {value!r}")
        return default
    return value


def _token_url(r: Reader, t: dict[str, Any], place: str, provider: str) -> str:
    """`token_url`, or the provider's endpoint; https, or http on the loopback only."""
    given = "token_url" in t  # a bad one is reported as such, not as missing
    url = r.take(t, place, "token_url", _url, None)
    tenant = r.take(t, place, "tenant", str, None)
    if provider == "microsoft" and not given:
        if not tenant:
            r.problem(
                f"{place} key 'tenant'",
                "is required with provider 'microsoft' "
                "(the directory's name or id, e.g. 'contoso.onmicrosoft.com')",
            )
        url = _MICROSOFT.format(tenant=tenant or "common")
    elif tenant is not None and provider != "microsoft":
        r.problem(f"{place} key 'tenant'", "is only used with provider 'microsoft'")
    if provider == "google" and not given:
        url = _GOOGLE
    if url is None and not given:
        r.problem(f"{place} key 'token_url'", "is required with provider 'generic'")
    return url or ""


def _url(value: object) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"expected an https:// URL, got {value!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(
            f"must be https:// (the client secret and tokens travel in it), got {value!r}; "
            "plain http is allowed on the loopback only"
        )
    return str(value)


def _secret(r: Reader, t: dict[str, Any], place: str, base: Path) -> str | None:
    """The client secret: `client_secret`, `client_secret_env` or `client_secret_file`."""
    given = [k for k in ("client_secret", "client_secret_env", "client_secret_file") if k in t]
    if len(given) > 1:
        r.problem(place, f"give one of {', '.join(given)}, not several")
    secret = r.take(t, place, "client_secret", str, None)
    env = r.take(t, place, "client_secret_env", str, None)
    file = r.take(t, place, "client_secret_file", str, None)
    if env:
        secret = _or_problem(r, f"{place} key 'client_secret_env'", lambda: _env(env))
    elif file:
        secret = _or_problem(r, f"{place} key 'client_secret_file'", lambda: _file(base / file))
    return secret


def _or_problem(r: Reader, place: str, read: Callable[[], str]) -> str | None:
    try:
        return read()
    except ValueError as exc:
        r.problem(place, str(exc))
        return None


def _env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise ValueError(f"environment variable {name} unset")
    return value


def _file(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not value:
        raise ValueError(f"file {path} is empty")
    return value
