"""Learned routing on the public IT service ticket set (8 topic groups): accuracy, macro-F1,
top-2 accuracy, coverage and precision at three thresholds, training time, prediction cost
and peak RSS, beside two baselines (the majority class and hand-written keyword rules).

    python bench/learn.py [--train CSV] [--test CSV] [--limit N] [--direct] [--json]

Default: the shared training set, split 80/20 by a fixed seed. The tickets of the training
part are imported as mail into a fresh SQLite desk (`maildesk import`), each ticket gets its
topic as category and is resolved, `maildesk learn --label category` trains and stores the
model, and the stored model is scored on the other part. `--direct` trains the same code on
the CSV text without a desk: the quick figure. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import csv
import json
import mailbox
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from common import maildesk_bin, run_measured, work_dir

from maildesk.learn.model import Model, ticket_text
from maildesk.learn.train import THRESHOLDS, fit_and_score, score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "it-tickets" / "train.csv"
SEED = 23
SUBJECT_WORDS = 8  # the set has one text per ticket: its first words stand for the subject

# Keyword rules an admin might write for the 8 groups (the first group with most hits wins).
KEYWORDS = {
    "Access": "access password account login unlock reset permission vpn locked expired",
    "Administrative rights": "admin administrator rights install installation elevated",
    "HR Support": "leave holiday payroll salary contract employee vacation sick hire starter",
    "Hardware": "laptop printer monitor screen keyboard mouse dock battery charger hardware",
    "Purchase": "purchase order buy quote invoice licence license supplier",
    "Storage": "drive storage disk folder share space quota backup",
    "Internal Project": "project internal",
    "Miscellaneous": "mail outlook email meeting calendar",
}


def read(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = [(r["Document"], r["Topic_group"]) for r in csv.DictReader(f)]
    return rows[:limit] if limit else rows


def split(rows: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    cut = len(rows) * 4 // 5
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]


def subject_body(document: str) -> tuple[str, str]:
    words = document.split()
    return " ".join(words[:SUBJECT_WORDS]) or "(no subject)", document


def text_of(document: str) -> str:
    return ticket_text(*subject_body(document))


def baseline(name: str, test: list[tuple[str, str]], predict: Any) -> dict[str, Any]:
    right = [predict(doc) == label for doc, label in test]
    from sklearn.metrics import f1_score

    labels = [label for _, label in test]
    f1 = f1_score(labels, [predict(doc) for doc, _ in test], average="macro", zero_division=0)
    return {"method": name, "accuracy": round(sum(right) / len(test), 4), "macro_f1": round(f1, 4)}


def keyword_rules(document: str) -> str:
    words = set(document.split())
    hits = {group: len(words & set(kw.split())) for group, kw in KEYWORDS.items()}
    best = max(hits.values())
    return next(g for g, h in hits.items() if h == best) if best else "Hardware"


def evaluate(estimator: Any, test: list[tuple[str, str]]) -> dict[str, Any]:
    """Scores on the held-out part, and the prediction cost per message (one at a time)."""
    texts = [text_of(doc) for doc, _ in test]
    proba = estimator.predict_proba(texts)
    result = score([label for _, label in test], proba, list(estimator.classes_), THRESHOLDS)
    model = Model("category", 0, estimator)  # what a daemon predicts with, one message a time
    times = []
    for text in texts[:2000]:
        started = time.perf_counter()
        model.rank(text)
        times.append((time.perf_counter() - started) * 1000)
    result["predict_ms_median"] = round(statistics.median(times), 3)
    result["predict_ms_p99"] = round(sorted(times)[int(len(times) * 0.99)], 3)
    return result


def direct(train: list[tuple[str, str]], test: list[tuple[str, str]]) -> dict[str, Any]:
    started = time.perf_counter()
    estimator, _ = fit_and_score(
        [text_of(d) for d, _ in train], [lab for _, lab in train], cross_validate=False
    )
    result = evaluate(estimator, test)
    result["train_seconds"] = round(time.perf_counter() - started, 1)
    return result


CONFIG = """
[desk]
name = "bench"
address = "support@example.com"
secret = "bench-secret-of-32-characters-xx"

[database]
url = "sqlite:///{db}"

[smtp]
accept = ["support@example.com"]

[outbound]
transport = "maildir"
path = "outbox"

[notify]
acknowledge = false
notify_agents = false
new_tickets_per_hour = 0

[[queues]]
name = "it"
default = true

