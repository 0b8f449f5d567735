"""The ASGI application `serve` runs beside the SMTP listener (uvicorn's Server in the
daemon's event loop): the JSON API, /metrics, /healthz, the dashboard and the requester
status page. FastAPI enters here; the routes are in api.py, metrics.py, dashboard.py and
status.py.

Every error is a problem details document (RFC 9457, `application/problem+json`). Every
route but /healthz and /status/{token} needs a token (auth.py). Handlers that read the
store are plain functions, which FastAPI runs in its thread pool, so a slow query never
holds up the event loop that answers SMTP clients.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from maildesk.app import App
from maildesk.errors import InvalidRequest, NotFound, StoreUnavailable
from maildesk.http.auth import (
    SESSION_COOKIE,
    FailureLimiter,
    Principal,
    Sessions,
    bearer,
    find_token,
)

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
# No script runs anywhere, styles are inline, charts are inline SVG.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it, browsers send `Origin: null` on the login form's POST.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass
class Web:
    """What the routes share: the daemon's App, dashboard sessions, failed-login counts."""

    app: App
    wake: Callable[[], None] = lambda: None  # the pipeline, for what a route stored
    sessions: Sessions = field(default_factory=Sessions)
    failures: FailureLimiter = field(default_factory=FailureLimiter)

    def login(self, token: str, client: str) -> Principal:
        """The principal of a presented token; 401, or 429 past too many failures."""
        wait = self.failures.blocked(client)
        if wait:
            raise HTTPException(
                429,
                "too many failed attempts from this address; try again later",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        principal = find_token(self.app.config.http.tokens, token)
        if principal is None:
            self.failures.failed(client)
            log.warning("HTTP: a wrong token from %s", client)
            raise _unauthorized("the token is not valid")
        return principal


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="maildesk"'})


def require_token(request: Request, web: Annotated[Web, Depends(web_of)]) -> Principal:
    """The caller of an API route: `Authorization: Bearer TOKEN` (401 without one)."""
    token = bearer(request.headers.get("authorization"))
    if token is None:
        # The dashboard's own session also opens the API (its cookie is SameSite=Strict).
        principal = web.sessions.get(
            request.cookies.get(SESSION_COOKIE), web.app.config.http.tokens
        )
        if principal is not None:
            return principal
        raise _unauthorized("this needs a bearer token (Authorization: Bearer TOKEN)")
    return web.login(token, client_of(request))


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem details response."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": phrase, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _install_errors(api: FastAPI) -> None:
    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail or ""), dict(exc.headers or {}))

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return problem(422, where or "invalid request")

    @api.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return problem(404, str(exc))

    @api.exception_handler(InvalidRequest)
    async def bad_request(request: Request, exc: InvalidRequest) -> Response:
        return problem(400, str(exc))

    @api.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> Response:
        log.error("HTTP %s: store unavailable: %s", request.url.path, exc)
        return problem(503, "the store is unavailable; try again later", {"Retry-After": "5"})

    @api.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        log.exception("HTTP %s %s failed", request.method, request.url.path)
        return problem(500, "internal error (logged)")


def build_app(app: App, wake: Callable[[], None] = lambda: None) -> FastAPI:
    """The ASGI app serving `app` (the daemon's App); `wake` tells the pipeline (from any
    thread) that a route stored a message."""
    from maildesk.http import alerts, api, dashboard, metrics, status

    web = FastAPI(
        title="maildesk",
        summary="Tickets, SLA standing, reports and metrics of a maildesk help desk",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the interactive docs load scripts from elsewhere: not here
        redoc_url=None,
    )
    web.state.web = Web(app, wake)
    _install_errors(web)

    @web.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    metrics.install(app)
    for router in (api.router, alerts.router, metrics.router, status.router, dashboard.router):
        web.include_router(router)
    return web
