"""Soak: many SMTP clients against `maildesk serve` for minutes, then count everything.

    python bench/soak.py                       # 20 clients, 40 msgs/s, 10 minutes, SQLite
    python bench/soak.py --minutes 0.5 --json  # a short run, machine-readable
    python bench/soak.py --rate 0 --minutes 2  # unpaced: as fast as the desk answers 250
    python bench/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1/soak
    python bench/soak.py --minutes 2 --resets 0.1  # 10% of clients reset mid-DATA or after "."

`maildesk serve` runs as a real process with its outbound mail going to a local aiosmtpd
sink. Each client keeps one SMTP connection and sends, together at --rate messages/s (or,
with --rate 0, as fast as it is answered), new requests, replies (--reply-ratio) to its
own earlier messages, which must thread onto the same ticket, and agent replies with
commands (--agent-ratio); with --resets, a share of the new requests come from clients
that reset the connection mid-DATA or right after the final dot. Reported: accepted
messages per second, SMTP latency (DATA sent to the 250) p50/p99/max, errors by kind, the
daemon's RSS over time (and whether it grew), and after the daemon has drained: tickets,
inbound messages and notifications in the store against what was sent and answered 250
(`lost`: answered 250 but not stored). Exit status 1 when a count does not match or a
message was refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from maildesk.store.models import Message, OutboxEntry, RawMessage, Ticket  # noqa: E402
from maildesk.store.spool import Spool, open_spool  # noqa: E402

SUBJECTS = [
    "Printer on floor {n} jams", "VPN drops every {n} minutes", "Need access to share {n}",
    "Laptop battery swollen", "Password reset for account {n}", "Monitor flickers",
    "Wi-Fi slow in room {n}", "Outage: wiki returns 502", "New starter on Monday ({n})",
]  # fmt: skip
WORDS = ["please", "help", "the", "system", "since", "this", "morning", "error", "again",
         "users", "cannot", "work"]  # fmt: skip

CONFIG = """
[desk]
name = "Soak Desk"
ref_prefix = "SK"
address = "support@example.com"

[database]
url = "{url}"

[smtp]
listen = "127.0.0.1:{port}"
accept = ["support@example.com"]
max_message_size = "10MB"

[outbound]
transport = "smtp"
host = "127.0.0.1"
port = {sink_port}
backoff = "1s"
max_backoff = "5s"
max_attempts = 20

[notify]
auto_replies_per_hour = 0
new_tickets_per_hour = 0
per_ticket_per_hour = 0

[security]
trusted_authserv_ids = ["mx.soak.example"]

[[agents]]
email = "alice@example.com"
name = "Alice"
queues = ["it"]

[[queues]]
name = "it"
default = true
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- what the clients send -------------------------------------------------------------------


