"""`maildesk report` on the seeded week (tests/reports/seeded.py): HTML with its charts,
JSON with stable keys, CSV as a zip or a directory, and the errors a person can make."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Sink, run_cli
from tests.reports.seeded import seeded_desk

WEEK = ("--from", "2026-11-02", "--to", "2026-11-08")
KEYS = {
    "version",
    "generated_at",
    "period",
    "summary",
    "daily",
    "times",
    "sla",
    "breaches",
    "top_categories",
    "top_requesters",
    "rules",
    "csat",
}
SUMMARY_KEYS = {
    "created",
    "resolved",
    "reopened",
    "reopen_rate",
    "backlog_start",
    "backlog_end",
    "first_response_breaches",
    "resolution_breaches",
    "mail_in",
    "mail_out",
    "quarantined",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "first_response_compliance",
    "resolution_compliance",
}
CSV_FILES = [
    f"{name}.csv"
    for name in (
        "summary",
        "daily",
        "times",
        "sla",
        "breaches",
        "top_categories",
        "top_requesters",
        "rules",
    )
]


@pytest.fixture
def config(db_url: str, write_config: Callable[..., Path], sink: Sink) -> Iterator[str]:
    app, _ = seeded_desk(db_url, write_config, sink.port)
    app.close()
    yield str(app.config.path)


def report(config: str, *args: str) -> tuple[int, str]:
    return run_cli("report", *args, "--config", config)


def test_json_on_stdout_has_the_documented_keys_and_figures(config: str) -> None:
    code, out = report(config, *WEEK, "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == KEYS
    assert set(data["summary"]) == SUMMARY_KEYS
    assert set(data["period"]) == {"start", "end", "queue", "timezone", "days"}
    assert set(data["daily"][0]) == {
        "date",
        "created",
        "resolved",
        "reopened",
        "backlog",
        "mail_in",
        "mail_out",
        "quarantined",
    }
    assert {tuple(sorted(r)) for r in data["times"]} == {
        ("count", "group", "key", "measure", "median_seconds", "p90_seconds")
    }
    assert (data["summary"]["created"], data["summary"]["backlog_end"]) == (10, 4)
    assert data["csat"] is None
    code, again = report(config, *WEEK, "--out", "-")  # json is the default
    assert code == 0 and set(json.loads(again)) == KEYS


def test_without_dates_the_last_thirty_days_up_to_today(config: str) -> None:
    code, out = report(config)
    assert code == 0, out
    period = json.loads(out)["period"]
    today = datetime.now(UTC).date()  # the test desk's timezone is UTC
    assert period["days"] == 30
    assert period["end"] in {today.isoformat(), (today + timedelta(days=1)).isoformat()}
    code, out = report(config, "--from", "2026-11-02", "--to", "2026-11-02")
    assert code == 0 and json.loads(out)["summary"]["created"] == 3


def test_html_is_one_self_contained_file_with_its_charts(config: str, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, said = report(config, *WEEK, "--queue", "it", "--out", str(out))
    assert code == 0, said
    assert str(out) in said
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.DOTALL)
    assert len(svgs) == 5
    assert all("<path" in svg and "<text" in svg for svg in svgs)  # drawn, with text as text
    assert "@media print" in page
    # Nothing to fetch: no scripts, no external style sheets, images or fonts.
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?:", page)
    assert not re.search(r"url\(\s*[\"']?https?:", page)
    assert "queue <b>it</b>" in page
    assert "Printer" not in page or "&lt;" not in page  # text is escaped, not raw markup
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "two charts share an element id"


def test_csv_as_a_zip_and_as_a_directory(config: str, tmp_path: Path) -> None:
    archive = tmp_path / "report.zip"
    code, out = report(config, *WEEK, "--out", str(archive))
    assert code == 0, out
    with zipfile.ZipFile(archive) as z:
        assert z.namelist() == CSV_FILES
        daily = list(csv.DictReader(io.StringIO(z.read("daily.csv").decode("utf-8"))))
        summary = list(csv.DictReader(io.StringIO(z.read("summary.csv").decode("utf-8"))))
    assert [row["created"] for row in daily] == ["3", "2", "1", "1", "1", "1", "1"]
    assert [row["backlog"] for row in daily] == ["2", "1", "2", "2", "2", "3", "4"]
    assert summary[0]["period_start"] == "2026-11-02" and summary[0]["period_queue"] == ""
    assert summary[0]["reopen_rate"] == "14.3"

    folder = tmp_path / "tables"
    code, out = report(config, *WEEK, "--format", "csv", "--out", str(folder))
    assert code == 0, out
    assert sorted(p.name for p in folder.iterdir()) == sorted(CSV_FILES)
    rules = list(csv.DictReader(io.StringIO((folder / "rules.csv").read_text(encoding="utf-8"))))
    assert rules == [
        {"rule": "printers", "hits": "4"},
        {"rule": "outages are P1 for infra", "hits": "2"},
    ]

    code, out = report(config, *WEEK, "--format", "csv")  # stdout: every table, headed
    assert code == 0, out
    assert out.startswith("# summary\r\n") and "\r\n# daily\r\ndate,created," in out


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--from", "2026-11-08", "--to", "2026-11-02"), 1, "before it starts"),
        (("--from", "2024-01-01", "--to", "2026-01-01"), 1, "at most 366 days"),
        (("--queue", "nope", *WEEK), 1, "no queue 'nope' (queues: it, infra)"),
        (("--from", "yesterday"), 2, "not a date (YYYY-MM-DD): 'yesterday'"),
        (("--format", "pdf"), 2, "invalid choice: 'pdf'"),
    ],
)
def test_bad_options_get_a_clear_error(
    config: str, args: tuple[str, ...], code: int, words: str
) -> None:
    got, out = report(config, *args)
    assert got == code, out
    assert words in out
