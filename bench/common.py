"""Helpers the benchmark scripts share: config, timing, peak RSS, load, checks, output.

Not a benchmark itself (run_all.py runs the scripts it lists, not every file here).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus import CorpusInfo

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
PG_URL = os.environ.get(
    "MAILDESK_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BUSY = 0.25  # other processes using more than this many cores on average: figures provisional


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def maildesk_bin() -> str:
    """The maildesk console script next to the running interpreter (the project's venv)."""
    path = Path(sys.executable).parent / "maildesk"
    return str(path) if path.exists() else "maildesk"


def write_config(
    work: Path, *, db_url: str | None = None, port: int | None = None, limits: int = 1000
) -> Path:
    """The repository's maildesk.toml, with this run's port and database.

    The per-sender limits (acknowledgements and new tickets per hour) are raised to `limits`
    so that a corpus with busy senders is ticketed in full; the queries behind them still
    run for every message, as they do with the shipped values.
    """
    text = (REPO / "maildesk.toml").read_text(encoding="utf-8")
    swaps = {
        "auto_replies_per_hour = 5 ": f"auto_replies_per_hour = {limits} ",
        "new_tickets_per_hour = 30 ": f"new_tickets_per_hour = {limits} ",
        # HTTP on a port of its own for each daemon (several may run at once).
        'listen = "127.0.0.1:8025"': 'listen = "127.0.0.1:0"',
    }
    if port is not None:
        swaps['listen = "127.0.0.1:2525"'] = f'listen = "127.0.0.1:{port}"'
    if db_url is not None:
        swaps['url = "sqlite:///var/maildesk.db"'] = f'url = "{db_url}"'
    for old, new in swaps.items():
        if old not in text:
            raise RuntimeError(f"maildesk.toml changed: {old!r} not found; update bench/common.py")
        text = text.replace(old, new)
    work.mkdir(parents=True, exist_ok=True)
    config = work / "maildesk.toml"
    config.write_text(text, encoding="utf-8")
    return config


@dataclass(frozen=True)
class Run:
    """One finished child process: wall seconds, its peak RSS, exit code."""

    seconds: float
    peak_rss_kib: int
    returncode: int

    @property
    def peak_rss_mib(self) -> float:
        return round(self.peak_rss_kib / 1024, 1)


# Started by run_measured: forks the command and reports its wall time and peak RSS. Peak
# RSS comes from wait4 in this small process, because Linux carries the RSS high-water mark
# of the process that execs into the child's figure: measured straight from the benchmark
# (which may have grown to hundreds of MB building a corpus), it would be inflated.
LAUNCHER = """
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(out, "w") as f:
    json.dump({"seconds": seconds, "maxrss": usage.ru_maxrss,
               "code": os.waitstatus_to_exitcode(status)}, f)
"""


def run_measured(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    rss_samples: list[tuple[float, int]] | None = None,
) -> Run:
    """Run a command to completion; its wall time and peak RSS (VmHWM, via wait4).

    With rss_samples, the command's RSS (KiB) is also sampled every 100 ms while it runs:
    its own and that of the processes it started, summed (a second process parsing ahead
    counts too).
    """
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    fd, result = tempfile.mkstemp(prefix="run-", suffix=".json")
    os.close(fd)
    try:
        launcher = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, result, *argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if rss_samples is not None:
            _sample_rss(launcher, rss_samples)
        if launcher.wait() != 0:
            raise RuntimeError(f"launcher for {argv[0]} failed")
        data = json.loads(Path(result).read_text())
    finally:
        Path(result).unlink(missing_ok=True)
        if log is not None:
            out.close()  # type: ignore[union-attr]
    return Run(data["seconds"], int(data["maxrss"]), int(data["code"]))


def _sample_rss(launcher: subprocess.Popen[bytes], samples: list[tuple[float, int]]) -> None:
    start = time.perf_counter()
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    while launcher.poll() is None:
        try:
            pid = int(children.read_text().split()[0])
            kib = sum(_rss_kib(p) for p in (pid, *descendants(pid)))
            samples.append((time.perf_counter() - start, kib))
        except (OSError, IndexError):
            pass
        time.sleep(0.1)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # it has just ended
    return 0


def check_run(run: Run, what: str, log: Path | None = None) -> None:
    if run.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"{what} exited {run.returncode}\n{tail}")


