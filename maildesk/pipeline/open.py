"""A new ticket from a message: held if its sender floods the desk, dropped if a rule says
so, otherwise routed, stored with its CCs as watchers, and announced (requester and agents).
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from maildesk import logctx
from maildesk.learn.predict import Suggestion, event_data, suggest
from maildesk.notify import agent_notices, notices
from maildesk.pipeline import catalog, cis
from maildesk.pipeline.behalf import Behalf, opened_for
from maildesk.pipeline.context import Context
from maildesk.pipeline.inbound import store_message
from maildesk.pipeline.outcome import Outcome
from maildesk.pipeline.watchers import add_cc_watchers
from maildesk.routing.rules import STRATEGIES, RoutingDecision, decision_json, route
from maildesk.routing.thread import strip_ref_tag
from maildesk.store import repo
from maildesk.store.models import Ticket
from maildesk.terms import RawStatus, Status
from maildesk.tickets import sla

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


def new_ticket(
    ctx: Context,
    *,
    related: tuple[Ticket, str] | None = None,
    follow_up: bool = False,
    behalf: Behalf | None = None,
) -> Outcome:
    """Open a ticket for the message, unless its sender floods the desk or a rule drops it.

    `related`: a ticket the mail names but does not go on, and why; with `follow_up` the mail
    answers that ticket after its reopen window, and the new ticket is its follow-up.
    `behalf`: a proven agent opens it for the customer `ctx` names (pipeline.behalf).
    """
    held = _flood(ctx)
    if held is not None:
        return held
    config, raw, msg = ctx.app.config, ctx.raw, ctx.msg
    decision = route(
        msg,
        config.rules,
        config.default_queue.name,
        config.route_context(ctx.now, raw.envelope_to, cis.recognised(ctx)),
        matrix=config.priority_matrix,
    )
    if decision.dropped_by is not None:
        return _dropped(ctx, decision)
    decision, suggestions = suggest(ctx.app, ctx.session, msg, decision, ctx.now)
    item = catalog.requested(ctx, decision)
    if item is not None:
        decision = catalog.routed(ctx, item, decision)
    assignee = _assignee(ctx, decision)
    parent = related[0] if related and follow_up else None
    ticket = _create(ctx, decision, assignee, parent)
    ref = ctx.app.ref(ticket.id)
    logctx.set_ticket(ref)
    inbound = store_message(ctx, ticket)
    if item is not None:
        catalog.start_request(ctx, ticket, item)
    opener = behalf.agent.email if behalf is not None else ctx.requester
    _created_events(ctx, ticket, ref, decision, assignee, opener, suggestions)
    cis.link_new(ctx, ticket, decision, item)
    add_cc_watchers(ctx, ticket, ctx.requester)
    if related is not None:
        _link(ctx, ticket, ref, related, follow_up)
    if behalf is not None:
        opened_for(ctx, ticket, inbound, behalf)
    if behalf is not None and behalf.error:
        agent_notices.requester_not_set(
            ctx.app, ctx.session, ticket, inbound, behalf.agent, behalf.error, ctx.now
        )
    else:
        told = behalf.original if behalf is not None else msg  # the agent's own mail
        notices.ticket_created(ctx.app, ctx.session, ticket, inbound, told, decision, ctx.now)
    if item is not None:
        catalog.proceed_new(ctx, ticket, item)
    raw.ticket_id = ticket.id
    log.info("created %s from %s (raw %s) in queue %s", ref, msg.message_id, raw.id, ticket.queue)
    status = "created" if related is None else "followup" if follow_up else "linked"
    reason = related[1] if related else ""
    return Outcome(raw.id, status, ticket.id, ref, reason, rules=tuple(decision.matched))


def _flood(ctx: Context) -> Outcome | None:
    """Held, not ticketed: the sender opened too many tickets within the last hour."""
    limit = ctx.app.config.notify.new_tickets_per_hour
    if not limit or repo.tickets_opened_since(ctx.session, ctx.contact, ctx.now - HOUR) < limit:
        return None
    raw, requester = ctx.raw, ctx.requester
    raw.status = RawStatus.FLOOD
    raw.reason = (
        f"{requester} opened {limit} tickets within the last hour "
        "([notify] new_tickets_per_hour); held, not ticketed"
    )
    log.warning("flood from %s: %s (raw %s) held", requester, ctx.msg.message_id, raw.id)
    return Outcome(raw.id, "flood", reason=raw.reason)


def _dropped(ctx: Context, decision: RoutingDecision) -> Outcome:
    """A rule dropped the message (spam): kept, no ticket."""
    raw = ctx.raw
    raw.status = RawStatus.SPAM
    raw.reason = f"dropped by rule {decision.dropped_by!r} (matched: {', '.join(decision.matched)})"
    log.info("dropped %s (raw %s): %s", ctx.msg.message_id, raw.id, raw.reason)
    return Outcome(raw.id, "dropped", reason=raw.reason, rules=tuple(decision.matched))


def _assignee(ctx: Context, decision: RoutingDecision) -> str | None:
    """The routed assignee; a strategy (round robin, least open) picks one of the queue's."""
    assignee = decision.assignee
    if assignee in STRATEGIES:
        candidates = [a.email for a in ctx.app.config.agents_of(decision.queue)]
        assignee = repo.pick_agent(ctx.session, assignee, candidates)
    return assignee