def new_request(rnd: random.Random, client: int, n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"User {client}-{n % 40} <user{client}-{n % 40}@client.example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = rnd.choice(SUBJECTS).format(n=n)
    msg["Message-ID"] = f"<soak-{client}-{n}@client.example.org>"
    msg.set_content(" ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(30, 400))))
    if rnd.random() < 0.1:
        msg.add_attachment(rnd.randbytes(20_000), maintype="application",
                           subtype="octet-stream", filename="screenshot.png")  # fmt: skip
    return msg


Sent = tuple[str, str, str]  # From, Subject, Message-ID of a request a client sent


def reply_to(rnd: random.Random, client: int, n: int, original: Sent) -> EmailMessage:
    sender, subject, message_id = original
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = f"Re: {subject}"
    msg["Message-ID"] = f"<soak-{client}-{n}@client.example.org>"
    msg["In-Reply-To"] = message_id
    msg["References"] = message_id
    msg.set_content("Any news? " + " ".join(rnd.choice(WORDS) for _ in range(20)))
    return msg


AGENT_REPLIES = [
    "#priority P2\nLooking into it now.",
    "#tag +soak\n#status on-hold\nWaiting on the vendor.",
    "#note checked the logs, nothing yet",
    "#assign me\nI will take this one; please try again in ten minutes.",
    "#type request\n#category hardware\nOrdered a replacement.",
]


def agent_command(rnd: random.Random, client: int, n: int, original: Sent) -> EmailMessage:
    """An agent's answer to a request, with commands at the top. It is proven by a trusted
    Authentication-Results header (as the desk's own mail server would add) and threads by
    In-Reply-To to the request, which the client sent (and got 250 for) before."""
    _sender, subject, message_id = original
    msg = EmailMessage()
    msg["Authentication-Results"] = "mx.soak.example; dmarc=pass header.from=example.com"
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"Re: {subject}"
    msg["Message-ID"] = f"<soak-agent-{client}-{n}@example.com>"
    msg["In-Reply-To"] = message_id
    msg["References"] = message_id
    msg.set_content(rnd.choice(AGENT_REPLIES))
    return msg


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    new: int = 0
    replies: int = 0
    agent: int = 0
    resets: Counter[str] = field(default_factory=Counter)  # "mid-data", "after-dot"
    accepted_ids: set[str] = field(default_factory=set)  # Message-IDs answered 250
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.latencies.append(seconds)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1

    def reset(self, when: str) -> None:
        with self.lock:
            self.resets[when] += 1


def send_and_reset(port: int, msg: EmailMessage, *, after_dot: bool) -> None:
    """A client that gives up: it resets the connection (RST, no QUIT) half-way through
    DATA or right after the final dot, before the answer can come."""
    data = re.sub(rb"\r?\n", b"\r\n", msg.as_bytes())
    data = re.sub(rb"(?m)^\.", b"..", data)
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
    try:
        smtp.ehlo("reset.example.org")
        smtp.mail(str(msg["From"]).rpartition("<")[2].rstrip(">"))
        smtp.rcpt("support@example.com")
        smtp.putcmd("data")
        code, reply = smtp.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        assert smtp.sock is not None
        smtp.sock.sendall(data + b"\r\n.\r\n" if after_dot else data[: len(data) // 2])
    finally:
        if smtp.sock is not None:
            smtp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        smtp.close()


def client_loop(
    port: int, client: int, deadline: float, args: argparse.Namespace, tally: Tally
) -> None:
    rnd = random.Random(client)
    sent: list[Sent] = []  # only what a reply needs, so a long run stays small
    smtp: smtplib.SMTP | None = None
    n = 0
    # --rate paces the clients (together) to a steady load the desk can sustain end to
    # end; without it they send as fast as they are answered (an overload test).
    interval = args.clients / args.rate if args.rate else 0.0
    next_send = time.monotonic()
    while time.monotonic() < deadline:
        if interval:
            next_send += interval
            pause = next_send - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        kind = "new"
        msg = None
        if sent and rnd.random() < args.agent_ratio:
            msg, kind = agent_command(rnd, client, n, rnd.choice(sent)), "agent"
        if msg is None and sent and rnd.random() < args.reply_ratio:
            msg, kind = reply_to(rnd, client, n, rnd.choice(sent)), "replies"
        if msg is None:
            msg, kind = new_request(rnd, client, n), "new"
        n += 1
        if kind == "new" and args.resets and rnd.random() < args.resets:
            after_dot = rnd.random() < 0.5
            try:
                send_and_reset(port, msg, after_dot=after_dot)
                tally.reset("after-dot" if after_dot else "mid-data")
            except (OSError, smtplib.SMTPException) as exc:
                tally.error(f"{type(exc).__name__} reset")
            continue
        try:
            if smtp is None:
                smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
            started = time.monotonic()
            smtp.send_message(msg)
            tally.ok(kind, time.monotonic() - started)
            with tally.lock:
                tally.accepted_ids.add(str(msg["Message-ID"]))
            if kind == "new":
                sent.append((str(msg["From"]), str(msg["Subject"]), str(msg["Message-ID"])))
        except smtplib.SMTPResponseException as exc:
            tally.error(f"{exc.smtp_code} {kind}")
        except (OSError, smtplib.SMTPException) as exc:
            tally.error(f"{type(exc).__name__} {kind}")
            smtp = None
    if smtp is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()


def rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else None


class CountingSink:
    def __init__(self) -> None:
        self.received = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received += 1
        return "250 OK"


def store_counts(engine: Engine, spool: Spool | None) -> dict[str, int]:
    """What the store holds; `pending` counts what the spool (SQLite) still holds too:
    mail answered 250 but not yet taken into the ticket database."""
    spooled = spool.backlog()[0] if spool is not None else 0
    with engine.connect() as conn:

        def count(stmt: Any) -> int:
            return int(conn.execute(stmt).scalar() or 0)

        raw_status = dict(
            conn.execute(select(RawMessage.status, func.count()).group_by(RawMessage.status)).all()
        )
        return {
            "raw": sum(raw_status.values()),
            "pending": raw_status.get("pending", 0) + spooled,
            "quarantined": raw_status.get("quarantined", 0),
            "duplicate": raw_status.get("duplicate", 0),
            "tickets": count(select(func.count()).select_from(Ticket)),
            "inbound": count(select(func.count()).where(Message.direction == "in")),
            "outbox": count(select(func.count()).select_from(OutboxEntry)),
            "outbox_sent": count(select(func.count()).where(OutboxEntry.status == "sent")),
        }


def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    port, sink_port = free_port(), free_port()
    url = args.database_url or f"sqlite:///{work / 'soak.db'}"
    config = work / "maildesk.toml"
    config.write_text(CONFIG.format(url=url, port=port, sink_port=sink_port), encoding="utf-8")
    sink = CountingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=sink_port)
    controller.start()
    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "maildesk", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    engine = create_engine(url)
    spool = open_spool(url)
    try:
        deadline = time.monotonic() + 60
        while b"listening on" not in log_path.read_bytes():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"maildesk serve did not start:\n{log_path.read_text()}")
            time.sleep(0.05)

        tally = Tally()
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        end = started + args.minutes * 60
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.is_set():
                value = rss_mb(daemon.pid)
                if value is not None:
                    samples.append((round(time.monotonic() - started, 1), round(value, 1)))
                stop_sampling.wait(args.sample_every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        clients = [
            threading.Thread(target=client_loop, args=(port, c, end, args, tally))
            for c in range(args.clients)
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        sending = time.monotonic() - started

        # Drain: every stored message processed, every notification delivered.
        drain_deadline = time.monotonic() + args.drain_timeout
        counts = store_counts(engine, spool)
        while counts["pending"] or counts["outbox_sent"] < counts["outbox"]:
            if time.monotonic() > drain_deadline:
                break
            time.sleep(0.5)
            counts = store_counts(engine, spool)
        drained = time.monotonic() - started - sending
        with engine.connect() as conn:
            stored_ids = set(conn.scalars(select(Message.message_id)))
        lost = len(tally.accepted_ids - stored_ids)  # both as <id@host>
        stop_sampling.set()
        sampler.join()
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            exit_code = daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            exit_code = daemon.wait()
        controller.stop()
        engine.dispose()
        if spool is not None:
            spool.close()

    accepted = tally.new + tally.replies + tally.agent
    # A message reset right after its dot may have been stored (the desk had the bytes);
    # its client never heard 250, so it counts as neither accepted nor lost.
    maybe = tally.resets["after-dot"]
    rss = [mb for _, mb in samples]
    third = max(1, len(rss) // 3)
    growth = statistics.median(rss[-third:]) - statistics.median(rss[:third]) if rss else 0.0
    checks = {
        "raw == accepted (+ resets after the dot)": accepted <= counts["raw"] <= accepted + maybe,
        "tickets == new (+ resets after the dot)": tally.new
        <= counts["tickets"]
        <= tally.new + maybe,
        "inbound == accepted (+ resets after the dot)": accepted
        <= counts["inbound"]
        <= accepted + maybe,
        "nothing lost (every 250 stored)": lost == 0,
        "nothing pending": counts["pending"] == 0,
        "nothing quarantined": counts["quarantined"] == 0,
        "notifications delivered": counts["outbox_sent"] == counts["outbox"] == sink.received,
        "no errors": not tally.errors,
        "rss flat": growth < max(20.0, 0.2 * (rss[0] if rss else 0)),
        "daemon exit 0": exit_code == 0,
    }
    return {
        "benchmark": "soak",
        "minutes": args.minutes,
        "clients": args.clients,
        "rate": args.rate,
        "resets": args.resets,
        "database": url.split(":", 1)[0],
        "results": [
            {
                "sent": accepted + sum(tally.errors.values()) + sum(tally.resets.values()),
                "accepted": accepted,
                "lost": lost,
                "resets mid-DATA": tally.resets["mid-data"],
                "resets after dot": maybe,
                "new": tally.new,
                "replies": tally.replies,
                "agent commands": tally.agent,
                "errors": sum(tally.errors.values()),
                "msgs/s": round(accepted / sending, 1) if sending else 0,
                "p50 ms": round(percentile(tally.latencies, 0.50) * 1000, 1),
                "p99 ms": round(percentile(tally.latencies, 0.99) * 1000, 1),
                "max ms": round(max(tally.latencies, default=0) * 1000, 1),
                "drain s": round(drained, 1),
                "tickets": counts["tickets"],
                "inbound": counts["inbound"],
                "notifications": counts["outbox"],
                "delivered": sink.received,
                "rss start MB": rss[0] if rss else None,
                "rss end MB": rss[-1] if rss else None,
                "rss max MB": max(rss) if rss else None,
                "rss growth MB": round(growth, 1),
                "all checks": all(checks.values()),
            }
        ],
        "errors": dict(tally.errors),
        "checks": checks,
        "rss_samples": samples,
    }


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    [row] = report["results"]
    rate = f"{report['rate']}/s" if report["rate"] else "unpaced"
    title = (
        f"soak: {report['clients']} clients, {rate}, {report['minutes']} min, {report['database']}"
        + (f", resets {report['resets']:.0%}" if report.get("resets") else "")
    )
    table = Table("figure", "value", title=title)
    for key, value in row.items():
        table.add_row(key, str(value))
    console.print(table)
    checks = Table("check", "ok", title="counts")
    for key, value in report["checks"].items():
        checks.add_row(key, "yes" if value else "NO")
    console.print(checks)
    if report["errors"]:
        console.print(f"errors: {report['errors']}")
    samples = report["rss_samples"]
    step = max(1, len(samples) // 12)
    rss = Table("seconds", "RSS MB", title="daemon RSS over time")
    for seconds, mb in samples[::step]:
        rss.add_row(str(seconds), str(mb))
    console.print(rss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--reply-ratio", type=float, default=0.25)
    parser.add_argument(
        "--agent-ratio", type=float, default=0.1, help="share of agent replies with commands"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=40.0,
        help="messages/s from all clients together (0: as fast as accepted, an overload run)",
    )
    parser.add_argument(
        "--resets",
        type=float,
        default=0.0,
        help="share of new requests sent by a client that resets the connection, half-way "
        "through DATA or right after the final dot (e.g. 0.1)",
    )
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--sample-every", type=float, default=2.0, help="RSS sampling, seconds")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="maildesk-soak-"))
    try:
        report = soak(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory: {work}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0 if report["results"][0]["all checks"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
