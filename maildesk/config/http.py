"""[http]: the API, metrics, dashboard and status page that `serve` offers (off unless
`listen` is set), and the bearer tokens that open them."""

from __future__ import annotations

import os
import re
from typing import Any

from maildesk.config.model import HttpConfig, HttpToken
from maildesk.config.reader import Reader, parse_hostport

ROLES = ("read", "admin")
MIN_TOKEN_LENGTH = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def read_http(r: Reader, t: dict[str, Any]) -> HttpConfig:
    """[http]: listen, tokens (each name, token or token_env, role), status page, base URL."""
    place = "[http]"
    listen = r.take(t, place, "listen", parse_hostport, None)
    public_url = r.take(t, place, "public_url", str, None)
    if public_url is not None and not re.match(r"^https?://[^\s/]+", public_url):
        r.problem(f"{place} key 'public_url'", f"must be an http(s) URL, got {public_url!r}")
    tables = t.pop("tokens", [])
    if not isinstance(tables, list) or not all(isinstance(x, dict) for x in tables):
        r.problem(f"{place} key 'tokens'", "must be a list of { name, token, role } tables")
        tables = []
    tokens = [_token(r, dict(x), i) for i, x in enumerate(tables)]
    names = [tok.name for tok in tokens]
    for name in sorted({n for n in names if names.count(n) > 1}):
        r.problem(f"{place} key 'tokens'", f"duplicate token name {name!r}")
    http = HttpConfig(
        host=listen[0] if listen else None,
        port=listen[1] if listen else 0,
        tokens=tuple(tokens),
        status_page=bool(r.take(t, place, "status_page", bool, False)),
        public_url=(public_url or "").rstrip("/") or None,
    )
    if listen and not tokens:
        r.problem(f"{place} key 'tokens'", "listen is set but no token opens the API")
    r.done(t, place)
    return http


def _token(r: Reader, t: dict[str, Any], i: int) -> HttpToken:
    given = t.get("name")
    place = f"[http] tokens '{given}'" if isinstance(given, str) else f"[http] tokens #{i + 1}"
    name = r.take(t, place, "name", str, required=True) or f"#{i + 1}"
    if not _NAME.fullmatch(name):
        r.problem(f"{place} key 'name'", "must be letters, digits, '.', '_' or '-'")
    secret = r.take(t, place, "token", str, None)
    secret_env = r.take(t, place, "token_env", str, None)
    if secret is not None and secret_env is not None:
        r.problem(place, "give either token or token_env, not both")
    if secret_env:
        secret = os.environ.get(secret_env)
        if secret is None:
            r.problem(f"{place} key 'token_env'", f"environment variable {secret_env} unset")
    elif secret is None:
        r.problem(place, "needs token or token_env")
    if secret is not None and len(secret) < MIN_TOKEN_LENGTH:
        r.problem(
            f"{place} key '{'token_env' if secret_env else 'token'}'",
            f"must be at least {MIN_TOKEN_LENGTH} characters (use 32 random ones)",
        )
    role = r.take(t, place, "role", str, "read")
    if role not in ROLES:
        r.problem(f"{place} key 'role'", f"must be one of {', '.join(ROLES)}, got {role!r}")
    r.done(t, place, ("name", "token", "token_env", "role"))
    return HttpToken(name=name, secret=secret or "", role=role or "read")
