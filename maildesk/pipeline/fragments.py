"""Fragments of a message sent in parts (message/partial): each is stored raw as it arrives
(as all mail is) and waits, set aside with a reason that says what it waits for, without
opening a ticket. The fragment that completes its set has the message reassembled
(routing.partial) and stored as a new raw message, pending, so it takes the one pipeline
path like any other mail; the fragments are marked as reassembled into it. A set that
cannot be reassembled (see routing.partial: too old, too many fragments, too big,
contradictory) has each of its fragments processed as ordinary mail, kept as an
attachment. jobs.release_stale_fragments puts fragments that waited PARTIAL_WAIT back in
line for that.

The set's fragments are found by the words that name the set in their stored reason
(Fragment.marker) and checked against their own header block; on PostgreSQL a lock on
the set keeps two daemons from deciding about one set at once.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from maildesk.pipeline.context import Context
from maildesk.pipeline.outcome import Outcome
from maildesk.routing.partial import (
    PARTIAL_WAIT,
    Fragment,
    Plan,
    Sibling,
    as_attachment,
    plan,
    read_fragment,
    reassemble,
)
from maildesk.store import repo
from maildesk.terms import RawStatus

log = logging.getLogger(__name__)

REASSEMBLED = "reassembled"  # the origin of a message reassembled from its fragments
_STATES = {
    RawStatus.PARTIAL: "waiting",
    RawStatus.REASSEMBLED: "reassembled",
    RawStatus.PROCESSED: "released",
}


def fragment(ctx: Context) -> Outcome | Context | None:
    """A message/partial fragment: wait for its set, reassemble it, or pass it on as
    ordinary mail with the fragment as an attachment (None: not a fragment)."""
    if ctx.msg.content_type != "message/partial":
        return None  # the parser read the same Content-Type: most mail stops here
    this = read_fragment(ctx.raw_bytes)
    if this is None:
        return None
    if ctx.raw.origin == REASSEMBLED and not this.problem:
        # One level only: a message of nested single fragments would otherwise be stored
        # again at every level, each copy nearly as big as the last.
        this = replace(this, problem="it was itself reassembled from fragments")
    if this.problem:
        return _ordinary(ctx, this, Plan("ordinary", this.problem))
    repo.hold(ctx.session, f"partial {this.marker}")
    stored = _stored(ctx, this)
    siblings = [s for s, _ in stored.values()]
    raw = ctx.raw
    decided = plan(
        Sibling(raw.id, this, raw.size, "waiting"),
        siblings,
        expired=ctx.now - raw.received_at >= PARTIAL_WAIT,
        max_size=ctx.app.config.smtp.max_message_size,
    )
    if decided.action == "wait":
        return _wait(ctx, this, siblings, decided)
    if decided.action == "reassemble":
        return _reassemble(ctx, this, stored, decided)
    if decided.action == "duplicate":
        raw.status, raw.reason = RawStatus.DUPLICATE, this.describe(decided.why)
        log.info("duplicate fragment %s (raw %s): %s", ctx.msg.message_id, raw.id, raw.reason)
        return Outcome(raw.id, "duplicate", reason=raw.reason)
    return _ordinary(ctx, this, decided)


Stored = dict[int, tuple[Sibling, repo.StoredFragment]]


def _stored(ctx: Context, this: Fragment) -> Stored:
    """The set's other stored fragments (received within twice PARTIAL_WAIT), by raw id."""
    rows = repo.fragments_named(
        ctx.session, this.marker, ctx.now - 2 * PARTIAL_WAIT, exclude=ctx.raw.id
    )
    found: Stored = {}
    for row in rows:
        other = read_fragment(row.head)
        if other is None or (other.set_id, other.sender) != (this.set_id, this.sender):
            continue  # the reason named the set, but the bytes say otherwise
        state = _STATES[RawStatus(row.status)]
        found[row.raw_id] = (Sibling(row.raw_id, other, row.size, state), row)
    return found


def _wait(ctx: Context, this: Fragment, siblings: list[Sibling], decided: Plan) -> Outcome:
    """Set aside until the rest arrives; every waiting fragment of the set says what for."""
    raw = ctx.raw
    raw.status, raw.reason = RawStatus.PARTIAL, this.describe(decided.why)
    waiting = {s.raw_id: s.fragment.describe(decided.why) for s in siblings if s.state == "waiting"}
    repo.mark_fragments(ctx.session, waiting)
    log.info("fragment %s (raw %s) waits: %s", ctx.msg.message_id, raw.id, raw.reason)
    return Outcome(raw.id, "partial", reason=raw.reason)


def _reassemble(ctx: Context, this: Fragment, stored: Stored, decided: Plan) -> Outcome:
    """The set is complete: the message it makes is stored as new raw mail, pending (the
    envelope is fragment 1's), and the fragments are marked as reassembled into it."""
    session, raw = ctx.session, ctx.raw
    others = [i for i in decided.parts if i != raw.id]
    data = repo.fragment_bytes(session, others) | {raw.id: ctx.raw_bytes}
    whole = reassemble([data[i] for i in decided.parts])
    first = decided.parts[0]
    sender, recipients = (
        (raw.envelope_from, raw.envelope_to)
        if first == raw.id
        else (stored[first][1].envelope_from, stored[first][1].envelope_to)
    )
    new = repo.save_raw(
        session,
        whole,
        origin=REASSEMBLED,
        now=ctx.now,
        envelope_from=sender,
        envelope_to=recipients,
    )
    done = f"reassembled as raw {new.id} (fragments: raws {', '.join(map(str, decided.parts))})"
    raw.status, raw.reason = RawStatus.REASSEMBLED, this.describe(done)
    reasons = {i: stored[i][0].fragment.describe(done) for i in others}
    repo.mark_fragments(session, reasons, RawStatus.REASSEMBLED)
    log.info("%s (raw %s) completes its set: %s", ctx.msg.message_id, raw.id, raw.reason)
    return Outcome(raw.id, "reassembled", reason=raw.reason, then=new.id)


def _ordinary(ctx: Context, this: Fragment, decided: Plan) -> Context:
    """Not reassembled: on as ordinary mail, the fragment kept as an attachment; the set's
    waiting fragments go back in line to follow it."""
    raw = ctx.raw
    what = f"not reassembled ({decided.why}); processed as ordinary mail, the fragment attached"
    raw.reason = f"message/partial {what}" if this.problem else this.describe(what)
    repo.requeue_fragments(ctx.session, decided.release)
    log.info("fragment %s (raw %s): %s", ctx.msg.message_id, raw.id, raw.reason)
    return replace(ctx, msg=as_attachment(ctx.msg, ctx.raw_bytes, this, decided.why))
