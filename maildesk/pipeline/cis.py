"""Which configuration items a new ticket is about: recognised in its mail (a pure look-up,
maildesk.routing.cis) before it is routed, then linked once it exists, with a catalog
request's CI field (a field named `ci`, or of kind `ci`) linked as the request's."""

from __future__ import annotations

from maildesk.pipeline.context import Context
from maildesk.routing.catalog import CatalogItem
from maildesk.routing.rules import RoutingDecision
from maildesk.store.models import Ticket
from maildesk.tickets import cis


def recognised(ctx: Context) -> tuple[str, ...]:
    """The CIs the mail names in its subject or body, by name."""
    return ctx.app.config.inventory.recognise(ctx.msg.subject, ctx.msg.body_text or "")


def requested(ctx: Context, ticket: Ticket, item: CatalogItem | None) -> tuple[str, ...]:
    """The CIs a catalog request's CI fields name (names or aliases, space-separated)."""
    if item is None:
        return ()
    inventory = ctx.app.config.inventory
    values = dict(ticket.fields or {})
    wanted = [f.name for f in item.fields if f.name == "ci" or f.kind == "ci"]
    words = (w for name in wanted for w in str(values.get(name) or "").replace(",", " ").split())
    return tuple(dict.fromkeys(ci.name for ci in map(inventory.find, words) if ci is not None))


def link_new(
    ctx: Context, ticket: Ticket, decision: RoutingDecision, item: CatalogItem | None
) -> None:
    """Link the new ticket to its request's CIs, then to the ones its mail named."""
    app, session, now = ctx.app, ctx.session, ctx.now
    cis.link(app, session, ticket, requested(ctx, ticket, item), "request", now)
    cis.link(app, session, ticket, decision.cis, "recognised", now)
