"""Run every benchmark (each with --json), print its table, then one table of all targets.

    python bench/run_all.py            # full size (about an hour; see bench/README.md)
    python bench/run_all.py --quick    # a few minutes: smaller corpora, no 1,000,000 seed
    python bench/run_all.py --only smtp_ingest scale
    python bench/run_all.py --markdown bench/.cache/last-run.json   # for bench/README.md

`make bench` runs the full set, `make bench BENCH_ARGS=--quick` the quick one. The JSON of
the last run is kept in bench/.cache/last-run.json (and a dated copy next to it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import results_table
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
# Benchmark scripts in the order they run, with the arguments of a quick run.
BENCHMARKS: dict[str, list[str]] = {
    "smtp_ingest": ["--quick"],
    "import_peers": ["--quick"],
    "scale": ["--quick"],
    "memory": ["--quick"],
    "routing": ["--rules", "200", "--messages", "2000"],
    "kb": ["--quick"],
    "workers": ["--quick"],
}


def detail(console: Console, report: dict[str, Any]) -> None:
    rows = report["results"]
    keys = [k for k in dict.fromkeys(k for row in rows for k in row) if not k.startswith("_")]
    keys = [k for k in keys if not any(isinstance(row.get(k), dict | list) for row in rows)]
    console.print(results_table(report, keys))


def markdown(reports: list[dict[str, Any]], quick: bool) -> str:
    """The reports of a run as Markdown tables (for bench/README.md)."""
    out = []
    for report in reports:
        rows = report["results"]
        keys = [
            k
            for k in dict.fromkeys(k for row in rows for k in row)
            if not any(isinstance(row.get(k), dict | list) for row in rows)
        ]
        about = ", ".join(
            f"{k} {v}"
            for k, v in report.items()
            if k not in ("benchmark", "results", "targets") and not isinstance(v, dict | list)
        )
        out.append(f"### {report['benchmark']} ({about})\n")
        out.append("| " + " | ".join(keys) + " |")
        out.append("|" + "---|" * len(keys))
        for row in rows:
            out.append("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
        for item in report.get("syncs") or []:
            out.append(f"\ndisk syncs: `{json.dumps(item)}`")
        for key in ("versions", "notes"):
            if report.get(key):
                out.append(f"\n{key}: `{json.dumps(report[key])}`")
        out.append("")
    out.append(f"### Targets{' (quick run)' if quick else ''}\n")
    out.append("| benchmark | target | measured | wanted | met | busy rows |")
    out.append("|---|---|---|---|---|---|")
    for report in reports:
        for t in report.get("targets", []):
            busy = f"{busy_rows(report)}/{len(report['results'])}"
            cells = [report["benchmark"], t["target"], str(t["measured"]), t["wanted"], t["met"]]
            out.append("| " + " | ".join([*cells, busy]) + " |")
    return "\n".join(out) + "\n"


def busy_rows(report: dict[str, Any]) -> int:
    return sum(1 for row in report["results"] if row.get("busy") == "yes")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS))
    p.add_argument(
        "--markdown",
        type=Path,
        nargs="+",
        metavar="RUN.json",
        help="print saved runs as Markdown (a later file's benchmark replaces an earlier one's)",
    )
    args = p.parse_args()
    if args.markdown:
        merged: dict[str, dict[str, Any]] = {}
        quick = False
        for path in args.markdown:
            saved = json.loads(path.read_text())
            quick = quick or saved["quick"]
            merged.update({r["benchmark"]: r for r in saved["reports"]})
        print(markdown(list(merged.values()), quick), end="")
        return 0
    console = Console(width=max(200, Console().width))
    reports: list[dict[str, Any]] = []
    failed = []
    for name in args.only or BENCHMARKS:
        argv = [sys.executable, str(HERE / f"{name}.py"), "--json"]
        if args.quick:
            argv += BENCHMARKS[name]
        console.print(f"[bold]{name}[/bold] {' '.join(argv[2:])}")
        start = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            failed.append(name)
            console.print(f"[red]{name} failed[/red]:\n{done.stderr[-4000:]}")
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError:
            continue  # failed before it could report anything
        report["run_seconds"] = round(time.monotonic() - start)
        reports.append(report)
        detail(console, report)
        for key in ("syncs", "versions", "notes"):
            if report.get(key):
                console.print(f"{key}: {json.dumps(report[key])}")
    title = "targets (ratios within one run)" + (", quick run" if args.quick else "")
    summary = Table("benchmark", "target", "measured", "wanted", "met", "busy rows", title=title)
    for report in reports:
        for t in report.get("targets", []):
            busy = busy_rows(report)
            summary.add_row(
                report["benchmark"],
                t["target"],
                str(t["measured"]),
                t["wanted"],
                t["met"],
                f"{busy}/{len(report['results'])}",
            )
    console.print(summary)
    console.print(
        "busy rows: rows measured while other processes used more than 0.25 of a core on "
        "average (others_cores); treat those figures as provisional."
    )
    out = HERE / ".cache" / "last-run.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = json.dumps({"quick": args.quick, "reports": reports}, indent=2)
    out.write_text(saved)
    out.with_name(time.strftime("run-%Y%m%d-%H%M%S.json")).write_text(saved)
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
