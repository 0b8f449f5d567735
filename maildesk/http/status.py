"""GET /status/{token}: the requester's status page of one ticket, when `[http]
status_page` is on. No login: the token (an HMAC of the ticket id under the desk secret,
routing/proof.py) is the key, and the acknowledgement carries the link. It shows the
ticket's status and its public conversation only: never an internal note, an agent
notice, an assignee or a tag."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse

from maildesk.errors import NotFound
from maildesk.http.app import Web, web_of
from maildesk.http.pages import page
from maildesk.store import repo
from maildesk.store.db import transaction
from maildesk.store.models import Ticket
from maildesk.timefmt import iso

router = APIRouter()
MAX_MESSAGES = 200
# Nobody else should keep, index or be referred from this page.
PRIVATE = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
}


@router.get(
    "/status/{token}",
    tags=["status page"],
    summary="A requester's view of their ticket",
    response_class=HTMLResponse,
)
def status_page(
    web: Annotated[Web, Depends(web_of)], token: Annotated[str, Path(max_length=80)]
) -> HTMLResponse:
    """The ticket's status and public messages; 404 for a token that is not one (or when
    the page is off), the same answer either way."""
    app = web.app
    http = app.config.http
    number = app.tokens.status_ticket(token) if http.status_page else None
    if number is None:
        raise NotFound("no such status page")
    with transaction(app.sessions, readonly=True) as session:
        ticket = session.get(Ticket, number)
        if ticket is None:
            raise NotFound("no such status page")
        messages = [
            {
                "incoming": m.direction == "in",
                "from": m.from_name or m.from_addr,
                "at": iso(m.created_at),
                "subject": m.subject,
                "body": m.body_text,
            }
            for m in repo.public_thread(session, ticket.id, MAX_MESSAGES)
            if not m.internal
        ]
        shown = {
            "ref": app.ref(ticket.id),
            "subject": ticket.subject,
            "status": str(ticket.status),
            "created_at": iso(ticket.created_at),
            "updated_at": iso(ticket.updated_at),
        }
    return page(
        "status", headers=PRIVATE, desk=app.config.desk.name, ticket=shown, messages=messages
    )
