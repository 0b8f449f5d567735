"""Stable JSON shapes of contacts, outbox entries and quarantined messages, and the ticket
shapes of maildesk.store.views (shared with the HTTP API); the text of `ticket show`.

These field names are a contract (SPEC): add fields freely, never rename or remove one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from maildesk.parse.parser import summarise
from maildesk.routing.organisations import Organisation
from maildesk.store.broadcasts import BROADCAST_MAILS
from maildesk.store.models import Contact, OutboxEntry, RawMessage

# The ticket shapes live in the store, shared with the HTTP API; named here for the CLI.
from maildesk.store.views import message_json as message_json
from maildesk.store.views import sla_json as sla_json
from maildesk.store.views import ticket_detail_json as ticket_detail_json
from maildesk.store.views import ticket_json as ticket_json
from maildesk.terms import OutboxStatus
from maildesk.timefmt import iso, local_text


def contact_json(
    contact: Contact, addresses: Sequence[str], org: Organisation | None, tickets: int
) -> dict[str, Any]:
    """A contact: its addresses (its own first), organisation and number of tickets."""
    return {
        "id": contact.id,
        "email": contact.email,
        "name": contact.name,
        "addresses": list(addresses),
        "organisation": org.name if org else None,
        "vip": bool(org and org.vip),
        "tickets": tickets,
        "bouncing": contact.bounced_at is not None,
        "created_at": iso(contact.created_at),
    }


def outbox_json(entry: OutboxEntry, prefix: str) -> dict[str, Any]:
    return {
        "id": entry.id,
        "ticket": f"{prefix}-{entry.ticket_id}" if entry.ticket_id else None,
        "kind": entry.kind,
        "status": entry.status,
        "to": list(entry.recipients),
        "subject": entry.subject,
        "message_id": entry.message_id,
        "attempts": entry.attempts,
        "next_attempt_at": iso(entry.next_attempt_at)
        if entry.status == OutboxStatus.QUEUED
        else None,
        "last_error": entry.last_error,
        "created_at": iso(entry.created_at),
        "sent_at": iso(entry.sent_at),
    }


def quarantine_json(raw: RawMessage) -> dict[str, Any]:
    """A set-aside message as `maildesk quarantine --json` shows it.

    From, Subject and Message-ID come from the header block alone, so a message whose body
    could not be parsed (the usual reason it is here) still says who sent it and what about.
    """
    summary = summarise(raw.raw) if raw.raw else None
    return {
        "id": raw.id,
        "status": raw.status,
        "received_at": iso(raw.received_at),
        "processed_at": iso(raw.processed_at),
        "origin": raw.origin,
        "size": raw.size,
        "sha256": raw.sha256,
        "envelope_from": raw.envelope_from,
        "envelope_to": list(raw.envelope_to),
        "from": (summary.from_addr or None) if summary else None,
        "subject": (summary.subject or None) if summary else None,
        "message_id": (summary.message_id or None) if summary else None,
        "reason": raw.reason,
    }


def _change(data: dict[str, Any]) -> str:
    return f"{data.get('from') or 'none'} -> {data.get('to') or 'none'}"


def _plus_minus(data: dict[str, Any]) -> str:
    return " ".join(
        [*(f"+{x}" for x in data.get("added", [])), *(f"-{x}" for x in data.get("removed", []))]
    )


# How `ticket show` words each event kind; unknown kinds fall back to their JSON data.
_EVENT_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "created": lambda d: "opened the ticket",
    "routed": lambda d: (
        f"routed to {d.get('queue')}, {d.get('priority')}, {d.get('type')}"
        + (f" by {', '.join(d['matched'])}" if d.get("matched") else "")
        + "".join(
            f"; {s['label']} {s['value']} {'by' if s['applied'] else 'suggested by'} model"
            f" v{s['version']} ({s['confidence']:.2f})"
            for s in d.get("suggestions", [])
        )
    ),
    "message": lambda d: (
        f"wrote ({d.get('sender', 'mail')}, threaded by {d.get('threaded_by')})"
        + (f"; proof: {d['proof']}" if d.get("proof") else "")
        + (f"; automatic: {d['automatic']}" if d.get("automatic") else "")
    ),
    "agent_reply": lambda d: "replied to the requester",
    "note": lambda d: "added an internal note",
    "commands": lambda d: "sent commands",
    "commands_rejected": lambda d: "commands rejected, nothing changed: " + "; ".join(d["errors"]),
    "status": lambda d: f"status {_change(d)}",
    "reopened": lambda d: f"reopened ({_change(d)})",
    "priority": lambda d: f"priority {_change(d)}",
    "queue": lambda d: f"queue {_change(d)}",
    "type": lambda d: f"type {_change(d)}",
    "category": lambda d: f"category {_change(d)}",
    "assigned": lambda d: (
        f"assignee {_change(d)}" + (f" ({d['reason']})" if d.get("reason") else "")
    ),
    "tags": lambda d: f"tags {_plus_minus(d)}",
    "watchers": lambda d: f"watchers {_plus_minus(d)}",
    "linked": lambda d: (
        f"linked {d.get('ticket')} ({d.get('relation')})"
        + (f": {d['reason']}" if d.get("reason") else "")
    ),
    "unlinked": lambda d: f"unlinked {d.get('ticket')}",
    "merged": lambda d: (
        f"merged into {d['into']}" if d.get("into") else f"merged {d.get('source')} in"
    ),
    "alert": lambda d: (
        f"alert {d.get('key')} {d.get('state')} {d.get('severity')} (count {d.get('count')})"
    ),
    "recovered": lambda d: f"recovered: {d.get('key')} (after {d.get('count')} alerts)",
    "acknowledged": lambda d: f"acknowledged at the monitor: {d.get('key')}",
    "flapping": lambda d: f"flapping ({d.get('changes')} state changes): notices held",
    "settled": lambda d: "no longer flapping",
    "severity": lambda d: f"severity {_change(d)}",
    "known_error": lambda d: f"known error: {(d.get('change') or {}).get('to') or 'none'}",
    "problem_detected": lambda d: f"problem candidate for {', '.join(d.get('incidents', []))}",
    "sender_unverified": lambda d: f"NOT VERIFIED: {d.get('reason')}",
    "notification_suppressed": lambda d: f"no {d.get('notification')}: {d.get('reason')}",
    "bounce": lambda d: (
        f"{'hard' if d.get('permanent') else 'soft'} bounce for "
        f"{', '.join(d.get('recipients', []))}: {d.get('diagnostic', '')}"
    ),
    "ci_linked": lambda d: f"linked to CI {d['ci']} ({d['source']})",
    "ci_unlinked": lambda d: f"unlinked from CI {d['ci']}",
    "broadcast": lambda d: (
        f"broadcast to {d['recipients']} ({', '.join(d['services'])}): {d['text']}"
    ),
    "broadcast_all_clear": lambda d: f"all-clear to {d['recipients']} ({', '.join(d['services'])})",
    "receipt": lambda d: (
        f"read receipt: {d['disposition']}"
        + (" (sent automatically)" if d.get("automatic") else "")
        + (f" for {d['original']}" if d.get("original") else "")
    ),
}


def event_line(event: dict[str, Any], zone: str | None = None) -> str:
    """One event as a line of `maildesk ticket show`: when (in `zone`, the desk's), who,
    how, what."""
    describe = _EVENT_TEXT.get(event["kind"])
    try:
        what = describe(event["data"]) if describe else None
    except (KeyError, TypeError):  # an older event without the fields
        what = None
    if what is None:
        what = f"{event['kind']} {json.dumps(event['data'], ensure_ascii=False)}"
    when = _when(event["at"], zone) if zone else (event["at"] or "")[:19].replace("T", " ")
    return f"{when}  {event['actor']} ({event['via']}): {what}"


def _when(value: str | None, zone: str) -> str:
    """An ISO instant of the JSON shapes as the desk's local time; '-' for none."""
    if not value:
        return "-"
    return local_text(value, zone)


def show_text(detail: dict[str, Any], zone: str, sla_state: str | None) -> Iterator[str]:
    """`maildesk ticket show`: the ticket's fields and SLA (policy, `sla_state` as `maildesk
    sla` words it, due times), its conversation (a fan-out of agent notices as one line),
    then its events; times in the desk's timezone `zone`."""
    yield f"{detail['ref']}  {detail['subject']}"
    yield (
        f"status {detail['status']}  priority {detail['priority']}  queue {detail['queue']}  "
        f"type {detail['type']}  assignee {detail['assignee'] or '-'}  "
        f"tags {', '.join(detail['tags']) or '-'}"
    )
    yield f"requester {detail['requester']}  created {_when(detail['created_at'], zone)} ({zone})"
    if detail["impact"] or detail["urgency"] or detail["organisation"]:
        yield (
            f"impact {detail['impact'] or '-'}  urgency {detail['urgency'] or '-'}  "
            f"organisation {detail['organisation'] or '-'}"
        )
    if detail["sla_policy"]:
        yield _sla_line(detail, zone, sla_state)
    if detail["cis"] or detail["services"]:
        cis, services = ", ".join(detail["cis"]), ", ".join(detail["services"])
        yield f"cis {cis or '-'}  services {services or '-'}"
    if detail["watchers"]:
        yield f"watchers {', '.join(detail['watchers'])}"
    for link in detail["links"]:
        yield f"linked {link['ticket']} ({link['relation']})"
    if detail["alert"]:
        a = detail["alert"]
        yield f"alert {a['monitor']} {a['key']} {a['state']} {a['severity']} count {a['count']}"
    if detail["known_error"]:
        yield f"known error: {detail['known_error']}"
    if detail.get("catalog_item"):
        yield f"catalog item {detail['catalog_item']}"
        yield from (f"  {name}: {value}" for name, value in detail["fields"].items())
    for a in detail.get("approvals", ()):
        yield f"approval {a['approver']}: {a['decision']} {a['comment'] or ''}".rstrip()
    if detail["merged_into"]:
        yield f"merged into {detail['merged_into']}: its history is there now"
    yield from _conversation(detail, zone)
    yield "\nevents:"
    for e in detail["events"]:
        yield f"  {event_line(e, zone)}"


def _sla_line(detail: dict[str, Any], zone: str, state: str | None) -> str:
    """The SLA policy, its standing and both targets, e.g. `sla standard: at risk; first
    response due Tue 1 Dec 19:10 (answered Tue 1 Dec 18:02); resolution due ...`."""
    answered = detail["first_response_at"]
    response = f"first response due {_when(detail['first_response_due'], zone)}" + (
        f" (answered {_when(answered, zone)})" if answered else ""
    )
    standing = f": {state}" if state else ""
    resolution = f"resolution due {_when(detail['resolution_due'], zone)}"
    return f"sla {detail['sla_policy']}{standing}; {response}; {resolution}"


def _is_notice(m: dict[str, Any]) -> bool:
    """An agent notice the desk sent (one copy per agent, each with its own reply token), or
    a broadcast or all-clear (one copy per subscriber; its event line holds the text)."""
    copies = (m["internal"] and m["kind"] != "note") or m["kind"] in BROADCAST_MAILS
    return bool(m["direction"] == "out" and copies)


def _conversation(detail: dict[str, Any], zone: str) -> Iterator[str]:
    """The messages in order: each in full, except the agents' copies of one notice, which
    are one line naming who was told; a mail whose claim to be an agent's was not proved
    says so in its heading."""
    unproved = {
        e["data"].get("message_id"): e["data"].get("reason")
        for e in detail["events"]
        if e["kind"] == "sender_unverified"
    }
    messages = detail["messages"]
    i = 0
    while i < len(messages):
        m = messages[i]
        if _is_notice(m):
            same = [m]
            while i + len(same) < len(messages) and _same_notice(m, messages[i + len(same)]):
                same.append(messages[i + len(same)])
            told = ", ".join(a for n in same for a in [*n["to"], *n["cc"]])
            when = _when(m["created_at"], zone)
            yield f"\n--- out {m['kind']} {when}: notified {told} ({m['subject']})"
            i += len(same)
            continue
        yield from _message_text(m, zone, unproved.get(m["message_id"]))
        i += 1


def _same_notice(first: dict[str, Any], other: dict[str, Any]) -> bool:
    return (
        _is_notice(other)
        and other["kind"] == first["kind"]
        and other["subject"] == first["subject"]
        and other["created_at"] == first["created_at"]
    )


def _message_text(m: dict[str, Any], zone: str, unproved: str | None) -> Iterator[str]:
    flag = " (internal)" if m["internal"] else ""
    to = ", ".join([*m["to"], *m["cc"]])
    when = _when(m["created_at"], zone)
    yield f"\n--- {m['direction']} {m['kind']} {when} {m['from']} -> {to}{flag}"
    if unproved:
        yield f"NOT VERIFIED as an agent's mail (kept as the requester side's): {unproved}"
    yield f"Subject: {m['subject']}"
    yield m["body_text"].rstrip()
    for a in m["attachments"]:
        yield f"[attachment {a['filename']} {a['content_type']} {a['size']} bytes]"
