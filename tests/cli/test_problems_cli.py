"""`maildesk route test` names the monitor and alert keys of a monitor's mail; `maildesk
problems` lists problems (none yet: an empty list); config errors name the monitor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import mail, run_cli

DATA = Path(__file__).parent.parent / "data" / "monitors"

MONITOR = """
[[monitors]]
name = "prometheus"
when = { field = "from", equals = "alertmanager@mon.example.com" }
format = "alertmanager"
queue = "infra"
priority = { critical = "P1" }
"""


def test_route_test_shows_monitor_and_keys(
    tmp_path: Path, db_url: str, write_config: Callable[..., Path]
) -> None:
    config = str(write_config(db_url, extra=MONITOR))
    eml = str(DATA / "alertmanager_firing_group.eml")
    code, out = run_cli("route", "test", eml, "--json", "--config", config)
    assert code == 0, out
    monitor = json.loads(out)["monitor"]
    assert monitor["monitor"] == "prometheus"
    assert [(a["key"], a["state"], a["priority"]) for a in monitor["alerts"]] == [
        ("InstanceDown{instance=web1:9100,job=node}", "problem", "P1"),
        ("InstanceDown{instance=web2:9100,job=node}", "problem", "P1"),
    ]
    code, text = run_cli("route", "test", eml, "--config", config)
    assert "monitor: prometheus (alertmanager): key InstanceDown{instance=web1:9100" in text
    other = tmp_path / "other.eml"
    other.write_bytes(mail("Printer jammed").as_bytes())
    code, out = run_cli("route", "test", str(other), "--json", "--config", config)
    assert json.loads(out)["monitor"] is None
    code, out = run_cli("problems", "--json", "--config", config)
    assert code == 0 and json.loads(out) == []


def test_monitor_config_errors_name_the_entry_and_key(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    bad = MONITOR.replace('format = "alertmanager"', 'format = "pagerduty"').replace(
        'critical = "P1"', 'critical = "P9"'
    )
    bad += '\n[problems]\ndetect = { incidents = 5, within = "1h", by = "colour" }\n'
    code, out = run_cli(
        "check-config", "--config", str(write_config(f"sqlite:///{tmp_path}/x.db", extra=bad))
    )
    assert code == 2, out
    assert "[[monitors]] 'prometheus' key 'format'" in out and "pagerduty" in out
    assert "[[monitors]] 'prometheus' key 'priority.critical'" in out
    assert "[problems] detect key 'by'" in out
