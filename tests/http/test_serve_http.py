"""HTTP in `maildesk serve` as a real process: /healthz turns 503 while its PostgreSQL is
stopped and 200 again without a restart; SIGTERM stops the HTTP listener with the rest;
and schemathesis sends the OpenAPI schema's worth of odd input without one server error."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from tests.conftest import Sink, free_port, mail, serve_process, wait_until
from tests.e2e.test_faults import PrivatePostgres, private_postgres  # noqa: F401 (a fixture)
from tests.http.conftest import ADMIN_TOKEN, READ_TOKEN, Web, http_config


def _health(port: int) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.slow
def test_healthz_is_503_while_the_store_is_down_and_200_when_it_is_back(
    private_postgres: PrivatePostgres,  # noqa: F811
    tmp_path: Path,
    sink: Sink,
    write_config: Callable[..., Path],
) -> None:
    port = free_port()
    config = write_config(private_postgres.url, sink.port, extra=http_config(port))
    log = tmp_path / "serve.log"
    with serve_process(config, log) as proc:
        healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert healthy.status_code == 200 and healthy.json()["store"] == "ok"

        private_postgres.stop()
        down = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert down.status_code == 503, down.text
        assert down.json()["status"] == "unhealthy"
        assert down.json()["store"].startswith("unavailable")
        with httpx.Client(headers={"Authorization": f"Bearer {READ_TOKEN}"}) as http:
            listing = http.get(f"http://127.0.0.1:{port}/api/tickets", timeout=30)
            assert listing.status_code == 503 and listing.headers["retry-after"]
        assert proc.poll() is None

        private_postgres.start()
        wait_until(lambda: _health(port) == 200, 30, interval=0.1)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    assert _health(port) == 0, "the HTTP listener outlived the daemon"
    assert READ_TOKEN not in log.read_text()


@pytest.mark.slow
def test_no_input_makes_a_server_error(sqlite_web_desk: Web) -> None:
    """Every operation of the schema, a dozen generated requests each, valid and invalid;
    a 500 (or any 5xx) fails."""
    sqlite_web_desk.desk.send(mail("Printer on fire"))
    sqlite_web_desk.desk.wait_tickets(1)
    schema = schemathesis.openapi.from_url(f"{sqlite_web_desk.base_url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=[not_a_server_error]
            )

        no_server_error()


def test_schema_lists_the_contract_paths(sqlite_web_desk: Web) -> None:
    with sqlite_web_desk.client(None) as http:
        paths = http.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/tickets",
        "/api/tickets/{ref}",
        "/api/sla",
        "/api/reports",
        "/api/services",
        "/healthz",
        "/metrics",
        "/status/{token}",
    ):
        assert path in paths, sorted(paths)
