"""An SLA breach as the HTTP side shows it: counted in /metrics, listed by /api/sla, and on
the dashboard with a link to the ticket (the desk's clock injected, so hours pass at once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import Sink, mail, running_desk, wait_until
from tests.e2e.test_sla import SLA, Clock
from tests.http.conftest import READ_TOKEN, http_config, web_for
from tests.http.test_metrics_status import sample


def test_a_breach_is_counted_listed_and_linked(
    tmp_path: Path, sink: Sink, write_config: Callable[..., Path]
) -> None:
    extra = SLA.format(
        calendar="24x7", escalate="", remind_after=0, resolve_after=0, close_after="3d"
    ).replace("[sla]\n", '[sla]\ncheck_interval = "1s"\n')
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=extra + http_config())
    clock = Clock(datetime.now(UTC))
    with running_desk(config, sink, clock=clock) as desk:
        web = web_for(desk)
        desk.send(mail("Printer on fire"))
        desk.wait_tickets(1)
        assert sample(web, "maildesk_sla_breaches_total") == 0
        clock.advance(hours=5)  # past the P3 first response of 4h
        wait_until(lambda: sample(web, "maildesk_sla_breaches_total") >= 1)

        with web.client() as http:
            [row] = http.get("/api/sla").json()
            assert (row["ref"], row["state"]) == ("MD-1", "breached")
        with web.client(None) as browser:
            assert browser.post("/login", data={"token": READ_TOKEN}).status_code == 303
            overview = browser.get("/").text
        assert '<a href="/tickets/MD-1">MD-1</a></td><td>breached</td>' in overview