[learning]
labels = ["category"]
min_examples = 20
"""


def through_desk(
    work: Path, train: list[tuple[str, str]], test: list[tuple[str, str]]
) -> dict[str, Any]:
    """Import, label and resolve the training tickets, `maildesk learn`, score the stored model."""
    config = work / "maildesk.toml"
    config.write_text(CONFIG.format(db=work / "desk.db"), encoding="utf-8")
    box = mailbox.mbox(str(work / "train.mbox"))
    for i, (doc, _) in enumerate(train):
        subject, body = subject_body(doc)
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = (
            f"user{i % 5000}@example.org",
            "support@example.com",
            subject,
        )
        m["Message-ID"] = f"<ticket-{i}@bench.example>"
        m["Date"] = "Mon, 02 Nov 2026 09:00:00 +0000"
        m.set_content(body)
        box.add(m)
    box.flush()
    md = maildesk_bin()
    run_measured([md, "init", "--config", str(config)])
    imported = run_measured(
        [md, "import", "--quiet", "--config", str(config), str(work / "train.mbox")]
    )
    label_and_resolve(config, train)
    learned = run_measured(
        [md, "learn", "--label", "category", "--json", "--config", str(config)],
        log=work / "learn.log",
    )
    if learned.returncode != 0:
        raise RuntimeError((work / "learn.log").read_text())
    estimator = stored_estimator(config)
    result = evaluate(estimator, test)
    result["import_seconds"] = round(imported.seconds, 1)
    result["train_seconds"] = round(learned.seconds, 1)
    result["learn_peak_rss_mib"] = learned.peak_rss_mib
    log = (work / "learn.log").read_text()
    cv = json.loads(log[log.index("{") :])["models"][0]["metrics"]
    result["cv_accuracy"] = round(cv["accuracy"], 4)
    return result


def label_and_resolve(config: Path, train: list[tuple[str, str]]) -> None:
    """Each imported ticket gets its topic as category and is resolved (as an agent would)."""
    from sqlalchemy import select

    from maildesk.app import App
    from maildesk.config import load_config
    from maildesk.store.db import transaction
    from maildesk.store.models import Message, Ticket

    app = App.build(load_config(config))
    try:
        with transaction(app.sessions) as session:
            rows = session.execute(select(Message.message_id, Message.ticket_id))
            ticket_of = {mid: tid for mid, tid in rows}
            for i, (_, label) in enumerate(train):
                tid = ticket_of.get(f"<ticket-{i}@bench.example>")
                if tid is not None:
                    ticket = session.get_one(Ticket, tid)
                    ticket.category, ticket.status = label, "resolved"
                    ticket.resolved_at = datetime.now(UTC)
    finally:
        app.close()


def stored_estimator(config: Path) -> Any:
    from maildesk.app import App
    from maildesk.config import load_config
    from maildesk.learn.predict import models
    from maildesk.store.db import transaction

    app = App.build(load_config(config))
    try:
        with transaction(app.sessions, readonly=True) as session:
            return models(app, session, datetime.now(UTC))["category"].estimator
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=DATA)
    parser.add_argument("--test", type=Path, help="default: 20 %% of --train, by a fixed seed")
    parser.add_argument("--limit", type=int, help="only the first N tickets (for a quick run)")
    parser.add_argument("--direct", action="store_true", help="train on the CSV text, no desk")
    parser.add_argument("--keep", action="store_true", help="keep the desk's directory")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = read(args.train, args.limit)
    train, test = (rows, read(args.test, args.limit)) if args.test else split(rows)
    majority = Counter(label for _, label in train).most_common(1)[0][0]
    started = time.perf_counter()
    if args.direct:
        learned = direct(train, test)
    else:
        with work_dir("learn", args.keep) as work:
            learned = through_desk(work, train, test)
    report = {
        "benchmark": "learn",
        "mode": "direct" if args.direct else "desk",
        "train": len(train),
        "test": len(test),
        "seconds": round(time.perf_counter() - started, 1),
        "results": [
            baseline("majority class", test, lambda _doc: majority),
            baseline("keyword rules", test, keyword_rules),
            {"method": "learned (TF-IDF words+chars, calibrated LinearSVC)", **_flat(learned)},
        ],
    }
    report.update(
        {k: v for k, v in _flat(learned).items() if k in ("accuracy", "macro_f1", "top2_accuracy")}
    )
    print_report(report, args.json)
    return 0


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    flat = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}
    flat.pop("worst_pairs", None)
    flat.pop("examples", None)
    for t, at in flat.pop("thresholds", {}).items():
        flat[f"coverage@{t}"] = round(at["coverage"], 3)
        flat[f"precision@{t}"] = round(at["precision"], 3)
    return flat


def print_report(report: dict[str, Any], as_json: bool) -> None:
    if not as_json:
        about = {k: v for k, v in report.items() if k != "results"}
        print(json.dumps(about))
        for row in report["results"]:
            print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    sys.exit(main())
