"""OAuth2 access tokens for IMAP and SMTP logins (SASL XOAUTH2 and OAUTHBEARER).

A provider holds one set of credentials: it asks the token endpoint for an access token by
the client-credentials grant or with a stored refresh token (RFC 6749 sections 4.4 and 6),
keeps the token until shortly before `expires_in` runs out, and asks again when it has run
out or when the mail server refused it. Microsoft 365 and Google Workspace both take these
two grants at their token endpoints as plain form posts, so the standard library's urllib
is the client. A refresh token the endpoint rotates is written back to its file (mode 0600,
replaced atomically) before the new access token is used: a crash never leaves only the
used-up one behind.

Providers are kept per settings for the process (`tokens_for`), so every connection of a
mailbox, reconnects included, and the outbox's SMTP sessions reuse a token while it lasts.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from maildesk.errors import MaildeskError

log = logging.getLogger(__name__)

GRANTS = ("client_credentials", "refresh_token")
MECHANISMS = ("xoauth2", "oauthbearer")
EARLY = 60.0  # renew this many seconds before a token expires (a tenth of short lifetimes)
MAX_BODY = 1 << 20  # a token response is a few KB


@dataclass(frozen=True, kw_only=True)
class OAuth2Settings:
    """How to get access tokens for one login (`auth = "oauth2"` in config)."""

    token_url: str
    grant: str  # one of GRANTS
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scope: str = ""
    refresh_token_file: Path | None = None  # the grant "refresh_token" reads (and rewrites) it
    mechanism: str = "xoauth2"  # one of MECHANISMS
    timeout: float = 30.0


class TokenError(MaildeskError):
    """No access token could be had (endpoint unreachable, grant refused, bad answer)."""


@dataclass(frozen=True)
class AccessToken:
    """An access token and, on the provider's clock, when to stop using it."""

    value: str = field(repr=False)
    renew_at: float


class TokenProvider(Protocol):
    def token(self) -> AccessToken:
        """A token valid for a while yet (fetched when none is); raises TokenError."""

    def refused(self, token: AccessToken) -> None:
        """The mail server refused `token`: the next `token()` fetches a new one."""


class OAuth2Tokens:
    """The TokenProvider of one OAuth2Settings, against its token endpoint."""

    def __init__(
        self, settings: OAuth2Settings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.fetched = 0  # how many tokens came from the endpoint (tests, logs)
        self._current: AccessToken | None = None
        self._lock = threading.Lock()

    def token(self) -> AccessToken:
        with self._lock:
            current = self._current
            if current is None or self.clock() >= current.renew_at:
                current = self._current = self._fetch()
            return current

    def refused(self, token: AccessToken) -> None:
        with self._lock:
            if self._current == token:
                self._current = None

    def _fetch(self) -> AccessToken:
        s = self.settings
        form = {"grant_type": s.grant, "client_id": s.client_id}
        if s.client_secret is not None:
            form["client_secret"] = s.client_secret
        if s.scope:
            form["scope"] = s.scope
        if s.grant == "refresh_token":
            form["refresh_token"] = self._refresh_token()
        asked = self.clock()
        answer = _post_form(s.token_url, form, s.timeout)
        value, lifetime = _access_token(s.token_url, answer)
        rotated = answer.get("refresh_token")
        if (
            s.grant == "refresh_token"
            and isinstance(rotated, str)
            and rotated not in ("", form["refresh_token"])
        ):
            self._save_refresh_token(rotated)  # rotated: the old one may be void now
        self.fetched += 1
        log.info("OAuth2: new access token from %s, valid for %gs", s.token_url, lifetime)
        return AccessToken(value, asked + lifetime - min(EARLY, lifetime / 10))

    def _refresh_token(self) -> str:
        path = self.settings.refresh_token_file
        if path is None:
            raise TokenError("grant 'refresh_token' needs refresh_token_file")
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenError(f"cannot read the refresh token from {path}: {exc}") from exc
        if not token:
            raise TokenError(f"the refresh token file {path} is empty")
        return token

    def _save_refresh_token(self, token: str) -> None:
        path = self.settings.refresh_token_file
        assert path is not None
        try:
            write_private(path, token + "\n")
        except OSError as exc:
            # The endpoint may already have retired the old one: say so loudly.
            raise TokenError(f"cannot save the rotated refresh token to {path}: {exc}") from exc
        log.info("OAuth2: rotated refresh token saved to %s", path)


def write_private(path: Path, text: str) -> None:
    """Replace path's content with text, readable by its owner only, atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _post_form(url: str, form: dict[str, str], timeout: float) -> dict[str, Any]:
    """POST the form; the JSON object answered, or TokenError saying what went wrong."""
    request = urllib.request.Request(
        url,
        data=urlencode(form).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _json_object(url, response.read(MAX_BODY))
    except urllib.error.HTTPError as exc:
        detail = _oauth_error(exc.read(MAX_BODY)) or exc.reason
        raise TokenError(f"token endpoint {url} answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TokenError(f"cannot reach the token endpoint {url}: {reason}") from exc


def _json_object(url: str, body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise TokenError(f"token endpoint {url} did not answer with a JSON object")
    return answer


def _oauth_error(body: bytes) -> str:
    """RFC 6749 5.2: `error` and `error_description`, as one line."""
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    parts = [str(answer.get(k)) for k in ("error", "error_description") if answer.get(k)]
    return " ".join(" - ".join(parts).split())[:300]


def _access_token(url: str, answer: dict[str, Any]) -> tuple[str, float]:
    """The token and its lifetime in seconds (one hour when the endpoint does not say)."""
    value = answer.get("access_token")
    if not isinstance(value, str) or not value:
        raise TokenError(f"token endpoint {url} answered without an access_token")
    raw = answer.get("expires_in", 3600)
    try:
        lifetime = float(raw)
    except (TypeError, ValueError):
        raise TokenError(f"token endpoint {url} answered expires_in {raw!r}") from None
    if lifetime <= 0:
        raise TokenError(f"token endpoint {url} answered a token that has expired ({raw!r})")
    return value, lifetime


def sasl_response(mechanism: str, user: str, token: str) -> str:
    """The initial client response of XOAUTH2 or OAUTHBEARER (RFC 7628), before base64."""
    if mechanism == "oauthbearer":
        authzid = user.replace("=", "=3D").replace(",", "=2C")
        return f"n,a={authzid},\x01auth=Bearer {token}\x01\x01"
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


_providers: dict[OAuth2Settings, OAuth2Tokens] = {}
_providers_lock = threading.Lock()


def tokens_for(settings: OAuth2Settings) -> OAuth2Tokens:
    """The process's provider for these settings (one token cache per set of credentials)."""
    with _providers_lock:
        provider = _providers.get(settings)
        if provider is None:
            provider = _providers[settings] = OAuth2Tokens(settings)
        return provider
