"""The report's charts, page and tables as files: deterministic, self-contained, escaped."""

from __future__ import annotations

import copy
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from maildesk import reports
from maildesk.app import App
from maildesk.config import load_config
from maildesk.store.db import transaction
from tests.conftest import Sink
from tests.reports.seeded import WEEK_END, WEEK_START, at, seeded_desk

CHARTS = ["tickets_per_day", "backlog", "mail_per_day", "response_times", "sla_compliance"]


@pytest.fixture
def week(write_config: Callable[..., Path], sink: Sink, tmp_path: Path) -> dict[str, Any]:
    """The seeded week's report, on SQLite (test_report_figures.py checks both databases)."""
    app, _ = seeded_desk(f"sqlite:///{tmp_path / 'desk.db'}", write_config, sink.port)
    try:
        with transaction(app.sessions, readonly=True) as session:
            period = reports.Period(WEEK_START, WEEK_END)
            return reports.build_report(session, app, period, at(9, 12))
    finally:
        app.close()


def test_charts_are_deterministic_svg_with_text_as_text(week: dict[str, Any]) -> None:
    drawn = reports.charts(week)
    assert list(drawn) == CHARTS
    assert reports.charts(copy.deepcopy(week)) == drawn  # same report, same bytes
    for name, svg in drawn.items():
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>"), name
        assert "<?xml" not in svg and "<!DOCTYPE" not in svg
        assert "<text" in svg and "@font-face" not in svg and "base64" not in svg
        assert "<dc:date>" not in svg  # no timestamp in the metadata
    assert "Tickets created and resolved per day" in drawn["tickets_per_day"]


def test_names_in_charts_and_page_are_escaped(week: dict[str, Any]) -> None:
    hostile = copy.deepcopy(week)
    for row in hostile["times"]:
        if row["key"] == "it":
            row["key"] = "<b>it & co</b>"
    hostile["top_requesters"][0]["name"] = "<script>alert(1)</script>"
    drawn = reports.charts(hostile)
    assert "&lt;b&gt;it &amp; co&lt;/b&gt;" in drawn["response_times"]
    page = reports.render_html(hostile, drawn)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_empty_period_still_draws_every_chart(
    db_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    app = App.build(load_config(write_config(db_url)))
    try:
        with transaction(app.sessions, readonly=True) as session:
            period = reports.Period(date(2026, 1, 1), date(2026, 1, 1))
            empty = reports.build_report(session, app, period, at(9, 12))
    finally:
        app.close()
    assert empty["summary"]["created"] == 0 and empty["summary"]["reopen_rate"] is None
    assert empty["summary"]["first_response_median_seconds"] is None
    assert (empty["times"], empty["sla"], empty["breaches"], empty["rules"]) == ([], [], [], [])
    drawn = reports.charts(empty)
    assert "no data in this period" in drawn["response_times"]
    assert "No breach in this period." in reports.render_html(empty, drawn)
    [archive] = reports.write_csv(empty, tmp_path / "empty.zip")
    with zipfile.ZipFile(archive) as z:
        assert z.read("breaches.csv") == b""  # an empty table is an empty file
        assert z.read("daily.csv").decode().startswith("date,created,resolved,")


def test_the_same_report_writes_the_same_zip(week: dict[str, Any], tmp_path: Path) -> None:
    [first] = reports.write_csv(week, tmp_path / "a.zip")
    [second] = reports.write_csv(week, tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()


def test_other_commands_do_not_import_matplotlib() -> None:
    code = "import sys, maildesk.cli.main; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
