"""Who is asking: bearer tokens of `[http] tokens` (compared in constant time), dashboard
sessions made from them at login, and a limit on failed attempts per client address.

A token is never logged, never put in a URL and never kept in a cookie: the dashboard's
cookie holds a random session id that maps to the token's name and role, in memory (a
restarted daemon asks its users to log in again).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from maildesk.config import HttpToken

SESSION_COOKIE = "maildesk_session"
SESSION_LIFETIME = 8 * 3600.0  # seconds a dashboard login lasts
MAX_FAILURES = 10  # failed tokens from one address within FAILURE_WINDOW, then 429
FAILURE_WINDOW = 60.0  # seconds
MAX_SESSIONS = 10_000
MAX_CLIENTS = 100_000  # addresses whose failures are remembered at once


@dataclass(frozen=True)
class Principal:
    """A caller the tokens let in: the token's name and role (read or admin)."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def find_token(tokens: Sequence[HttpToken], presented: str) -> Principal | None:
    """The principal whose token this is, or None; every token is compared, each in
    constant time, so the answer's timing says nothing about how close a guess was."""
    found: Principal | None = None
    given = presented.encode("utf-8", "surrogateescape")
    for token in tokens:
        if hmac.compare_digest(given, token.secret.encode("utf-8")) and found is None:
            found = Principal(token.name, token.role)
    return found


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@dataclass
class FailureLimiter:
    """Failed attempts per client address in a sliding window; past the limit, refused."""

    limit: int = MAX_FAILURES
    window: float = FAILURE_WINDOW
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked(self, client: str) -> float:
        """Seconds until this client may try again (0: it may now)."""
        with self._lock:
            if client not in self._failures:
                return 0.0
            recent = self._recent(client)
            if len(recent) < self.limit:
                return 0.0
            return max(1.0, recent[0] + self.window - self.clock())

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) >= MAX_CLIENTS:  # many addresses: forget the quiet ones
                start = self.clock() - self.window
                self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > start}
            self._recent(client).append(self.clock())

    def _recent(self, client: str) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= self.clock() - self.window:
            recent.popleft()
        return recent


@dataclass
class Sessions:
    """Dashboard sessions: a random id (the cookie) -> the principal and its expiry."""

    lifetime: float = SESSION_LIFETIME
    clock: Callable[[], float] = time.monotonic
    _live: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, principal: Principal) -> str:
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            if len(self._live) >= MAX_SESSIONS:
                self._live = {k: v for k, v in self._live.items() if v[1] > now}
            self._live[session_id] = (principal, now + self.lifetime)
        return session_id

    def get(self, session_id: str | None, tokens: Sequence[HttpToken]) -> Principal | None:
        """The session's principal, while it lasts and its token is still configured."""
        if not session_id:
            return None
        with self._lock:
            entry = self._live.get(session_id)
            if entry is None:
                return None
            principal, expires = entry
            if expires <= self.clock() or not any(
                t.name == principal.name and t.role == principal.role for t in tokens
            ):
                del self._live[session_id]
                return None
        return principal

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._live.pop(session_id, None)
