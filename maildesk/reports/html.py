"""The report as one self-contained HTML page: inline SVG charts, styles that print well."""

from __future__ import annotations

from typing import Any

from maildesk.mail.render import render_page


def hours(seconds: int | None) -> str:
    """Business seconds as `3h05m` (or `2d 4h00m` from 48 hours); a dash for nothing."""
    if seconds is None:
        return "\u2013"
    minutes = round(seconds / 60)
    h, m = divmod(minutes, 60)
    if h >= 48:
        return f"{h // 24}d {h % 24}h{m:02d}m"
    return f"{h}h{m:02d}m"


def render_html(report: dict[str, Any], charts: dict[str, str]) -> str:
    """The page for the report with its charts (from `charts(report)`)."""
    return render_page(
        "report/report",
        {
            "report": report,
            "charts": charts,  # SVG from matplotlib: the template marks it safe
            "hours": hours,
            "pct": lambda v: "\u2013" if v is None else f"{v:.1f} %",
        },
        timezone=report["period"]["timezone"],
    )
