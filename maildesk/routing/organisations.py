"""Organisations by mail domain: which one an address belongs to. Pure.

An organisation's domain covers the domain itself and every subdomain under it
(`example.org` covers `it.example.org`); when two organisations cover an address, the one
with the longer (more specific) domain wins, so `lab.example.org` can be an organisation of
its own inside `example.org`. Domains compare case-insensitively and as IDNA A-labels, so
`bücher.example` and `xn--bcher-kva.example` are the same domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Organisation", "normalise_domain", "organisation_for"]


@dataclass(frozen=True, kw_only=True)
class Organisation:
    """One `[[organisations]]` entry: a customer company known by its mail domains."""

    name: str
    domains: tuple[str, ...]  # normalised (see normalise_domain)
    vip: bool = False
    queue: str | None = None  # its tickets' queue when no rule picks one
    sla_policy: str | None = None  # its tickets' SLA policy when no rule picks one
    notes: str = ""


def normalise_domain(domain: str) -> str:
    """Lower case, no trailing dot, IDNA A-labels where the name can be encoded."""
    d = domain.strip().rstrip(".").lower()
    if d.isascii():
        return d
    try:
        return d.encode("idna").decode("ascii")
    except UnicodeError:
        return d


def organisation_for(address: str, organisations: Iterable[Organisation]) -> Organisation | None:
    """The organisation whose domain covers the address's domain most specifically."""
    domain = normalise_domain(address.rpartition("@")[2])
    if not domain:
        return None
    best: tuple[int, Organisation] | None = None
    for org in organisations:
        for d in org.domains:
            if (domain == d or domain.endswith("." + d)) and (best is None or len(d) > best[0]):
                best = (len(d), org)
    return best[1] if best else None
