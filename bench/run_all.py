"""Run every benchmark in bench/ (each with --json) and print one table. `make bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    table = Table(
        "benchmark",
        "target",
        "clients",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "tickets/s",
        "ack p50 ms",
        "ack p99 ms",
        "peak RSS MB",
        title="maildesk benchmarks",
    )
    failed = 0
    for script in scripts:
        done = subprocess.run(
            [sys.executable, str(script), "--json"], capture_output=True, text=True
        )
        if done.returncode != 0:
            failed += 1
            print(f"{script.name} failed:\n{done.stderr}", file=sys.stderr)
            continue
        report = json.loads(done.stdout)
        for row in report["results"]:
            table.add_row(
                report["benchmark"],
                *(
                    str(row.get(key, ""))
                    for key in (
                        "target",
                        "clients",
                        "msgs_per_s",
                        "p50_ms",
                        "p99_ms",
                        "tickets_per_s",
                        "ack_p50_ms",
                        "ack_p99_ms",
                        "peak_rss_mb",
                    )
                ),
            )
    Console(width=200).print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
