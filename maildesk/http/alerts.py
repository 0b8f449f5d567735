"""`POST /api/alerts/alertmanager`: Prometheus Alertmanager's webhook, fed to the same event
correlation as its mail.

The payload (webhook version 4) is written down as the mail Alertmanager would send for it
(subject `[FIRING:n] …`, one `[n] Firing` / `[n] Resolved` section of labels per alert) and
stored raw like any other message (origin `webhook`) before the answer, so it takes the
pipeline's one path: nothing accepted is lost, a failure quarantines it with the reason. The
monitor it belongs to is named by the request (`?monitor=NAME`, or the desk's only
Alertmanager monitor), not by the monitor's `when` condition: only an admin token can write
here, and the pipeline trusts that name only on messages of this origin.
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from maildesk.http.app import Web, require_token, web_of
from maildesk.http.auth import Principal
from maildesk.ingest import inbox
from maildesk.routing.monitors import WEBHOOK_MONITOR_HEADER, WEBHOOK_ORIGIN, Monitor

log = logging.getLogger(__name__)
router = APIRouter()

MAX_ALERTS = 1000  # alerts in one webhook call (Alertmanager's max_alerts defaults to all)
MAX_LABELS = 64  # labels or annotations of one alert
MAX_VALUE = 2000  # characters of one label or annotation value


class WebhookAlert(BaseModel):
    status: str = Field(pattern="^(firing|resolved)$")
    labels: dict[str, str] = Field(max_length=MAX_LABELS)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)
    startsAt: str = ""
    endsAt: str = ""
    fingerprint: str = ""


class WebhookPayload(BaseModel):
    """Alertmanager's webhook body (version 4); fields maildesk does not read are ignored."""

    version: str = "4"
    status: str = Field(default="firing", pattern="^(firing|resolved)$")
    receiver: str = ""
    groupKey: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict, max_length=MAX_LABELS)
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=MAX_ALERTS)


@router.post(
    "/api/alerts/alertmanager",
    tags=["alerts"],
    summary="Alertmanager's webhook: its alerts open, update and resolve incidents",
    status_code=202,
)
def alertmanager_webhook(
    payload: WebhookPayload,
    web: Annotated[Web, Depends(web_of)],
    principal: Annotated[Principal, Depends(require_token)],
    monitor: Annotated[str | None, Query(max_length=100)] = None,
) -> JSONResponse:
    if not principal.is_admin:
        raise HTTPException(403, "posting alerts needs an admin token")
    found = _monitor(web, monitor)
    raw = webhook_mail(payload, found, web.app.config.desk.address, web.app.now())
    raw_id = inbox.store_raw(
        web.app, raw, origin=WEBHOOK_ORIGIN, envelope_to=[web.app.config.desk.address]
    )
    web.wake()
    log.info(
        "alertmanager webhook for %s: %d alert(s) stored as raw %s",
        found.name,
        len(payload.alerts),
        raw_id,
    )
    return JSONResponse(
        {"stored": raw_id, "monitor": found.name, "alerts": len(payload.alerts)}, 202
    )


def _monitor(web: Web, name: str | None) -> Monitor:
    """The monitor named, or the desk's only Alertmanager monitor; 404/400 otherwise."""
    monitors = [m for m in web.app.config.monitors if m.format == "alertmanager"]
    if name is not None:
        found = next((m for m in monitors if m.name == name), None)
        if found is None:
            raise HTTPException(404, f"no [[monitors]] entry {name!r} with format alertmanager")
        return found
    if len(monitors) != 1:
        raise HTTPException(
            400,
            f"{len(monitors)} [[monitors]] entries have format alertmanager: "
            "name one with ?monitor=NAME",
        )
    return monitors[0]


def webhook_mail(
    payload: WebhookPayload, monitor: Monitor, desk_address: str, now: datetime
) -> bytes:
    """The payload as the mail Alertmanager's default email template would carry it."""
    firing = [a for a in payload.alerts if a.status == "firing"]
    resolved = [a for a in payload.alerts if a.status == "resolved"]
    state = f"FIRING:{len(firing)}" if firing else "RESOLVED"
    name = payload.groupLabels.get("alertname") or payload.alerts[0].labels.get("alertname", "")
    others = " ".join(_clip(v) for k, v in sorted(payload.groupLabels.items()) if k != "alertname")
    msg = EmailMessage()
    msg["From"] = f"{monitor.name}@webhook.invalid"  # RFC 2606: never a deliverable address
    msg["To"] = desk_address
    msg["Subject"] = f"[{state}] {_clip(name)}" + (f" ({others})" if others else "")
    msg["Message-ID"] = make_msgid(domain="webhook.invalid")
    msg["Date"] = format_datetime(now)
    msg["Auto-Submitted"] = "auto-generated"
    msg[WEBHOOK_MONITOR_HEADER] = monitor.name
    sections = [_section("Firing", firing), _section("Resolved", resolved)]
    msg.set_content("\n".join(s for s in sections if s))
    return msg.as_bytes()


def _section(title: str, alerts: list[WebhookAlert]) -> str:
    if not alerts:
        return ""
    lines = [f"[{len(alerts)}] {title}"]
    for alert in alerts:
        lines.append("Labels")
        lines += [f"- {k} = {_clip(v)}" for k, v in sorted(alert.labels.items()) if _name(k)]
        lines.append("Annotations")
        lines += [f"- {k} = {_clip(v)}" for k, v in sorted(alert.annotations.items()) if _name(k)]
        lines.append("")
    return "\n".join(lines)


def _name(label: str) -> bool:
    """A Prometheus label name: anything else could not be read back."""
    return label.isascii() and label.replace("_", "a").isalnum() and not label[:1].isdigit()


def _clip(value: str) -> str:
    return " ".join(value.split())[:MAX_VALUE]
