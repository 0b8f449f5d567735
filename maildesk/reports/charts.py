"""The report's charts as SVG markup, drawn by matplotlib (Agg, no pyplot, no global state).

matplotlib is imported here, inside `charts()`, so no other command pays for it. The SVG
is deterministic (a fixed hash salt per chart, no date in its metadata) and its text stays
text (`svg.fonttype = "none"`): nothing is fetched, no font is embedded, and two charts on
one page never share an element id.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from typing import Any

WIDTH, HEIGHT = 8.0, 2.8  # inches; the page scales them to its width
COLOURS = {"created": "#3b6ea5", "resolved": "#5a9e4b", "backlog": "#c0504d", "p90": "#9bb7d4"}
MAIL_COLOURS = {"mail_in": "#3b6ea5", "mail_out": "#5a9e4b", "quarantined": "#c0504d"}
MAX_LABELS = 12  # day labels on an axis; more days and only every n-th is named
# matplotlib's settings (rcParams) are one per process: charts drawn by two threads at once
# (the HTTP side) would each see the other's, so they are drawn one chart set at a time.
_DRAWING = threading.Lock()
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
# matplotlib numbers its element ids per figure (figure_1, patch_1, ...): on a page with
# several charts they would clash, so each chart's ids, and the references to them, get
# the chart's name in front.
_IDS = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def charts(report: dict[str, Any]) -> dict[str, str]:
    """Chart name -> SVG markup: tickets per day, backlog, mail per day, times, SLA."""
    from matplotlib import rc_context

    drawn = {}
    settings = {
        "svg.fonttype": "none",
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    for name, draw in (
        ("tickets_per_day", _tickets_per_day),
        ("backlog", _backlog),
        ("mail_per_day", _mail_per_day),
        ("response_times", _times),
        ("sla_compliance", _compliance),
    ):
        params: Any = {**settings, "svg.hashsalt": f"maildesk-{name}"}
        with _DRAWING, rc_context(params):
            drawn[name] = _IDS.sub(rf"\g<1>{name}-\g<2>", _svg(draw, report))
    return drawn


def _svg(draw: Any, report: dict[str, Any]) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas; savefig(format="svg") writes through it
    draw(figure.subplots(), report)
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": "maildesk"})
    return _PROLOGUE.sub("", out.getvalue(), count=1)


def _day_axis(ax: Any, days: Sequence[dict[str, Any]]) -> None:
    step = max(1, -(-len(days) // MAX_LABELS))
    ticks = list(range(0, len(days), step))
    ax.set_xticks(ticks, [days[i]["date"][5:] for i in ticks])
    ax.set_xlim(-0.6, max(len(days) - 0.4, 0.6))


def _legend(ax: Any, columns: int) -> None:
    """The legend above the plot, right, on the title's line: never over the data."""
    ax.legend(
        frameon=False, ncols=columns, loc="lower right", bbox_to_anchor=(1, 1), borderaxespad=0
    )


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data in this period", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _tickets_per_day(ax: Any, report: dict[str, Any]) -> None:
    days = report["daily"]
    xs = range(len(days))
    ax.bar(
        [x - 0.2 for x in xs],
        [d["created"] for d in days],
        0.4,
        label="created",
        color=COLOURS["created"],
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [d["resolved"] for d in days],
        0.4,
        label="resolved",
        color=COLOURS["resolved"],
    )
    ax.set_title("Tickets created and resolved per day", loc="left")
    ax.yaxis.get_major_locator().set_params(integer=True)
    _day_axis(ax, days)
    _legend(ax, 2)


def _backlog(ax: Any, report: dict[str, Any]) -> None:
    days = report["daily"]
    ax.plot(
        range(len(days)),
        [d["backlog"] for d in days],
        marker="o",
        markersize=3,
        color=COLOURS["backlog"],
    )
    ax.set_title("Open tickets at the end of each day", loc="left")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    _day_axis(ax, days)


def _mail_per_day(ax: Any, report: dict[str, Any]) -> None:
    days = report["daily"]
    labels = {"mail_in": "in", "mail_out": "out", "quarantined": "quarantined"}
    for key, label in labels.items():
        ax.plot(
            range(len(days)),
            [d[key] for d in days],
            label=label,
            marker="o",
            markersize=2,
            color=MAIL_COLOURS[key],
        )
    ax.set_title("Mail in, out and quarantined per day", loc="left")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    _day_axis(ax, days)
    _legend(ax, 3)


def _times(ax: Any, report: dict[str, Any]) -> None:
    rows = [r for r in report["times"] if r["group"] == "queue"]
    if not rows:
        _no_data(ax)
        return
    labels = [f"{r['key']} · {r['measure'].replace('_', ' ')}" for r in rows]
    ys = range(len(rows))
    ax.barh(ys, [r["p90_seconds"] / 3600 for r in rows], 0.6, label="p90", color=COLOURS["p90"])
    ax.barh(
        ys,
        [r["median_seconds"] / 3600 for r in rows],
        0.35,
        label="median",
        color=COLOURS["created"],
    )
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlabel("business hours")
    ax.set_title("First response and resolution by queue", loc="left")
    _legend(ax, 2)


def _compliance(ax: Any, report: dict[str, Any]) -> None:
    rows = [r for r in report["sla"] if r["group"] == "policy"]
    if not rows:
        _no_data(ax)
        return
    xs = range(len(rows))
    for offset, measure, colour in (
        (-0.2, "first_response", "created"),
        (0.2, "resolution", "resolved"),
    ):
        values = [r[f"{measure}_compliance"] or 0 for r in rows]
        ax.bar(
            [x + offset for x in xs],
            values,
            0.4,
            label=measure.replace("_", " "),
            color=COLOURS[colour],
        )
    ax.set_xticks(list(xs), [r["key"] for r in rows])
    ax.set_xlim(-0.5 - 0.5 * max(0, 4 - len(rows)), len(rows) - 0.5 + 0.5 * max(0, 4 - len(rows)))
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of targets met")
    ax.set_title("SLA compliance by policy", loc="left")
    _legend(ax, 2)
