"""The dashboard at /: log in with a token, then today's figures, the last 30 days in charts
(the report definitions' own SVGs, inline), SLA at risk and in breach, quarantine and failed
outbox counts, and each ticket's conversation. Read-only; server-rendered; no script.

Logging in is the only form: POST /login with the token (never in a URL) sets an HttpOnly,
SameSite=Strict cookie with a random session id (auth.py). A POST whose Origin is another
site's is refused, so no other page can log a browser in or out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from maildesk.app import App
from maildesk.http.api import REPORT_DAYS, ticket_id, visible
from maildesk.http.app import Web, client_of, web_of
from maildesk.http.auth import SESSION_COOKIE, SESSION_LIFETIME, Principal
from maildesk.http.pages import page
from maildesk.reports import Period, build_report, charts
from maildesk.store import health, repo, views
from maildesk.store.db import transaction
from maildesk.tickets import sla as sla_hooks

router = APIRouter(include_in_schema=False)


def _principal(request: Request, web: Web) -> Principal | None:
    return web.sessions.get(request.cookies.get(SESSION_COOKIE), web.app.config.http.tokens)


def _same_origin(request: Request) -> None:
    """A POST from a page of another site is refused (403)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "cross-site form posts are refused")


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, web: Annotated[Web, Depends(web_of)]) -> Response:
    """The login form, or once logged in: today's figures and the last 30 days."""
    principal = _principal(request, web)
    if principal is None:
        return page("login", desk=web.app.config.desk.name, error=None)
    return page("overview", **overview_context(web.app, principal))


def overview_context(app: App, principal: Principal) -> dict[str, Any]:
    """Everything the overview shows, read in one read-only transaction."""
    now = app.now()
    zone = ZoneInfo(app.config.desk.timezone)
    today = now.astimezone(zone).date()
    midnight = datetime.combine(today, datetime.min.time(), zone)
    with transaction(app.sessions, readonly=True) as session:
        day = build_report(session, app, Period(today, today), now)
        month = build_report(
            session, app, Period(today - timedelta(days=REPORT_DAYS - 1), today), now
        )
        store = health.store_status(session, now, app.spool)
        open_now = sum(n for *_, n in repo.open_ticket_counts(session))
        sla = sla_hooks.standings(app, session, now)
        prefix = app.config.desk.ref_prefix
        recent = [
            views.ticket_json(t, prefix)
            for t in repo.list_tickets(session, limit=200)
            if _aware(t.created_at) >= midnight
        ]
    return {
        "desk": app.config.desk.name,
        "principal": principal,
        "today": today.isoformat(),
        "figures": day["summary"],
        "open_now": open_now,
        "store": store,
        "charts": charts(month),
        "period": month["period"],
        "sla": sla,
        "tickets": recent,
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@router.get("/tickets/{ref}", response_class=HTMLResponse)
def ticket_page(
    request: Request,
    web: Annotated[Web, Depends(web_of)],
    ref: Annotated[str, Path(max_length=40)],
) -> Response:
    """One ticket: its fields, its conversation (internal notes for admin tokens) and events."""
    principal = _principal(request, web)
    if principal is None:
        return RedirectResponse("/", status_code=303)
    app = web.app
    number = ticket_id(app, ref)
    with transaction(app.sessions, readonly=True) as session:
        detail = views.ticket_detail(session, number, app.config.desk.ref_prefix)
    if detail is None:
        raise HTTPException(404, f"ticket {ref} not found")
    return page(
        "ticket",
        desk=app.config.desk.name,
        principal=principal,
        ticket=visible(detail, principal),
    )


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    web: Annotated[Web, Depends(web_of)],
    token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """A token from the login form: a session cookie and back to /, or the form again."""
    _same_origin(request)
    desk = web.app.config.desk.name
    try:
        principal = web.login(token.strip(), client_of(request))
    except HTTPException as exc:
        error = (
            "Too many failed attempts; wait a minute."
            if exc.status_code == 429
            else "That token is not valid."
        )
        headers = dict(exc.headers or {})
        return page("login", status=exc.status_code, headers=headers, desk=desk, error=error)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        web.sessions.open(principal),
        max_age=int(SESSION_LIFETIME),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, web: Annotated[Web, Depends(web_of)]) -> Response:
    """End the session."""
    _same_origin(request)
    web.sessions.close(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
