"""SMTP ingest: maildesk against the machine's floor, on the same corpus mail, in one run.

  floor-null     bare aiosmtpd, answers 250 without storing anything
  floor-durable  bare aiosmtpd, commits each raw message to SQLite (WAL, synchronous=FULL)
                 before 250: the least work any durable SMTP ingest can do here
  maildesk       `maildesk serve` (the repository's maildesk.toml: SQLite, its rules,
                 Maildir outbound)

Each runs in its own process and is measured at 1 and at 8 concurrent SMTP clients (client
processes, one connection each). Figures: messages/s accepted; DATA->250 latency (p50/p99);
for maildesk also end-to-end tickets/s (first DATA until every message is on its ticket and
every notification has left the outbox), the latency from a new request's 250 to its
acknowledgement leaving the outbox (p50/p99), peak RSS, and a check that every message is
on the right ticket. A last pass runs maildesk (and the durable floor) under
`strace -f -c -e trace=fsync,fdatasync,syncfs` and counts disk syncs per message, split by the
thread that made them (SMTP ingest, pipeline, outbox sender).

    python bench/smtp_ingest.py [--messages N] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from email.parser import BytesHeaderParser
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
    percentile,
    target,
    vm_hwm_kib,
    work_dir,
    write_config,
)
from corpus import CorpusInfo, CorpusOptions, cached_mails, crlf

Payload = list[tuple[str, bytes, int]]  # (envelope sender, CRLF bytes, thread)

# Run as the daemon's entry point under strace: records which OS thread is which Python
# thread (the pools name theirs md-ingest, md-pipeline, md-sender), then serves.
TRACED_SERVE = """
import json, os, sys, threading, time
def names(path):
    while True:  # replaced whole, never read half written
        seen = {t.native_id: t.name for t in threading.enumerate()}
        with open(path + ".new", "w") as f:
            json.dump(seen, f)
        os.replace(path + ".new", path)
        time.sleep(0.2)
threading.Thread(target=names, args=(sys.argv[1],), daemon=True, name="bench-names").start()
from maildesk.cli import main
sys.exit(main(["serve", "--config", sys.argv[2]]))
"""


def corpus_options(messages: int) -> CorpusOptions:
    """The corpus for SMTP runs.

    Replies carry no ticket tag: with 8 clients the desk numbers tickets in arrival order,
    which the generator cannot know, so replies thread by In-Reply-To/References. Each
    client sends whole threads in order, so an original is accepted before its replies.
    """
    return CorpusOptions(messages=messages, tag_format=None)


# --- clients --------------------------------------------------------------------------------


def _client(index: int, port: int, share: Payload, barrier: Any, results: Any) -> None:
    import smtplib

    out: list[tuple[int, float, float]] = []
    error = ""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            smtp.ehlo()
            barrier.wait()
            for n, (sender, raw, _thread) in enumerate(share):
                smtp.mail(sender)
                smtp.rcpt("support@example.com")
                start = time.perf_counter()
                code, answer = smtp.data(raw)
                latency = time.perf_counter() - start
                if code != 250:
                    raise RuntimeError(f"server answered {code} {answer!r} to DATA")
                out.append((n, latency, time.time()))
    except BaseException as exc:
        error = repr(exc)
        barrier.abort()
    results.put((index, out, error))


def blast(port: int | Sequence[int], payload: Payload, clients: int) -> dict[str, Any]:
    """Send every message over `clients` connections (one process each); time each DATA.

    A thread's messages all go through the same client, in order. With several ports
    (several daemons), client c sends to ports[c % len(ports)].
    """
    ports = [port] if isinstance(port, int) else list(port)
    ctx = multiprocessing.get_context("fork")
    shares: list[Payload] = [[] for _ in range(clients)]
    positions: list[list[int]] = [[] for _ in range(clients)]
    for position, item in enumerate(payload):
        shares[item[2] % clients].append(item)
        positions[item[2] % clients].append(position)
    barrier = ctx.Barrier(clients + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(c, ports[c % len(ports)], share, barrier, results))
        for c, share in enumerate(shares)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=60)
    start = time.time()
    gathered = [results.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [e for _, _, e in gathered if e]
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    accepted_at = [0.0] * len(payload)
    latencies: list[float] = []
    for c, out, _ in gathered:
        for n, latency, at in out:
            accepted_at[positions[c][n]] = at
            latencies.append(latency)
    end = max(accepted_at)
    elapsed = end - start
    return {
        "messages": len(payload),
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(len(payload) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "_start": start,
        "_accepted_at": accepted_at,
    }


# --- floors ---------------------------------------------------------------------------------


def serve_floor(kind: str, port: int, db: Path | None) -> None:
    """The floor server's own process: aiosmtpd in its event loop, as maildesk runs it."""
    from aiosmtpd.smtp import SMTP

    class Null:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    class Durable:
        """One INSERT and COMMIT per message, on the event loop thread, like a minimal MTA."""

        def __init__(self, path: Path) -> None:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(
                "CREATE TABLE raw (id INTEGER PRIMARY KEY, env_from TEXT, rcpt TEXT, raw BLOB)"
            )

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT INTO raw (env_from, rcpt, raw) VALUES (?, ?, ?)",
                (envelope.mail_from, ",".join(envelope.rcpt_tos), envelope.original_content),
            )
            self.db.execute("COMMIT")
            return "250 OK"

    handler: Any = Null() if kind == "null" else Durable(db or Path("floor.db"))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, data_size_limit=50_000_000, hostname="floor", loop=loop),
            host="127.0.0.1",
            port=port,
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("listening", flush=True)
        await stop.wait()
        server.close()
        await server.wait_closed()

    asyncio.run(run())


