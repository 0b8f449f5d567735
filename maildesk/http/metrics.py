"""GET /metrics: the daemon's counters (maildesk.metrics) and gauges read from the store at
each scrape: tickets open by queue, status and priority; the pipeline backlog; quarantined
mail; the outbox by status; each mailbox's time since its last good read."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from maildesk.app import App
from maildesk.errors import StoreUnavailable
from maildesk.http.app import Web, require_token, web_of
from maildesk.http.auth import Principal
from maildesk.metrics import CONTENT_TYPE, GaugeFamily
from maildesk.store import health, repo
from maildesk.store.db import transaction

log = logging.getLogger(__name__)
router = APIRouter()


def store_gauges(app: App) -> Iterator[GaugeFamily]:
    """What the store holds now; `maildesk_store_up` 0 (and nothing else from it) when the
    store cannot be read."""
    try:
        with transaction(app.sessions, readonly=True) as session:
            status = health.store_status(session, app.now(), app.spool)
            open_counts = repo.open_ticket_counts(session)
    except StoreUnavailable as exc:
        log.error("metrics: store unavailable: %s", exc)
        app.metrics.store_failed("metrics")
        yield GaugeFamily("maildesk_store_up", "Whether the store answered", (), [((), 0.0)])
        return
    yield GaugeFamily("maildesk_store_up", "Whether the store answered", (), [((), 1.0)])
    yield GaugeFamily(
        "maildesk_tickets_open",
        "Tickets not resolved, closed or merged",
        ("queue", "status", "priority"),
        [((q, s, p), float(n)) for q, s, p, n in open_counts],
    )
    yield GaugeFamily(
        "maildesk_backlog_messages",
        "Stored messages the pipeline has still to process",
        (),
        [((), float(status["pending"]))],
    )
    yield GaugeFamily(
        "maildesk_backlog_oldest_seconds",
        "Age of the oldest message waiting for the pipeline",
        (),
        [((), float(status["oldest_pending_seconds"] or 0.0))],
    )
    yield GaugeFamily(
        "maildesk_quarantined_messages",
        "Messages set aside in quarantine",
        (),
        [((), float(status["quarantined"]))],
    )
    yield GaugeFamily(
        "maildesk_outbox_messages",
        "Notifications in the outbox, by status",
        ("status",),
        [((s,), float(n)) for s, n in status["outbox"].items()],
    )
    yield from _imap_lag(app)


def _imap_lag(app: App) -> Iterator[GaugeFamily]:
    seen, now = app.metrics.imap_seen(), time.time()
    yield GaugeFamily(
        "maildesk_imap_lag_seconds",
        "Seconds since a mailbox was last read without error",
        ("mailbox",),
        [((name,), now - at) for name, at in seen.items()],
    )


def install(app: App) -> None:
    """Read the store's gauges at every scrape of this App's registry (once per App)."""
    app.metrics.add_collector("store", lambda: list(store_gauges(app)))


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="Prometheus metrics (text format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(
    principal: Annotated[Principal, Depends(require_token)],
    web: Annotated[Web, Depends(web_of)],
) -> Response:
    """Counters since this daemon started, and gauges read from the store now."""
    return Response(web.app.metrics.exposition(), media_type=CONTENT_TYPE)
