"""The report as CSV tables: one file per table in a directory, or the same files in a zip."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

# The tables, in the order they are written; "summary" is one row with the period's columns.
TABLES = (
    "summary",
    "daily",
    "times",
    "sla",
    "breaches",
    "top_categories",
    "top_requesters",
    "rules",
)


def tables(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Table name -> rows (dicts with the same keys), as the CSV files hold them."""
    period = {f"period_{k}": v for k, v in report["period"].items()}
    out = {"summary": [{**period, "generated_at": report["generated_at"], **report["summary"]}]}
    out.update({name: list(report[name]) for name in TABLES[1:]})
    if report.get("csat") is not None:
        out["csat"] = [report["csat"]] if isinstance(report["csat"], dict) else report["csat"]
    return out


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV with a header line (empty cells for nulls); an empty table is empty."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(report: dict[str, Any], out: Path) -> list[Path]:
    """One CSV per table into directory `out` (made if missing), or into a zip when `out`
    ends in .zip; returns the files written (for a zip, the zip)."""
    files = {f"{name}.csv": csv_text(rows) for name, rows in tables(report).items()}
    if out.suffix.lower() == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in files.items():
                # A fixed date keeps the zip the same for the same report.
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, text.encode("utf-8"))
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8", newline="")
        written.append(path)
    return written
