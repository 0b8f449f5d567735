"""Where maildesk spends its time: py-spy wall-clock profiles, summarised as top functions.

    python bench/profile.py import [--messages 1000] [--db sqlite|postgres] [--seeded N]
    python bench/profile.py smtp [--messages 1000] [--clients 8]
    python bench/profile.py report FILE.txt [--thread md-pipeline]

`import` profiles `maildesk import` of the corpus mbox (over N stored tickets seeded as
bench/scale.py does, with --seeded); `smtp` profiles `maildesk serve`
while the corpus is sent over SMTP and processed (one stack tree per thread). Both write
py-spy's raw (collapsed) stacks under bench/.cache/profiles/ and print, per function, the
share of samples in which it is running ("self") and on the stack ("total"). Sampling
includes idle time (`--idle`), so waiting for fsync or for a lock shows up as well.
Needs py-spy (`pip install py-spy`). Not run by `make bench`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from common import CACHE, check_run, free_port, maildesk_bin, run_measured, write_config
from corpus import CorpusOptions, cached_mails, cached_mbox, crlf

OUT = CACHE / "profiles"


def _frame_name(frame: str) -> str:
    """'process (maildesk/pipeline/run.py:88)' -> 'process (maildesk/pipeline/run.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def _stacks(path: Path, thread: str | None) -> Iterator[tuple[list[str], int]]:
    """The (frames, count) lines of py-spy's collapsed output, of one thread if given."""
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if thread is None or any(thread in f for f in frames[:2]):
            yield frames, int(count_text)


def summarise(path: Path, thread: str | None = None, top: int = 25) -> str:
    """Top functions by self and total share of the samples (of one thread, if given)."""
    self_count: Counter[str] = Counter()
    total_count: Counter[str] = Counter()
    samples = 0
    for frames, count in _stacks(path, thread):
        samples += count
        names = [_frame_name(f) for f in frames if " (" in f]
        if names:
            self_count[names[-1]] += count
        for name in set(names):
            total_count[name] += count
    if not samples:
        return f"{path}: no samples" + (f" for thread {thread!r}" if thread else "")
    lines = [f"{path.name}: {samples} samples" + (f", thread {thread}" if thread else "")]
    lines.append(f"{'self %':>7}  function")
    for name, count in self_count.most_common(top):
        lines.append(f"{100 * count / samples:7.1f}  {name}")
    lines.append(f"{'total %':>7}  function")
    for name, count in total_count.most_common(top):
        lines.append(f"{100 * count / samples:7.1f}  {name}")
    return "\n".join(lines)


# Steps of maildesk's paths: (label, frames that must appear in this order in a stack;
# "!frame": appears nowhere below; ">frame": the very next frame; ">!frame": not the next).
PIPE, PARSE = "(maildesk/pipeline/", "parse_message (maildesk/parse"
STAGES = [
    ("start-up before the first message", ["<module> (maildesk", "!cmd_import", "!serve"]),
    (
        "_import_one: dedupe check (parse, two lookups, own transaction)",
        [f"_import_one {PIPE}", ">!_run", ">!save_raw"],
    ),
    ("  of which parse_message", [f"_import_one {PIPE}", PARSE]),
    ("store_raw (own transaction and commit)", ["store_raw (maildesk/ingest/inbox.py"]),
    ("pipeline: parse_message", [f"_parse {PIPE}", PARSE]),
    ("pipeline: thread_message", ["thread_message (maildesk/routing/thread.py"]),
    ("pipeline: route", ["route (maildesk/routing/rules.py"]),
    ("pipeline: rate-limit and flood queries", ["_since (maildesk/store/outbound.py"]),
    ("pipeline: store_message", [f"store_message {PIPE}"]),
    ("pipeline: render templates", ["render (maildesk/mail/render.py"]),
    ("pipeline: compose notification MIME", ["compose (maildesk/mail/render.py"]),
    ("pipeline: commit", [f"process_many {PIPE}", "do_commit (sqlalchemy"]),
    ("outbox sender: send_due", ["send_due (maildesk/notify/sender.py"]),
    ("every COMMIT (fsync on SQLite)", ["do_commit (sqlalchemy"]),
    ("every BEGIN (IMMEDIATE on SQLite: waits for the lock)", ["_connection_begin_impl ("]),
]


