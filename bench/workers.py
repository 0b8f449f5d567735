"""`serve --workers N`: end-to-end tickets/s with the pipeline in N worker processes.

The same generated corpus (smtp_ingest.py's: threads sent in order by 8 SMTP client
processes) goes, in one run, to:

  postgresql  one `maildesk serve` with --workers 0 (the pipeline thread), 1, 2 and 4;
              two `maildesk serve` processes (--workers 0 each) sharing the database,
              the clients split between them
  sqlite      one `maildesk serve` with --workers 0 and 1 (more is refused on SQLite)

each on a database of its own. Figures: messages/s accepted over SMTP, end-to-end
tickets/s (first DATA until every message is processed and the outbox has nothing queued),
DATA->250 latency (p50/p99), and a check that every message is on the right ticket. The
listener and its workers are this run's processes in `others_cores`; PostgreSQL's work
counts as other work there (as in every bench script).

    python bench/workers.py [--messages N] [--quick] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    Load,
    check_threads,
    emit,
    free_port,
    machine,
    maildesk_threads,
    mark,
    work_dir,
    write_config,
)
from corpus import cached_mails, crlf
from scale import pg_available, pg_create, pg_drop
from smtp_ingest import Payload, blast, corpus_options, stop, wait_listening

CLIENTS = 8
# (backend, serve processes, --workers of each)
SETUPS = [
    ("postgresql", 1, 0),
    ("postgresql", 1, 1),
    ("postgresql", 1, 2),
    ("postgresql", 1, 4),
    ("postgresql", 2, 0),
    ("sqlite", 1, 0),
    ("sqlite", 1, 1),
]


def wait_done(db_url: str, count: int, timeout: float = 900) -> float:
    """Poll until every accepted message is processed and nothing is queued; the time."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    deadline = time.monotonic() + timeout
    sql = text(
        "SELECT (SELECT count(*) FROM raw_messages),"
        " (SELECT count(*) FROM raw_messages WHERE status = 'pending'),"
        " (SELECT count(*) FROM outbox WHERE status = 'queued')"
    )
    try:
        while True:
            with engine.connect() as conn:
                raw, pending, queued = conn.execute(sql).one()
            if raw >= count and pending == 0 and queued == 0:
                return time.time()
            if time.monotonic() > deadline:
                raise RuntimeError(f"after {timeout}s: {raw} stored, {pending} pending, {queued}")
            time.sleep(0.05)
    finally:
        engine.dispose()


def start_serves(
    work: Path, db_url: str, serves: int, workers: int
) -> list[tuple[subprocess.Popen[bytes], int, Path]]:
    started = []
    taken: set[int] = set()
    for i in range(serves):
        port, http = _ports(taken)
        config = write_config(work / f"serve{i}", db_url=db_url, port=port)
        # HTTP on a port chosen here too: one the kernel picked could be another's SMTP port
        text = config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{http}"')
        config.write_text(text)
        log = config.parent / "serve.log"
        argv = [sys.executable, "-m", "maildesk", "serve", "--config", str(config)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*argv, "--workers", str(workers)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=config.parent,
            )
        started.append((proc, port, log))
    for proc, port, log in started:
        wait_listening(log, proc, port)
        deadline = time.monotonic() + 120  # the workers up too: their start is not measured
        while log.read_bytes().count(b"ready (pid") < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
    return started


def _ports(taken: set[int]) -> tuple[int, int]:
    """Two free ports, neither taken already (SMTP and HTTP of one daemon)."""
    found: list[int] = []
    while len(found) < 2:
        port = free_port()
        if port not in taken:
            taken.add(port)
            found.append(port)
    return found[0], found[1]


def run_setup(
    backend: str, serves: int, workers: int, payload: Payload, info: Any, tmp: Path
) -> dict[str, Any]:
    work = tmp / f"{backend}-{serves}x{workers}"
    name = f"maildesk_bench_workers_{serves}x{workers}"
    if backend == "postgresql":
        db_url = pg_create(name)
    else:
        work.mkdir(parents=True, exist_ok=True)
        db_url = f"sqlite:///{work / 'maildesk.db'}"
    try:
        init = work / "serve0"
        config = write_config(init, db_url=db_url, port=free_port())
        subprocess.run(
            [sys.executable, "-m", "maildesk", "init", "--config", str(config)],
            cwd=init,
            check=True,
            capture_output=True,
        )
        started = start_serves(work, db_url, serves, workers)
        try:
            pids = [p.pid for p, _, _ in started]
            load = Load(*pids)
            result = blast([port for _, port, _ in started], payload, CLIENTS)
            start = result.pop("_start")
            result.pop("_accepted_at")
            end = wait_done(db_url, len(payload))
            row = mark(
                {
                    "database": backend,
                    "serve": serves,
                    "workers": workers,
                    **result,
                    "tickets_per_s": round(len(payload) / (end - start), 1),
                    "e2e_seconds": round(end - start, 1),
                },
                load,
            )
        finally:
            for proc, _, _ in started:
                stop(proc, f"maildesk serve --workers {workers}")
        check = check_threads(maildesk_threads(db_url), info)
        row["tickets"] = check["tickets"]
        row["verified"] = check["verified"]
        if check["verified"] != "yes":
            row["check"] = check
        return row
    finally:
        if backend == "postgresql":
            pg_drop(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=None, help="default 1000 (300 quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    count = args.messages or (300 if args.quick else 1000)
    mails, info = cached_mails(corpus_options(count))
    payload = [(m.sender, crlf(m.raw), m.thread) for m in mails]
    notes = []
    setups = SETUPS
    if not pg_available():
        notes.append("PostgreSQL not reachable ($MAILDESK_BENCH_PG_URL): its rows skipped")
        setups = [s for s in SETUPS if s[0] != "postgresql"]
    results = []
    with work_dir("workers", args.keep) as tmp:
        for backend, serves, workers in setups:
            try:
                results.append(run_setup(backend, serves, workers, payload, info, tmp))
            except Exception as exc:  # the other rows still count; this one says why not
                print(f"{backend} {serves}x{workers}: {exc}", file=sys.stderr)
                failed = {"database": backend, "serve": serves, "workers": workers}
                results.append({**failed, "verified": f"run failed: {str(exc)[:200]}"})
    report = {
        "benchmark": "workers",
        "messages": len(payload),
        "clients": CLIENTS,
        "machine": machine(),
        "results": results,
        "notes": notes,
    }
    columns = [
        "database", "serve", "workers", "msgs_per_s", "tickets_per_s", "e2e_seconds", "p50_ms",
        "p99_ms", "verified", "others_cores", "busy",
    ]  # fmt: skip
    emit(report, args.json, columns)
    return 1 if any(str(r.get("verified")).startswith("run failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
