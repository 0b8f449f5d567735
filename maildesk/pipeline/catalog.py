"""Service-catalog mail from requesters: the catalog asked for by subject (`catalog` or `help`
alone: mailed back, no ticket), a new request (`Request: <item>` or a rule's `set.catalog`)
with its `Field: value` lines, and the requester's reply that fills in what was missing.

A request lacking required fields waits as `pending` and its requester gets one mail naming
what is missing; once complete it goes to its approvers (tickets.approvals) or, with none,
stays in its queue as any new ticket does.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from maildesk.notify import approval_notices as notify
from maildesk.pipeline.cis import requested as requested_cis
from maildesk.pipeline.context import Context
from maildesk.pipeline.inbound import message_event, store_message
from maildesk.pipeline.outcome import Outcome
from maildesk.routing.catalog import (
    CatalogItem,
    field_problems,
    find_item,
    is_catalog_request,
    normalise_fields,
    read_fields,
    requested_item,
)
from maildesk.routing.guard import may_auto_reply
from maildesk.routing.rules import RoutingDecision
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.terms import RawStatus, Status
from maildesk.tickets import approvals, cis, lifecycle, sla
from maildesk.tickets.lifecycle import Actor

log = logging.getLogger(__name__)


def catalog_mail(ctx: Context) -> Outcome | None:
    """Subject `catalog` / `help` alone (with a catalog configured): the catalog mailed back."""
    msg, raw = ctx.msg, ctx.raw
    if not ctx.app.config.catalog or not is_catalog_request(msg.subject):
        return None
    verdict = may_auto_reply(msg, ctx.app.config.own_addresses)
    if not verdict.allowed:
        raw.status = RawStatus.IGNORED
        raw.reason = f"catalog request not answered: automatic mail ({verdict.reason})"
        return Outcome(raw.id, "ignored", reason=raw.reason)
    why_not = notify.catalog_list(ctx.app, ctx.session, ctx.requester, ctx.now)
    raw.reason = (
        f"catalog request not answered: {why_not}"
        if why_not
        else f"catalog mailed to {ctx.requester}"
    )
    log.info("%s (raw %s)", raw.reason, raw.id)
    return Outcome(raw.id, "catalog", reason=raw.reason)


def requested(ctx: Context, decision: RoutingDecision) -> CatalogItem | None:
    """The catalog item a new mail requests: a rule's `set.catalog`, else its subject's."""
    config = ctx.app.config
    if decision.catalog:
        return config.catalog_item(decision.catalog)
    wanted = requested_item(ctx.msg.subject)
    return find_item(config.catalog, wanted) if wanted else None


def routed(ctx: Context, item: CatalogItem, decision: RoutingDecision) -> RoutingDecision:
    """The item sets queue, priority and type; an incomplete request gets no acknowledgement
    (its one mail names what is missing)."""
    values, _ = read_fields(ctx.msg.body_text or "", item)
    complete = not field_problems(item, values)
    return replace(
        decision,
        queue=item.queue or decision.queue,
        priority=item.priority or decision.priority,
        type=item.type,
        catalog=item.name,
        acknowledge=decision.acknowledge if complete else False,
    )


def start_request(ctx: Context, ticket: Ticket, item: CatalogItem) -> None:
    """A new ticket for the item: its fields stored (before anyone is told of it)."""
    values, _ = read_fields(ctx.msg.body_text or "", item)
    ticket.catalog_item, ticket.fields = item.name, normalise_fields(item, values)
    if item.sla_policy:
        sla.policy_chosen(ctx.app, ticket, item.sla_policy, ctx.now)
    repo.add_event(
        ctx.session,
        ticket,
        "catalog_request",
        ctx.now,
        item=item.name,
        fields=dict(ticket.fields),
        missing=field_problems(item, values),
    )


def proceed_new(ctx: Context, ticket: Ticket, item: CatalogItem) -> None:
    """Once announced: pending for what it lacks, awaiting approval, or left open."""
    _proceed(ctx, ticket, item, field_problems(item, dict(ticket.fields or {})))


def _proceed(ctx: Context, ticket: Ticket, item: CatalogItem, problems: dict[str, str]) -> None:
    app, session, now = ctx.app, ctx.session, ctx.now
    if problems:
        lifecycle.set_status(
            app,
            session,
            ticket,
            Status.PENDING,
            Actor("system", "mail"),
            now,
            reason=f"catalog request lacks: {', '.join(problems)}",
        )
        notify.request_incomplete(app, session, ticket, item, problems, now)
    elif item.needs_approval:
        approvals.request_approval(app, session, ticket, item, now)
    elif ticket.status == Status.PENDING:
        lifecycle.set_status(
            app, session, ticket, Status.OPEN, Actor("system", "mail"), now, reason="complete"
        )


def completing_reply(ctx: Context) -> Outcome | None:
    """The requester's reply to a catalog request still lacking fields: its `Field: value`
    lines fill them in (a CI field links its CIs); complete, the request proceeds; else they
    hear what is still missing."""
    on, msg = ctx.on, ctx.msg
    ticket = on.ticket
    item = ctx.app.config.catalog_item(ticket.catalog_item)
    if on.sender.kind != "requester" or item is None or ticket.status != Status.PENDING:
        return None
    have = dict(ticket.fields or {})
    if not field_problems(item, have):
        return None
    text = ctx.new_text or msg.body_text
    found, _ = read_fields(text, item)
    if not found:
        return None
    inbound = store_message(ctx, ticket, text=text)
    message_event(ctx, ticket, "requester")
    merged = normalise_fields(item, {**have, **found})
    ticket.fields, ticket.updated_at = merged, ctx.now
    problems = field_problems(item, merged)
    repo.add_event(ctx.session, ticket, "fields_set", ctx.now, fields=found, missing=problems)
    cis.link(ctx.app, ctx.session, ticket, requested_cis(ctx, ticket, item), "request", ctx.now)
    _proceed(ctx, ticket, item, problems)
    ref = ctx.app.ref(ticket.id)
    ctx.raw.ticket_id = ticket.id
    log.info("fields of %s set from %s (%s)", ref, inbound.message_id, ", ".join(found))
    return Outcome(ctx.raw.id, "appended", ticket.id, ref, f"fields set: {', '.join(found)}")
