"""Where maildesk spends its time: py-spy wall-clock profiles, summarised as top functions.

    python bench/profile.py import [--messages 1000] [--db sqlite|postgres]
    python bench/profile.py smtp [--messages 1000] [--clients 8]
    python bench/profile.py report FILE.txt [--thread md-pipeline]

`import` profiles `maildesk import` of the corpus mbox; `smtp` profiles `maildesk serve`
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
from pathlib import Path

from common import CACHE, check_run, free_port, maildesk_bin, run_measured, write_config
from corpus import CorpusOptions, cached_mails, cached_mbox, crlf

OUT = CACHE / "profiles"


def _frame_name(frame: str) -> str:
    """'process (maildesk/pipeline.py:88)' -> 'process (maildesk/pipeline.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def summarise(path: Path, thread: str | None = None, top: int = 25) -> str:
    """Top functions by self and total share of the samples (of one thread, if given)."""
    self_count: Counter[str] = Counter()
    total_count: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if thread is not None and not any(thread in f for f in frames[:2]):
            continue
        count = int(count_text)
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


def _pyspy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def profile_import(messages: int, db: str) -> Path:
    mbox, _ = cached_mbox(CorpusOptions(messages=messages))
    work = OUT / f"import-{db}"
    shutil.rmtree(work, ignore_errors=True)
    db_url = None
    if db == "postgres":
        import scale

        db_url = scale.pg_create("mdbench_profile")
    config = write_config(work, db_url=db_url)
    try:
        log = work / "import.log"
        check_run(run_measured([maildesk_bin(), "init", "--config", str(config)], log=log), "init")
        out = OUT / f"import-{db}-{messages}.txt"
        cmd = [_pyspy(), "record", "--idle", "-r", "250", "-f", "raw", "-o", str(out), "--"]
        cmd += [maildesk_bin(), "import", "-q", "--config", str(config), str(mbox)]
        check_run(run_measured(cmd, cwd=work, log=log), "py-spy record", log)
        return out
    finally:
        if db == "postgres":
            scale.pg_drop("mdbench_profile")


def profile_smtp(messages: int, clients: int) -> Path:
    import smtp_ingest

    mails, _ = cached_mails(smtp_ingest.corpus_options(messages))
    payload = [(m.sender, crlf(m.raw), m.thread) for m in mails]
    work = OUT / "smtp"
    shutil.rmtree(work, ignore_errors=True)
    port = free_port()
    config = write_config(work, port=port)
    out = OUT / f"smtp-{messages}-{clients}.txt"
    cmd = [_pyspy(), "record", "--idle", "--threads", "-r", "250", "-f", "raw", "-o", str(out)]
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
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    if args.what == "import":
        print(summarise(profile_import(args.messages, args.db), top=args.top))
        return 0
    out = profile_smtp(args.messages, args.clients)
    for thread in ("MainThread", "md-ingest", "md-pipeline", "md-sender"):
        print(summarise(out, thread, args.top), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
