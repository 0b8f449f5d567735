"""`maildesk report`: the desk's figures for a period as an HTML file, JSON or CSV tables."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from maildesk import reports
from maildesk.app import App
from maildesk.cli.common import EX_OK, EX_USAGE, Parsers, err, with_session
from maildesk.errors import InvalidRequest

FORMATS = ("html", "json", "csv")
DEFAULT_DAYS = 30  # without --from: the 30 days ending with --to (today)
SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".json": "json", ".csv": "csv", ".zip": "csv"}


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def add_report(parsers: Parsers) -> None:
    """`maildesk report [--from DATE] [--to DATE] [--queue Q] [--format F] [--out FILE]`."""
    sp = parsers.add("report", cmd_report, "figures for a period: HTML with charts, JSON or CSV")
    sp.add_argument("--from", dest="start", type=_day, metavar="DATE", help="first day")
    sp.add_argument("--to", dest="end", type=_day, metavar="DATE", help="last day (today)")
    sp.add_argument("--queue", help="only this queue's tickets and their mail")
    sp.add_argument(
        "--format",
        choices=FORMATS,
        help="html, json or csv (default: from --out's suffix, else json)",
    )
    sp.add_argument(
        "--out",
        metavar="FILE",
        help="where to write: a file; for csv a directory or FILE.zip ('-' or none: stdout)",
    )


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report for the period and write it where --out says."""
    out = None if args.out in (None, "-") else Path(args.out)
    fmt = args.format or (SUFFIX_FORMATS.get(out.suffix.lower(), "json") if out else "json")
    if fmt == "html" and out is None and sys.stdout.isatty():
        err("maildesk: an HTML report is a file: give --out FILE.html (or redirect stdout)")
        return EX_USAGE

    def load(app: App, session: Any) -> dict[str, Any]:
        return reports.build_report(session, app, _period(app, args), app.now())

    report = with_session(args, load, readonly=True)
    if fmt == "json":
        _write(out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "html":
        _write(out, reports.render_html(report, reports.charts(report)))
    elif out is None:
        _write(None, _csv_stream(report))
    else:
        reports.write_csv(report, out)
    if out is not None:
        err(f"report {report['period']['start']} to {report['period']['end']} written to {out}")
    return EX_OK


def _period(app: App, args: argparse.Namespace) -> reports.Period:
    """The period asked for: --to defaults to today in the desk's timezone, --from to the
    30 days ending then; a queue must be one the desk has."""
    today = app.now().astimezone(ZoneInfo(app.config.desk.timezone)).date()
    end = args.end or (today if args.start is None else max(today, args.start))
    start = args.start or end - timedelta(days=DEFAULT_DAYS - 1)
    if args.queue is not None:
        names = [q.name for q in app.config.queues]
        if args.queue not in names:
            raise InvalidRequest(f"no queue {args.queue!r} (queues: {', '.join(names)})")
    return reports.Period(start, end, args.queue)


def _write(out: Path | None, text: str) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def _csv_stream(report: dict[str, Any]) -> str:
    """Every table on stdout, each after a `# name` line, a blank line between them (for a
    look; --out DIR or --out FILE.zip gives one clean CSV file per table)."""
    parts = [
        f"# {name}\r\n{reports.csv_text(rows)}" for name, rows in reports.tables(report).items()
    ]
    return "\r\n".join(parts)