def wait_listening(log: Path, proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 60
    marker = b"listening"
    while marker not in (log.read_bytes() if log.exists() else b""):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start:\n{log.read_text()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], what: str) -> None:
    """SIGTERM the server; under strace (or py-spy) the traced child gets the signal."""
    wrapped = Path(str(proc.args[0])).name in ("strace", "py-spy")  # type: ignore[index]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if wrapped and children.exists():
        for pid in children.read_text().split():
            os.kill(int(pid), signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    code = proc.wait(120)
    if code != 0:
        raise RuntimeError(f"{what} exited {code}")


def floor_cmd(kind: str, port: int, db: Path) -> list[str]:
    me = str(Path(__file__).resolve())
    return [sys.executable, me, "--floor-server", kind, "--port", str(port), "--db", str(db)]


def run_floor(kind: str, payload: Payload, clients: int, tmp: Path) -> dict[str, Any]:
    port = free_port()
    log = tmp / f"floor-{kind}-{clients}.log"
    db = tmp / f"floor-{kind}-{clients}.db"
    with log.open("wb") as out:
        proc = subprocess.Popen(floor_cmd(kind, port, db), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(log, proc, port)
        load = Load(proc.pid)
        result = blast(port, payload, clients)
        row = mark({"target": f"floor-{kind}", "clients": clients, **result}, load)
        rss = vm_hwm_kib(proc.pid)
    finally:
        stop(proc, f"floor-{kind}")
    for key in ("_start", "_accepted_at"):
        row.pop(key)
    row["peak_rss_mib"] = round(rss / 1024, 1)
    return row


# --- maildesk -------------------------------------------------------------------------------


def wait_processed(db_path: Path, count: int, timeout: float = 600) -> dict[str, int]:
    """Until every accepted message is processed and the outbox has nothing queued."""
    deadline = time.monotonic() + timeout
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        while True:
            raw, pending, queued, tickets = db.execute(
                "SELECT (SELECT count(*) FROM raw_messages),"
                " (SELECT count(*) FROM raw_messages WHERE status = 'pending'),"
                " (SELECT count(*) FROM outbox WHERE status = 'queued'),"
                " (SELECT count(*) FROM tickets)"
            ).fetchone()
            if raw >= count and pending == 0 and queued == 0:
                statuses = dict(
                    db.execute("SELECT status, count(*) FROM raw_messages GROUP BY status")
                )
                return {"tickets": tickets, **{f"raw_{k}": v for k, v in statuses.items()}}
            if time.monotonic() > deadline:
                raise RuntimeError(f"after {timeout}s: {raw} stored, {pending} pending, {queued}")
            time.sleep(0.05)
    finally:
        db.close()


def ack_latencies(outbox: Path, accepted: dict[str, float]) -> tuple[list[float], float]:
    """Per acknowledgement: its file's mtime minus the 250 of the request it answers.

    Also returns the mtime of the last notification to leave the outbox.
    """
    parser = BytesHeaderParser()
    latencies = []
    last = 0.0
    for sub in ("new", "cur"):
        for path in (outbox / sub).iterdir() if (outbox / sub).exists() else []:
            mtime = path.stat().st_mtime
            last = max(last, mtime)
            with path.open("rb") as f:
                head = parser.parse(f)
            if head.get("Auto-Submitted", "").strip() != "auto-replied":
                continue
            answered = accepted.get(str(head.get("In-Reply-To", "")).strip())
            if answered is not None:
                latencies.append(mtime - answered)
    return latencies, last


def run_maildesk(
    payload: Payload, mails: list[Any], info: CorpusInfo, clients: int, tmp: Path
) -> dict[str, Any]:
    work = tmp / f"maildesk-{clients}"
    port = free_port()
    config = write_config(work, port=port)
    log = work / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maildesk", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    try:
        wait_listening(log, proc, port)
        load = Load(proc.pid)
        result = blast(port, payload, clients)
        start, accepted_at = result.pop("_start"), result.pop("_accepted_at")
        counts = wait_processed(work / "var" / "maildesk.db", len(payload))
        row = mark({"target": "maildesk", "clients": clients, **result}, load)
        rss = vm_hwm_kib(proc.pid)
    finally:
        stop(proc, "maildesk serve")
    accepted = {m.message_id: at for m, at in zip(mails, accepted_at, strict=True)}
    latencies, last = ack_latencies(work / "var" / "outbox", accepted)
    check = check_threads(maildesk_threads(f"sqlite:///{work / 'var' / 'maildesk.db'}"), info)
    row["tickets_per_s"] = round(len(payload) / (last - start), 1)
    row["ack_p50_ms"] = round(percentile(latencies, 0.50) * 1000, 1)
    row["ack_p99_ms"] = round(percentile(latencies, 0.99) * 1000, 1)
    row["acks"] = len(latencies)
    row["peak_rss_mib"] = round(rss / 1024, 1)
    row["tickets"] = check["tickets"]
    row["verified"] = check["verified"]
    if check["verified"] != "yes" or len(latencies) != info.originals:
        row["check"] = {**check, **counts, "acks": len(latencies)}
    return row


# --- disk syncs -----------------------------------------------------------------------------

SYNC_LINE = re.compile(r"^(\d+)\s+(fsync|fdatasync|syncfs)\((\d+)(?:<([^>]*)>)?")


def strace_argv(out: Path) -> list[str]:
    return [
        "strace", "-f", "-C", "--seccomp-bpf", "-y", "-e", "trace=fsync,fdatasync,syncfs",
        "-o", str(out),
    ]  # fmt: skip


def count_syncs(trace: Path, names: dict[str, str]) -> tuple[Counter[str], Counter[str]]:
    """Syncs by thread role and by file kind, from strace's per-call lines."""
    by_thread: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    for line in trace.read_text(errors="replace").splitlines():
        m = SYNC_LINE.match(line)
        if not m:
            continue
        tid, _call, _fd, path = m.groups()
        role = re.sub(r"_\d+$", "", names.get(tid, "other"))
        by_thread[role] += 1
        path = path or ""
        kind = (
            "db-wal"
            if path.endswith("-wal")
            else "db"
            if path.endswith(".db")
            else "outbox"
            if "outbox" in path
            else path.rsplit("/", 1)[-1] or "unknown"
        )
        by_file[f"spool-{kind}" if "-spool.db" in path else kind] += 1
    return by_thread, by_file


def syncs_maildesk(payload: Payload, tmp: Path) -> dict[str, Any]:
    """maildesk serve under strace, one client: disk syncs per message, by thread."""
    work = tmp / "maildesk-strace"
    port = free_port()
    config = write_config(work, port=port)
    trace, names_file, log = work / "strace.txt", work / "threads.json", work / "serve.log"
    cmd = [*strace_argv(trace), sys.executable, "-c", TRACED_SERVE, str(names_file), str(config)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    try:
        wait_listening(log, proc, port)
        time.sleep(0.5)  # startup syncs (migrations) finish before the baseline is read
        before = _trace_lines(trace)
        blast(port, payload, 1)
        wait_processed(work / "var" / "maildesk.db", len(payload))
        names = json.loads(names_file.read_text())
    finally:
        stop(proc, "maildesk serve under strace")
    by_thread, by_file = count_syncs(_tail(trace, before), names)
    n = len(payload)
    ingest = by_thread.get("md-ingest", 0) + by_thread.get("MainThread", 0)
    return {
        "target": "maildesk",
        "messages": n,
        "syncs_per_msg": round(sum(by_thread.values()) / n, 2),
        "before_250": round(ingest / n, 2),
        "pipeline": round(by_thread.get("md-pipeline", 0) / n, 2),
        "sender": round(by_thread.get("md-sender", 0) / n, 2),
        "by_file": dict(by_file),
        "by_thread": dict(by_thread),
    }


def syncs_floor(payload: Payload, tmp: Path) -> dict[str, Any]:
    port = free_port()
    trace, log = tmp / "floor-strace.txt", tmp / "floor-strace.log"
    cmd = [*strace_argv(trace), *floor_cmd("durable", port, tmp / "floor-strace.db")]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(log, proc, port)
        before = _trace_lines(trace)
        blast(port, payload, 1)
    finally:
        stop(proc, "floor under strace")
    by_thread, by_file = count_syncs(_tail(trace, before), {})
    n = len(payload)
    total = sum(by_thread.values())
    return {
        "target": "floor-durable",
        "messages": n,
        "syncs_per_msg": round(total / n, 2),
        "before_250": round(total / n, 2),
        "by_file": dict(by_file),
    }


def _trace_lines(trace: Path) -> int:
    return len(trace.read_text(errors="replace").splitlines()) if trace.exists() else 0


def _tail(trace: Path, skip: int) -> Path:
    out = trace.with_suffix(".run.txt")
    lines = trace.read_text(errors="replace").splitlines()[skip:]
    out.write_text("\n".join(lines) + "\n")
    return out


# --- report ---------------------------------------------------------------------------------


def targets(rows: list[dict[str, Any]], syncs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def get(name: str, clients: int) -> dict[str, Any]:
        return next(r for r in rows if r["target"] == name and r["clients"] == clients)

    md, null, durable = get("maildesk", 8), get("floor-null", 8), get("floor-durable", 8)
    accept = round(md["msgs_per_s"] / durable["msgs_per_s"], 2)
    accept_null = round(md["msgs_per_s"] / null["msgs_per_s"], 2)
    e2e = round(md["tickets_per_s"] / durable["msgs_per_s"], 2)
    sync = next((s for s in syncs if s["target"] == "maildesk"), None)
    out = [
        target("SMTP acceptance / floor-durable, 8 clients", accept, ">= 0.65", accept >= 0.65),
        target("SMTP acceptance / floor-null, 8 clients", accept_null, "(for reference)", None),
        target("end to end tickets/s / floor-durable, 8 clients", e2e, ">= 0.4", e2e >= 0.4),
        target("p99 DATA->250 ms, 8 clients", md["p99_ms"], "<= 20", md["p99_ms"] <= 20),
    ]
    if sync is not None:
        total = sync["syncs_per_msg"]
        out.append(target("disk syncs per message, SMTP path (all threads)", total, "<= 2",
                          total <= 2))  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=None, help="default 1000 (300 quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-strace", action="store_true", help="skip the disk-sync pass")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--floor-server", choices=["null", "durable"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        serve_floor(args.floor_server, args.port, args.db)
        return 0
    count = args.messages or (300 if args.quick else 1000)
    mails, info = cached_mails(corpus_options(count))
    payload = [(m.sender, crlf(m.raw), m.thread) for m in mails]
    results: list[dict[str, Any]] = []
    syncs: list[dict[str, Any]] = []
    with work_dir("smtp", args.keep) as tmp:
        for clients in (1, 8):
            results.append(run_floor("null", payload, clients, tmp))
            results.append(run_floor("durable", payload, clients, tmp))
            results.append(run_maildesk(payload, mails, info, clients, tmp))
        if not args.no_strace:
            if shutil.which("strace") is None:
                print(
                    "strace not found (apt-get install strace): no disk-sync pass", file=sys.stderr
                )
            else:
                sample = payload[: min(len(payload), 300)]
                syncs.append(syncs_floor(sample, tmp))
                syncs.append(syncs_maildesk(sample, tmp))
    report = {
        "benchmark": "smtp_ingest",
        "messages": len(payload),
        "originals": info.originals,
        "replies": info.replies,
        "mean_size_bytes": int(statistics.mean(len(r) for _, r, _ in payload)),
        "machine": machine(),
        "results": results,
        "syncs": syncs,
        "targets": targets(results, syncs),
    }
    columns = [
        "target", "clients", "msgs_per_s", "p50_ms", "p99_ms", "tickets_per_s", "ack_p50_ms",
        "ack_p99_ms", "peak_rss_mib", "verified", "others_cores", "busy",
    ]  # fmt: skip
    emit(report, args.json, columns)
    if not args.json:
        for s in syncs:
            about = ", ".join(f"{k} {v}" for k, v in s.items() if k != "target")
            print(f"disk syncs/message, {s['target']}: {s['syncs_per_msg']} ({about})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
