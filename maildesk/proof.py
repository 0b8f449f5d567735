"""Who may act as an agent: reply tokens and trusted Authentication-Results. Pure functions.

A From header is whatever the sender typed, so it proves nothing. An agent's mail counts as
the agent's only with one of two proofs:

- the ticket's *agent* reply token in a recipient address (support+42-a<mac>@…). Tokens
  are an HMAC of the ticket id and the desk's secret, so they cannot be guessed, and a
  token minted for one ticket fails on any other. An agent token also binds the agent's
  address: it is minted for one agent, sent only to that agent, and proves only mail whose
  From is that agent (a forwarded notice gives its reader no agent's powers but, with a
  forged From, that one agent's on that one ticket). The requester's mail carries a
  *requester* token, which threads replies but never proves an agent.
- a pass in an `Authentication-Results` header added by a mail server we trust (its
  authserv-id is configured): DMARC pass, or DKIM pass aligned with the From domain (SPF
  alone proves only the envelope, never the From).
  Headers with other authserv-ids are the sender's to forge and are ignored; only the
  topmost trusted header counts, and the server must strip incoming copies of its own
  (RFC 8601 section 5), as Postfix, Exim and rspamd do.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

import authres

Role = Literal["requester", "agent"]
_ROLE_CODE: dict[Role, str] = {"requester": "r", "agent": "a"}
_TOKEN = re.compile(r"^(\d{1,18})-([ra])([0-9a-f]{20})$")


@dataclass(frozen=True)
class Token:
    ticket_id: int
    role: Role


class TokenCodec:
    """Mints and checks the reply tokens of one desk secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the reply-token secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, ticket_id: int, role: Role, agent: str) -> str:
        msg = f"maildesk-reply-token:{ticket_id}:{role}:{agent.lower()}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:20]

    def mint(self, ticket_id: int, role: Role, agent: str = "") -> str:
        """'42-a1b2…': ticket id, role letter, 80 bits of HMAC (over the agent's address too)."""
        if role == "agent" and not agent:
            raise ValueError("an agent token is minted for one agent's address")
        mac = self._mac(ticket_id, role, agent if role == "agent" else "")
        return f"{ticket_id}-{_ROLE_CODE[role]}{mac}"

    def verify(self, token: str, sender: str = "") -> Token | None:
        """The ticket and role a token was minted for, or None if it is not ours; an agent
        token counts only when `sender` is the agent it was minted for."""
        m = _TOKEN.match(token.lower())
        if not m:
            return None
        ticket_id = int(m.group(1))
        role: Role = "agent" if m.group(2) == "a" else "requester"
        if role == "agent" and not sender:
            return None
        mac = self._mac(ticket_id, role, sender if role == "agent" else "")
        if not hmac.compare_digest(m.group(3), mac):
            return None
        return Token(ticket_id, role)


def plus_address(address: str, token: str) -> str:
    """support@example.com + token -> support+token@example.com."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{token}@{domain}"


@dataclass(frozen=True)
class AuthVerdict:
    """Whether a trusted server vouched for the From domain, and what it said."""

    passed: bool
    detail: str = ""


def _aligned(domain: str | None, from_domain: str) -> bool:
    """Relaxed DMARC alignment: the same domain, or one a subdomain of the other."""
    if not domain:
        return False
    d = domain.lower().strip().rstrip(".")
    return d == from_domain or d.endswith("." + from_domain) or from_domain.endswith("." + d)


def _prop(result: authres.core.AuthenticationResult, ptype: str, name: str) -> str | None:
    for p in result.properties:
        if p.type == ptype and p.name == name:
            value = str(p.value)
            return value.rpartition("@")[2] if "@" in value else value
    return None


def authentication_results(
    header_values: Iterable[str], trusted_ids: Collection[str], from_addr: str
) -> AuthVerdict:
    """Did a trusted server's Authentication-Results pass the From address's domain?"""
    trusted = {t.lower() for t in trusted_ids}
    from_domain = from_addr.rpartition("@")[2].lower()
    if not trusted or not from_domain:
        return AuthVerdict(False)
    for value in header_values:
        try:
            parsed = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception:  # a malformed header proves nothing, whoever wrote it
            continue
        if str(parsed.authserv_id).lower() not in trusted:
            continue
        # Only the topmost trusted header counts: our own server adds its header above
        # whatever came with the message, so a forged one can only sit below it.
        for result in parsed.results:
            method, outcome = str(result.method).lower(), str(result.result).lower()
            if outcome != "pass":
                continue
            if method == "dmarc" and _aligned(_prop(result, "header", "from"), from_domain):
                return AuthVerdict(True, f"dmarc=pass by {parsed.authserv_id}")
            if method == "dkim" and _aligned(_prop(result, "header", "d"), from_domain):
                return AuthVerdict(True, f"dkim=pass (aligned) by {parsed.authserv_id}")
        return AuthVerdict(False, f"no aligned pass from {parsed.authserv_id}")
    return AuthVerdict(False)
