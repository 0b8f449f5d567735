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
    console = Console(width=200)
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
        rows = report["results"]
        keys = list(dict.fromkeys(k for row in rows for k in row))
        about = ", ".join(
            f"{k} {v}" for k, v in report.items() if k not in ("benchmark", "results")
        )
        table = Table(*keys, title=f"{report['benchmark']} ({about})")
        for row in rows:
            table.add_row(*(str(row.get(k, "")) for k in keys))
        console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