def stages(path: Path, thread: str | None = None) -> str:
    """Inclusive share of the samples spent in each step of STAGES."""
    counts = dict.fromkeys((label for label, _ in STAGES), 0)
    samples = 0
    for frames, count in _stacks(path, thread):
        samples += count
        for label, wanted in STAGES:
            if _in_order(frames, wanted):
                counts[label] += count
    lines = [f"{'total %':>7}  step"]
    for label, count in counts.items():
        if count:
            lines.append(f"{100 * count / max(samples, 1):7.1f}  {label}")
    return "\n".join(lines)


def _in_order(frames: list[str], wanted: list[str]) -> bool:
    at = 0  # index of the first frame not yet matched
    for pattern in wanted:
        if pattern.startswith(">!"):
            if at < len(frames) and pattern[2:] in frames[at]:
                return False
        elif pattern.startswith(">"):
            if at >= len(frames) or pattern[1:] not in frames[at]:
                return False
            at += 1
        elif pattern.startswith("!"):
            if any(pattern[1:] in f for f in frames[at:]):
                return False
        else:
            while at < len(frames) and pattern not in frames[at]:
                at += 1
            if at == len(frames):
                return False
            at += 1
    return True


def _pyspy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def profile_import(messages: int, db: str, seeded: int = 0) -> Path:
    """Profile `maildesk import` of the corpus, optionally over `seeded` stored tickets."""
    import scale

    mbox, _ = cached_mbox(CorpusOptions(messages=messages, first_ticket=seeded + 1))
    work = OUT / f"import-{db}-{seeded}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pg_name = "mdbench_profile"
    if db == "postgres":
        db_url = scale.pg_create(pg_name)
    else:
        db_url = f"sqlite:///{scale.sqlite_seeded(seeded, 7, work)[0]}"
    config = write_config(work, db_url=db_url)
    try:
        log = work / "import.log"
        check_run(run_measured([maildesk_bin(), "init", "--config", str(config)], log=log), "init")
        if db == "postgres":
            scale.seed_postgres(db_url, seeded, 7)
        out = OUT / f"import-{db}-{seeded}-{messages}.txt"
        cmd = [_pyspy(), "record", "--idle", "-r", "250", "-f", "raw", "-o", str(out), "--"]
        cmd += [maildesk_bin(), "import", "-q", "--config", str(config), str(mbox)]
        check_run(run_measured(cmd, cwd=work, log=log), "py-spy record", log)
        return out
    finally:
        if db == "postgres":
            scale.pg_drop(pg_name)


def profile_smtp(messages: int, clients: int) -> Path:
    import smtp_ingest

    mails, _ = cached_mails(smtp_ingest.corpus_options(messages))
    payload = [(m.sender, crlf(m.raw), m.thread) for m in mails]
    work = OUT / "smtp"
    shutil.rmtree(work, ignore_errors=True)
    port = free_port()
    config = write_config(work, port=port)
    out = OUT / f"smtp-{messages}-{clients}.txt"
    cmd = [_pyspy(), "record", "--idle", "--threads", "--subprocesses", "-r", "250", "-f", "raw"]
    cmd += ["-o", str(out)]
    cmd += ["--", maildesk_bin(), "serve", "--config", str(config)]
    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        spy = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    try:
        smtp_ingest.wait_listening(log_path, spy, port)
        smtp_ingest.blast(port, payload, clients)
        smtp_ingest.wait_processed(work / "var" / "maildesk.db", len(payload), timeout=900)
    finally:
        children = Path(f"/proc/{spy.pid}/task/{spy.pid}/children")
        for pid in children.read_text().split() if children.exists() else []:
            os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 120
        while spy.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("--messages", type=int, default=1000)
    imp.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    imp.add_argument("--seeded", type=int, default=0, help="tickets stored beforehand")
    smtp = sub.add_parser("smtp")
    smtp.add_argument("--messages", type=int, default=1000)
    smtp.add_argument("--clients", type=int, default=8)
    rep = sub.add_parser("report")
    rep.add_argument("file", type=Path)
    rep.add_argument("--thread")
    for sp in (imp, smtp, rep):
        sp.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    if args.what == "report":
        print(summarise(args.file, args.thread, args.top))
        print(stages(args.file, args.thread))
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    if args.what == "import":
        out = profile_import(args.messages, args.db, args.seeded)
        print(summarise(out, top=args.top))
        print(stages(out))
        return 0
    out = profile_smtp(args.messages, args.clients)
    for thread in ("MainThread", "md-ingest", "md-pipeline", "md-sender"):
        print(summarise(out, thread, args.top))
        print(stages(out, thread), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
