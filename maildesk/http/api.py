"""The JSON API: tickets (as `maildesk tickets` and `ticket show --json` give them), SLA
standing (as `maildesk sla --json`), the report JSON, and /healthz.

A read token is an operator's (monitoring, scripts): it sees every ticket field and the
public conversation, not internal notes or agent notices. An admin token sees what an agent
sees in `ticket show`, internal messages included (docs/http.md).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from maildesk.app import App
from maildesk.errors import NotFound, StoreUnavailable
from maildesk.http.app import Web, require_token, web_of
from maildesk.http.auth import Principal
from maildesk.reports import Period, build_report
from maildesk.store import health, repo, views
from maildesk.store.db import transaction
from maildesk.store.impact import services_json
from maildesk.tickets import sla as sla_hooks

router = APIRouter()
REPORT_DAYS = 30  # the default period of /api/reports: the last 30 days, today included

Json = dict[str, Any]


def ticket_id(app: App, ref: str) -> int:
    """42 or MD-42 (the desk's prefix, any case) -> 42; anything else is not found."""
    prefix, _, number = ref.rpartition("-")
    if prefix and prefix.lower() != app.config.desk.ref_prefix.lower():
        raise NotFound(f"{ref!r} is not a ticket ref like {app.ref(42)}")
    if not (number.isascii() and number.isdigit()) or len(number) > 18:
        raise NotFound(f"{ref!r} is not a ticket ref like {app.ref(42)}")
    return int(number)


def visible(detail: Json, principal: Principal) -> Json:
    """A ticket as the caller may see it: without internal messages for a read token."""
    if principal.is_admin:
        return detail
    public = [m for m in detail["messages"] if not m["internal"]]
    return {**detail, "messages": public, "internal_hidden": len(detail["messages"]) - len(public)}


@router.get("/api/tickets", tags=["tickets"], summary="Tickets, newest first")
def list_tickets(
    principal: Annotated[Principal, Depends(require_token)],
    web: Annotated[Web, Depends(web_of)],
    status: Annotated[str | None, Query(max_length=32)] = None,
    queue: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[Json]:
    """As `maildesk tickets --json`: filtered by status and queue, `limit` from `offset`."""
    app = web.app
    with transaction(app.sessions, readonly=True) as session:
        rows = repo.list_tickets(session, status=status, queue=queue, limit=limit, offset=offset)
        return [views.ticket_json(t, app.config.desk.ref_prefix) for t in rows]


@router.get("/api/tickets/{ref}", tags=["tickets"], summary="One ticket with its history")
def show_ticket(
    principal: Annotated[Principal, Depends(require_token)],
    web: Annotated[Web, Depends(web_of)],
    ref: Annotated[str, Path(max_length=40)],
) -> Json:
    """As `maildesk ticket show --json` (internal messages for admin tokens only)."""
    app = web.app
    number = ticket_id(app, ref)
    with transaction(app.sessions, readonly=True) as session:
        detail = views.ticket_detail(session, number, app.config.desk.ref_prefix)
    if detail is None:
        raise NotFound(f"ticket {ref} not found")
    return visible(detail, principal)


@router.get("/api/sla", tags=["sla"], summary="Tickets at risk of missing their SLA, in breach")
def sla(
    principal: Annotated[Principal, Depends(require_token)],
    web: Annotated[Web, Depends(web_of)],
    everything: Annotated[
        bool, Query(alias="all", description="every ticket under an SLA policy")
    ] = False,
) -> list[Json]:
    """As `maildesk sla --json`: breached first, then at risk (with all=true, every one)."""
    app = web.app
    with transaction(app.sessions, readonly=True) as session:
        return sla_hooks.standings(app, session, app.now(), everything=everything)


@router.get("/api/services", tags=["services"], summary="Services, their state and incidents")
def services(
    principal: Annotated[Principal, Depends(require_token)],
    web: Annotated[Web, Depends(web_of)],
) -> list[Json]:
    """As `maildesk services --json`: every configured service, in config order."""
    app = web.app
    with transaction(app.sessions, readonly=True) as session:
        return services_json(session, app.config.services, app.config.desk.ref_prefix, app.now())


def default_period(app: App, start: date | None, end: date | None) -> tuple[date, date]:
    """The report's days: given, or the last REPORT_DAYS days up to today (desk time)."""
    today = app.now().astimezone(ZoneInfo(app.config.desk.timezone)).date()
    end = end or (today if start is None else min(today, start + timedelta(REPORT_DAYS - 1)))
    return start or end - timedelta(days=REPORT_DAYS - 1), end


@router.get("/api/reports", tags=["reports"], summary="The report figures of a period")
def reports(
    principal: Annotated[Principal, Depends(require_token)],
    web: Annotated[Web, Depends(web_of)],
    start: Annotated[date | None, Query(alias="from", description="first day")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day, included")] = None,
    queue: Annotated[str | None, Query(max_length=200)] = None,
) -> Json:
    """As `maildesk report --format json` (the last 30 days unless from/to say otherwise)."""
    app = web.app
    first, last = default_period(app, start, end)
    period = Period(first, last, queue)
    with transaction(app.sessions, readonly=True) as session:
        return build_report(session, app, period, app.now())


@router.get("/healthz", tags=["health"], summary="Store reachable, backlog, IMAP reads")
def healthz(web: Annotated[Web, Depends(web_of)]) -> JSONResponse:
    """200 when the store answers, else 503; no token needed (nothing secret in it)."""
    app = web.app
    seen = app.metrics.imap_seen()
    mailboxes = {
        box.name: (_iso(seen[box.name]) if box.name in seen else None)
        for box in app.config.mailboxes
    }
    try:
        with transaction(app.sessions, readonly=True) as session:
            store = health.store_status(session, app.now(), app.spool)
    except StoreUnavailable as exc:
        body = {"status": "unhealthy", "store": f"unavailable: {exc}", "mailboxes": mailboxes}
        return JSONResponse(body, status_code=503)
    body = {
        "status": "ok",
        "store": "ok",
        "backlog": store["pending"],
        "oldest_pending_seconds": store["oldest_pending_seconds"],
        "quarantined": store["quarantined"],
        "mailboxes": mailboxes,
    }
    return JSONResponse(body)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
