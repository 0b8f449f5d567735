"""Memory: peak RSS of `maildesk import` for one huge attachment and for big mailboxes.

  startup          `maildesk import` of an empty mbox: interpreter, libraries, database
  attachment-25MB  one message carrying a 25,000,000-byte attachment (about 34 MB as
                   base64); the ticket must end up with the attachment, byte-exact in size;
                   its target is the peak above start-up, per byte of attachment
  mbox-1000        the corpus mailbox, 1,000 messages
  mbox-50000       the corpus mailbox, 50,000 messages (--quick: 5,000)

Peak RSS is the process's VmHWM (wait4, `process_peak_mib`), or the most the import and the
process parsing ahead for it held together (RSS summed, sampled every 100 ms), if that is
more. The samples also show, as `rss_10pct`/`rss_end`, whether memory grows with the number
of messages read.

    python bench/memory.py [--quick] [--large 50000] [--json]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from common import (
    Load,
    check_run,
    check_threads,
    emit,
    machine,
    maildesk_bin,
    maildesk_threads,
    mark,
    run_measured,
    target,
    work_dir,
    write_config,
)
from corpus import CACHE, CorpusOptions, big_message, cached_mbox

ATTACHMENT = 25_000_000


def big_mbox() -> Path:
    path = CACHE / "corpus" / f"big-{ATTACHMENT}.mbox"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"From carol.smith@client.example.org Mon Mar 04 07:30:00 2024\n")
        with tmp.open("ab") as out:
            out.write(big_message(ATTACHMENT) + b"\n")
        tmp.replace(path)
    return path


def import_sampled(config: Path, mbox: Path, log: Path) -> dict[str, Any]:
    """Run `maildesk import`: its peak RSS, and its RSS sampled every 100 ms."""
    samples: list[tuple[float, int]] = []
    argv = [maildesk_bin(), "import", "--quiet", "--config", str(config), str(mbox)]
    run = run_measured(argv, cwd=config.parent, log=log, rss_samples=samples)
    check_run(run, "maildesk import", log)
    tenth = [kib for at, kib in samples if at >= run.seconds * 0.1]
    tree = max((kib for _, kib in samples), default=0) / 1024
    return {
        "seconds": round(run.seconds, 2),
        # The import and the process parsing ahead for it (sampled), if that is more.
        "peak_rss_mib": round(max(run.peak_rss_mib, tree), 1),
        "process_peak_mib": run.peak_rss_mib,
        "rss_10pct_mib": round(tenth[0] / 1024, 1) if tenth else "",
        "rss_end_mib": round(samples[-1][1] / 1024, 1) if samples else "",
    }


def run_case(name: str, mbox: Path | None, work: Path, info: Any = None) -> dict[str, Any]:
    here = work / name
    config = write_config(here)
    log = here / "maildesk.log"
    init = run_measured([maildesk_bin(), "init", "--config", str(config)], cwd=here, log=log)
    check_run(init, "maildesk init", log)
    if mbox is None:
        mbox = here / "empty.mbox"
        mbox.write_bytes(b"")
    load = Load()
    row: dict[str, Any] = {"case": name, **import_sampled(config, mbox, log)}
    mark(row, load)
    db = here / "var" / "maildesk.db"
    if info is not None:
        row["messages"] = info.messages
        row["msgs_per_s"] = round(info.messages / row["seconds"], 1)
        check = check_threads(maildesk_threads(f"sqlite:///{db}"), info)
        row["verified"] = check["verified"]
    elif name.startswith("attachment"):
        con = sqlite3.connect(db)
        sizes = [s for (s,) in con.execute("SELECT size FROM attachments")]
        con.close()
        row["messages"] = 1
        row["verified"] = "yes" if sizes == [ATTACHMENT] else f"NO (attachments {sizes})"
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5,000 instead of 50,000 messages")
    p.add_argument("--large", type=int, help="messages in the big mailbox (50,000)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    large = args.large or (5_000 if args.quick else 50_000)
    rows = []
    with work_dir("memory", args.keep) as work:
        rows.append(run_case("startup", None, work))
        rows.append(run_case("attachment-25MB", big_mbox(), work))
        for count in (1_000, large):
            mbox, info = cached_mbox(CorpusOptions(messages=count))
            rows.append(run_case(f"mbox-{count}", mbox, work, info))
    by = {r["case"]: r for r in rows}
    small, big = by["mbox-1000"], by[f"mbox-{large}"]
    peak = max(small["peak_rss_mib"], big["peak_rss_mib"])
    growth = round(big["peak_rss_mib"] / small["peak_rss_mib"], 2)
    # What the attachment costs: its peak above a bare start-up, per byte of attachment.
    above = by["attachment-25MB"]["peak_rss_mib"] - by["startup"]["peak_rss_mib"]
    per_byte = round(above * 2**20 / ATTACHMENT, 2)
    flat_name = f"peak RSS mbox-{large} / mbox-1000" + ("" if large >= 50_000 else " (50,000)")
    report = {
        "benchmark": "memory",
        "large": large,
        "machine": machine(),
        "results": rows,
        "targets": [
            target("peak RSS during import of a mailbox, MiB", peak, "<= 64", peak <= 64),
            target(
                "25 MB attachment: peak RSS above start-up / its size",
                per_byte,
                "<= 3",
                per_byte <= 3,
            ),
            target(flat_name, growth, "flat (<= 1.1)", growth <= 1.1),
        ],
    }
    columns = [
        "case", "messages", "seconds", "msgs_per_s", "peak_rss_mib", "process_peak_mib",
        "rss_10pct_mib",
        "rss_end_mib", "verified", "others_cores", "busy",
    ]  # fmt: skip
    emit(report, args.json, columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
