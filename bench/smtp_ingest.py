"""SMTP ingest: maildesk against the machine's floor, on the same messages, in one run.

  floor-null     bare aiosmtpd, answers 250 without storing anything
  floor-durable  bare aiosmtpd, commits each raw message to SQLite (WAL, synchronous=FULL)
                 before 250: the least work any durable SMTP ingest can do here
  maildesk       `maildesk serve` (SQLite, the example rules, Maildir outbound)

Each at 1 and 8 concurrent SMTP clients. Figures: messages/s accepted, latency from the end
of DATA to the 250 (p50/p99); for maildesk also time until every message is a ticket and
its acknowledgement is written, and the daemon's peak RSS.

    python bench/smtp_ingest.py [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
SUBJECTS = [
    "Printer on floor {n} jams",
    "VPN drops every {n} minutes",
    "Mail server down?",
    "Need access to share {n}",
    "Laptop battery swollen",
    "Password reset for account {n}",
    "Outage: wiki returns 502",
    "New starter on Monday ({n})",
    "Monitor flickers",
    "Wi-Fi slow",
]
WORDS = [
    "please",
    "help",
    "the",
    "system",
    "since",
    "this",
    "morning",
    "error",
    "again",
    "users",
    "cannot",
    "work",
]


def corpus(count: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """Small, varied help-desk mail; every tenth carries a 50 KB attachment."""
    rnd = random.Random(seed)
    out = []
    for n in range(count):
        msg = EmailMessage()
        sender = f"user{rnd.randrange(200)}@client{rnd.randrange(5)}.example.org"
        msg["From"] = sender
        msg["To"] = "support@example.com"
        msg["Subject"] = rnd.choice(SUBJECTS).format(n=n)
        msg["Message-ID"] = f"<bench-{seed}-{n}@client.example.org>"
        body = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(100, 600)))
        msg.set_content(body)
        if n % 10 == 0:
            msg.add_attachment(
                rnd.randbytes(50_000),
                maintype="application",
                subtype="octet-stream",
                filename="dump.bin",
            )
        out.append((sender, msg.as_bytes(policy=SMTP)))  # CRLF line ends, as clients send
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def blast(port: int, messages: list[tuple[str, bytes]], clients: int) -> dict[str, Any]:
    """Send every message over `clients` connections; time each DATA→250."""
    latencies: list[float] = []
    done_at: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client(share: list[tuple[str, bytes]]) -> None:
        try:
            send(share)
        except BaseException as exc:
            errors.append(exc)

    def send(share: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.ehlo()
            for sender, raw in share:
                smtp.mail(sender)
                smtp.rcpt("support@example.com")
                start = time.perf_counter()
                code, _ = smtp.data(raw)
                end = time.perf_counter()
                if code != 250:
                    raise RuntimeError(f"server answered {code} to DATA")
                with lock:
                    latencies.append(end - start)
                    done_at.append(time.time())

    shares = [messages[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=client, args=(s,)) for s in shares]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]!r}")
    return {
        "messages": len(messages),
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(len(messages) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "_done_at": done_at,
    }


class NullHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


class DurableHandler:
    """One INSERT and COMMIT per message, on the event loop thread, like a minimal MTA."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, env_from TEXT, raw BLOB)")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.db.execute("BEGIN")
        self.db.execute(
            "INSERT INTO raw (env_from, raw) VALUES (?, ?)",
            (envelope.mail_from, envelope.original_content),
        )
        self.db.execute("COMMIT")
        return "250 OK"


def run_floor(
    name: str,
    handler_for: Callable[[Path], Any],
    messages: list[tuple[str, bytes]],
    clients: int,
    tmp: Path,
) -> dict[str, Any]:
    port = free_port()
    handler = handler_for(tmp / f"{name}-{clients}.db")
    controller = Controller(handler, hostname="127.0.0.1", port=port, data_size_limit=50_000_000)
    controller.start()
    try:
        result = blast(port, messages, clients)
    finally:
        controller.stop()
    result.pop("_done_at")
    return {"target": name, "clients": clients, **result}


def run_maildesk(messages: list[tuple[str, bytes]], clients: int, tmp: Path) -> dict[str, Any]:
    work = tmp / f"maildesk-{clients}"
    work.mkdir()
    port = free_port()
    config = work / "maildesk.toml"
    config.write_text(
        (REPO / "maildesk.toml")
        .read_text(encoding="utf-8")
        .replace('listen = "127.0.0.1:2525"', f'listen = "127.0.0.1:{port}"'),
        encoding="utf-8",
    )
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "maildesk", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    try:
        deadline = time.monotonic() + 60
        while b"listening on" not in (work / "serve.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((work / "serve.log").read_text())
            time.sleep(0.05)
        result = blast(port, messages, clients)
        accepted_at = result.pop("_done_at")
        db = sqlite3.connect(f"file:{work / 'var' / 'maildesk.db'}?mode=ro", uri=True)
        new = work / "var" / "outbox" / "new"
        deadline = time.monotonic() + 600
        while True:
            tickets = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
            acks = db.execute(
                "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement' AND status = 'sent'"
            ).fetchone()[0]
            if tickets >= len(messages) and acks >= len(messages):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {tickets} tickets, {acks} acknowledgements")
            time.sleep(0.05)
        all_done = time.time()
        db.close()
        ack_times = sorted(
            p.stat().st_mtime
            for p in new.iterdir()
            if b"Auto-Submitted: auto-replied" in p.read_bytes()[:2000]
        )
        ack_latency = [a - s for a, s in zip(ack_times, sorted(accepted_at), strict=False)]
        rss_kb = 0
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss_kb = int(line.split()[1])
        end_to_end = all_done - (min(accepted_at) - result["seconds"] / len(messages))
        return {
            "target": "maildesk",
            "clients": clients,
            **result,
            "tickets_per_s": round(len(messages) / end_to_end, 1),
            "ack_p50_ms": round(percentile(ack_latency, 0.50) * 1000, 1),
            "ack_p99_ms": round(percentile(ack_latency, 0.99) * 1000, 1),
            "peak_rss_mb": round(rss_kb / 1024, 1),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log.close()
        if code != 0:
            raise RuntimeError(f"maildesk serve exited {code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    messages = corpus(args.messages)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for clients in (1, 8):
            results.append(
                run_floor("floor-null", lambda _p: NullHandler(), messages, clients, tmp)
            )
            results.append(run_floor("floor-durable", DurableHandler, messages, clients, tmp))
            results.append(run_maildesk(messages, clients, tmp))
    report = {
        "benchmark": "smtp_ingest",
        "messages": len(messages),
        "mean_size_bytes": int(statistics.mean(len(r) for _, r in messages)),
        "cpus": os.cpu_count(),
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    columns = [
        "target",
        "clients",
        "msgs_per_s",
        "p50_ms",
        "p99_ms",
        "tickets_per_s",
        "ack_p50_ms",
        "ack_p99_ms",
        "peak_rss_mb",
    ]
    table = Table(
        *columns,
        title=f"SMTP ingest, {len(messages)} messages (mean {report['mean_size_bytes']} bytes)",
    )
    for row in results:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
