"""Contacts: list them, show one with its addresses and tickets, merge two into one.

`maildesk contact merge KEEP OTHER` makes OTHER (and every address merged into it) an
address of KEEP: mail from it is KEEP's from then on, and OTHER's tickets get KEEP as
their requester, each with a `requester` event. Merging twice changes nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from maildesk.app import App
from maildesk.cli import views
from maildesk.cli.common import EX_OK, Parsers, operator, print_json, print_table, with_session
from maildesk.config.reader import EMAIL
from maildesk.errors import MaildeskError, NotFound
from maildesk.routing.organisations import Organisation
from maildesk.store import repo
from maildesk.store.models import Contact


def _organisation(app: App, addresses: Sequence[str]) -> Organisation | None:
    """The organisation of a contact: that of its first address that has one."""
    found = (app.config.organisation_of(a) for a in addresses)
    return next((o for o in found if o is not None), None)


def cmd_contacts(args: argparse.Namespace) -> int:
    """Every contact with its addresses, organisation and number of tickets."""

    def load(app: App, session: Session) -> list[dict[str, Any]]:
        return [
            views.contact_json(c, addresses, _organisation(app, addresses), count)
            for c, addresses, count in repo.list_contacts(session)
        ]

    rows = with_session(args, load, readonly=True)
    if args.json:
        print_json(rows)
        return EX_OK
    table = Table("email", "name", "organisation", "other addresses", "tickets")
    for r in rows:
        org = f"{r['organisation']}{' (VIP)' if r['vip'] else ''}" if r["organisation"] else "-"
        others = ", ".join(r["addresses"][1:]) or "-"
        table.add_row(r["email"], r["name"], org, others, str(r["tickets"]))
    print_table(table)
    return EX_OK


def _contact(session: Session, address: str) -> Contact:
    found = repo.contact(session, address.strip().lower())
    if found is None:
        raise NotFound(f"no contact has the address {address}")
    return found


def cmd_contact_show(args: argparse.Namespace) -> int:
    """One contact (found by any of its addresses): addresses, organisation, tickets."""

    def load(app: App, session: Session) -> dict[str, Any]:
        contact = _contact(session, args.address)
        addresses = repo.contact_addresses(session, contact)
        tickets = repo.contact_tickets(session, contact)
        org = _organisation(app, addresses)
        prefix = app.config.desk.ref_prefix
        return {
            **views.contact_json(contact, addresses, org, len(tickets)),
            "organisation_notes": org.notes if org else "",
            "tickets": [views.ticket_json(t, prefix) for t in tickets],
        }

    detail = with_session(args, load, readonly=True)
    if args.json:
        print_json(detail)
        return EX_OK
    print(f"{detail['name'] or '-'} <{detail['email']}>")
    print(f"addresses {', '.join(detail['addresses'])}")
    if detail["organisation"]:
        vip = " (VIP)" if detail["vip"] else ""
        notes = f": {detail['organisation_notes']}" if detail["organisation_notes"] else ""
        print(f"organisation {detail['organisation']}{vip}{notes}")
    for t in detail["tickets"]:
        print(f"  {t['ref']}  {t['status']}  {t['priority']}  {t['queue']}  {t['subject']}")
    if not detail["tickets"]:
        print("no tickets")
    return EX_OK


def cmd_contact_merge(args: argparse.Namespace) -> int:
    """Merge OTHER into KEEP: one person, several addresses."""
    other_address = args.other.strip().lower()
    if not EMAIL.match(other_address):
        raise MaildeskError(f"{args.other!r} is not an email address")

    def act(app: App, session: Session) -> list[str]:
        keep = _contact(session, args.keep)
        now, by = app.now(), f"cli:{operator()}"
        session.info[repo.CLI_IDENTITY] = {"agent": None, "os_user": operator()}
        other = repo.contact(session, other_address)
        if other is None:  # an address that has not written yet: it will be keep's
            other = repo.new_contact(session, other_address, "", now)
            session.flush()
        if other.id == keep.id:
            return [f"{other_address} is already an address of {keep.email}: nothing to do"]
        was = other.email
        addresses, tickets = repo.merge_contacts(session, keep, other, by, now)
        for ticket in tickets:
            repo.add_event(
                session,
                ticket,
                "requester",
                now,
                actor=by,
                via="cli",
                **{"from": was, "to": keep.email},
                reason=f"contact {was} merged into {keep.email}",
            )
        refs = ", ".join(app.ref(t.id) for t in tickets) or "none"
        return [
            f"merged {', '.join(addresses)} into {keep.email}",
            f"tickets moved to {keep.email}: {refs}",
        ]

    for line in with_session(args, act):
        print(line)
    return EX_OK


def add_contacts(parsers: Parsers) -> None:
    """`maildesk contacts` and `maildesk contact show|merge`."""
    parsers.add("contacts", cmd_contacts, "list contacts", [parsers.json_flag])
    contact = parsers.group("contact", "one contact", "contact_command")
    sp = contact.add(
        "show", cmd_contact_show, "a contact's addresses and tickets", [parsers.json_flag]
    )
    sp.add_argument("address", help="any of the contact's addresses")
    sp = contact.add(
        "merge", cmd_contact_merge, "make OTHER an address of KEEP (its tickets move too)"
    )
    sp.add_argument("keep", help="an address of the contact that stays")
    sp.add_argument("other", help="the address (contact) merged into it")