def vm_hwm_kib(pid: int) -> int:
    """Peak RSS of a running process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def work_dir(name: str, keep: bool = False) -> Iterator[Path]:
    """A scratch directory for one run, removed afterwards unless kept (then it is printed)."""
    base = CACHE / "runs"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


class Load:
    """How busy the rest of the machine was while a figure was measured.

    others_cores: CPU time used by processes other than this benchmark and the children it
    has waited for, divided by wall time (0 = idle machine, 1 = one core busy elsewhere).
    A database server's work for the benchmark counts as other work here.
    """

    def __init__(self, *pids: int) -> None:
        """Start now; `pids` are running servers of this benchmark: their CPU is ours, and
        so is that of the processes they start (a daemon's pipeline worker), however late."""
        self.start = time.monotonic()
        self.busy0 = _busy_jiffies()
        self.own0 = _own_cpu()
        self.roots = list(pids)
        self.pids = {pid: _pid_jiffies(pid) for pid in self._tree()}

    def _tree(self) -> list[int]:
        return [p for root in self.roots for p in (root, *descendants(root))]

    def others_cores(self) -> float:
        wall = time.monotonic() - self.start
        tick = os.sysconf("SC_CLK_TCK")
        total = (_busy_jiffies() - self.busy0) / tick
        own = _own_cpu() - self.own0
        # A child that ended was waited for: its CPU is in its parent's (cutime, cstime).
        own += sum(_pid_jiffies(pid) - self.pids.get(pid, 0) for pid in self._tree()) / tick
        return round(max(0.0, total - own) / wall, 2) if wall > 0 else 0.0


def descendants(pid: int) -> list[int]:
    """The processes a running process started (and theirs), as /proc lists them now."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in (int(p) for p in task.read_text().split()):
                found += [child, *descendants(child)]
    return found


def _pid_jiffies(pid: int) -> int:
    """CPU of a running process and its waited-for children, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime


def _busy_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle


def _own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def mark(row: dict[str, Any], load: Load) -> dict[str, Any]:
    """Add the load figure to a result row (and flag it when others were busy)."""
    cores = load.others_cores()
    row["others_cores"] = cores
    if cores > BUSY:
        row["busy"] = "yes"
    return row


def check_threads(pairs: Iterable[tuple[str, Any]], info: CorpusInfo) -> dict[str, Any]:
    """Did a system put every corpus message on the right ticket?

    pairs: (Message-ID, the ticket it is stored on) for every inbound message the system
    holds. Correct means: every corpus message is there once, each thread's messages share
    one ticket, and no two threads share a ticket.
    """
    ticket_of: dict[str, Any] = {}
    for message_id, ticket in pairs:
        mid = message_id.strip()
        if mid in info.threads:
            ticket_of[mid] = ticket
    tickets_of_thread: dict[int, set[Any]] = {}
    for mid, ticket in ticket_of.items():
        tickets_of_thread.setdefault(info.threads[mid], set()).add(ticket)
    threads_of_ticket: dict[Any, set[int]] = {}
    for thread, tickets in tickets_of_thread.items():
        for ticket in tickets:
            threads_of_ticket.setdefault(ticket, set()).add(thread)
    split = sum(1 for t in tickets_of_thread.values() if len(t) > 1)
    merged = sum(1 for t in threads_of_ticket.values() if len(t) > 1)
    found = len(ticket_of)
    tickets = len(threads_of_ticket)
    ok = found == info.messages and tickets == info.originals and not split and not merged
    return {
        "expected_tickets": info.originals,
        "tickets": tickets,
        "expected_messages": info.messages,
        "messages": found,
        "followups": found - tickets,
        "threads_split": split,
        "threads_merged": merged,
        "verified": "yes" if ok else "NO",
    }


def maildesk_threads(db_url: str) -> list[tuple[str, int]]:
    """(Message-ID, ticket id) of every inbound message in a maildesk database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT message_id, ticket_id FROM messages WHERE direction = 'in'")
            )
            return [(str(m), int(t)) for m, t in rows]
    finally:
        engine.dispose()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def results_table(report: dict[str, Any], keys: Sequence[str]) -> Any:
    """A report's results as a rich table, titled with its scalar settings."""
    from rich.table import Table

    about = ", ".join(
        f"{k} {v}"
        for k, v in report.items()
        if k not in ("benchmark", "results", "targets") and not isinstance(v, dict | list)
    )
    table = Table(*keys, title=f"{report['benchmark']} ({about})")
    for row in report["results"]:
        table.add_row(*(str(row.get(k, "")) for k in keys))
    return table


def emit(report: dict[str, Any], as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print a report as JSON (for run_all.py) or as a table (for people)."""
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    rows = report["results"]
    console = Console(width=max(200, Console().width))
    keys = list(columns or dict.fromkeys(k for row in rows for k in row))
    console.print(results_table(report, keys))
    if report.get("targets"):
        targets = Table("target", "measured", "wanted", "met", title="targets")
        for t in report["targets"]:
            targets.add_row(t["target"], str(t["measured"]), t["wanted"], t["met"])
        console.print(targets)


def target(name: str, measured: float | None, wanted: str, met: bool | None) -> dict[str, Any]:
    """One row of the targets table."""
    return {
        "target": name,
        "measured": "n/a" if measured is None else measured,
        "wanted": wanted,
        "met": "n/a" if met is None else ("yes" if met else "NO"),
    }