def _create(
    ctx: Context, decision: RoutingDecision, assignee: str | None, parent: Ticket | None
) -> Ticket:
    """The ticket row (and the requester's contact, if new), its SLA clocks started."""
    msg, now = ctx.msg, ctx.now
    contact = ctx.contact or repo.new_contact(ctx.session, ctx.requester, msg.from_name, now)
    ticket = Ticket(
        requester=contact,
        subject=strip_ref_tag(msg.subject, ctx.app.config.desk.ref_prefix) or "(no subject)",
        status=Status.NEW,
        priority=decision.priority,
        queue=decision.queue,
        type=decision.type,
        category=decision.category,
        assignee=assignee,
        tags=list(decision.tags),
        impact=decision.impact,
        urgency=decision.urgency,
        organisation=decision.organisation,
        reply_token=secrets.token_hex(10),  # legacy column; tokens are HMACs now
        created_at=now,
        updated_at=now,
        parent_id=parent.id if parent is not None else None,
        service=decision.service,
        ci_links=[],  # a new ticket has none: linking its CIs need not load them
    )
    sla.started(ctx.app, ticket, decision.matched, now, decision.services)
    ctx.session.add(ticket)
    ctx.raw.ticket = ticket  # its ticket_id goes with the flush that writes its claim
    ctx.session.flush()
    return ticket


def _created_events(
    ctx: Context,
    ticket: Ticket,
    ref: str,
    decision: RoutingDecision,
    assignee: str | None,
    opener: str,
    suggestions: list[Suggestion],
) -> None:
    """The ticket's first events: created (by whom, from which mail) and routed (why)."""
    session, now = ctx.session, ctx.now
    repo.add_event(
        session, ticket, "created", now, actor=opener, message_id=ctx.msg.message_id, ref=ref
    )
    routed = decision_json(decision, assignee) | event_data(suggestions)
    repo.add_event(session, ticket, "routed", now, **routed)


def _link(
    ctx: Context, ticket: Ticket, ref: str, related: tuple[Ticket, str], follow_up: bool
) -> None:
    """Link the new ticket and the one the mail named: a follow-up, or related."""
    session, now = ctx.session, ctx.now
    old, reason = related
    mine, theirs = ("follow-up-of", "followed-up-by") if follow_up else ("mentions", "related")
    old_ref = ctx.app.ref(old.id)
    repo.add_event(session, ticket, "linked", now, relation=mine, ticket=old_ref, reason=reason)
    repo.add_event(session, old, "linked", now, relation=theirs, ticket=ref, reason=reason)
    if not follow_up:
        repo.add_link(session, ticket.id, old.id, "related", "related", now)
