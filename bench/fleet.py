"""Several daemons on one PostgreSQL at the issue's full size: the fleet scenario.

Runs tests/e2e/test_fleet.py's first test (three `maildesk serve` processes on one
PostgreSQL database, mail sent round-robin over SMTP by six clients, conversations split
across daemons, identical mail to two daemons, one daemon killed with SIGKILL at a third
and started again) with --messages messages instead of the test's default, and reports
how long the sending took, how long the whole run took, and how the mail was shared. The
test's checks all apply: a run that stores anything twice, or makes two tickets of one
conversation, fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from common import REPO, Load, emit, machine, mark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "MAILDESK_FLEET_MESSAGES": str(args.messages), "PYTHONPATH": str(REPO)}
    test = "tests/e2e/test_fleet.py::test_three_daemons_share_the_mail_and_do_nothing_twice_with_one_killed"  # noqa: E501
    load = Load()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", test],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    found = re.search(
        r"fleet: (\d+) messages sent in ([\d.]+)s, (\d+) retried, processed by (\d+) daemons: "
        r"\[([\d, ]*)\]",
        done.stdout,
    )
    if done.returncode != 0 or found is None:
        print(done.stdout[-4000:], done.stderr[-2000:], file=sys.stderr)
        return 1
    sent_in = float(found[2])
    row = {
        "messages": int(found[1]),
        "daemons": 3,
        "send_seconds": sent_in,
        "accepted_per_s": round(int(found[1]) / sent_in, 1),
        "run_seconds": round(wall, 1),
        "retried_sends": int(found[3]),
        "processed_by": found[5],
        "checks": "passed",
    }
    emit(
        {"benchmark": "fleet", "machine": machine(), "results": [mark(row, load)]},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
