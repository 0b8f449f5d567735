"""The requester's CCs become the ticket's watchers, or are held back with the reason."""

from __future__ import annotations

import logging

from maildesk.pipeline.context import Context
from maildesk.store import repo
from maildesk.store.models import Ticket

log = logging.getLogger(__name__)

MAX_WATCHERS = 20  # CCs kept as watchers of one ticket, at most


def add_cc_watchers(ctx: Context, ticket: Ticket, requester: str, *, unproven: str = "") -> None:
    """The requester's CCs (never the desk's own addresses or agents) watch the ticket.

    On an existing ticket only from mail proven the requester's (`unproven` says why this
    one is not), and never one an agent removed (`#cc -x`) until an agent adds them back:
    each address held back is recorded with the reason.
    """
    session, now = ctx.session, ctx.now
    candidates = _candidates(ctx, requester)
    if not candidates:  # most mail: no one else on To or CC, and no query (nor its flush)
        return
    present = set(repo.watchers(session, ticket.id))
    candidates = [a for a in candidates if a not in present]
    if not candidates:
        return
    if unproven:
        _watchers_held(ctx, ticket, requester, candidates, unproven)
        return
    removed = repo.removed_watchers(session, ticket.id)
    if held := [a for a in candidates if a in removed]:
        reason = "removed by an agent; only an agent's #cc +address adds them back"
        _watchers_held(ctx, ticket, requester, held, reason)
        candidates = [a for a in candidates if a not in removed]
    room = MAX_WATCHERS - len(present)
    added = repo.add_watchers(session, ticket.id, candidates[: max(room, 0)], requester, now)
    if added:
        repo.add_event(session, ticket, "watchers", now, actor=requester, added=added, removed=[])


def _candidates(ctx: Context, requester: str) -> list[str]:
    """The mail's To and CC addresses that may watch: not the requester, not the desk's."""
    own = ctx.app.config.own_addresses
    return [
        a
        for a in dict.fromkeys((*ctx.msg.to, *ctx.msg.cc))
        if a != requester
        and f"{a.partition('@')[0].partition('+')[0]}@{a.partition('@')[2]}" not in own
        and ctx.app.config.agent(a) is None
    ]


def _watchers_held(
    ctx: Context, ticket: Ticket, requester: str, addresses: list[str], reason: str
) -> None:
    repo.add_event(
        ctx.session,
        ticket,
        "watchers_not_added",
        ctx.now,
        actor=requester,
        addresses=addresses,
        reason=reason,
    )
    log.info(
        "%s: CCs %s not added as watchers: %s",
        ctx.app.ref(ticket.id),
        ", ".join(addresses),
        reason,
    )
