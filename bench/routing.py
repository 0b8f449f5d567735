"""Routing: 1,000 rules against 10,000 parsed messages, decisions/s and time per message.

The rules mix every kind an admin writes (regex on subject, sender domains, recipient
lists, header checks, body keywords, all/any/not trees, time windows); the peer is the
minimal router of the same size (one precompiled subject regex per rule, every rule
evaluated, as rules that refine each other must be): the least work any rule engine of
that size can do per message.

    python bench/routing.py [--rules N] [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from maildesk.mail.message import ParsedMessage
from maildesk.parse.parser import parse_message
from maildesk.routing.conditions import RouteContext
from maildesk.routing.rules import compile_rules, route

WORDS = [
    "printer",
    "vpn",
    "laptop",
    "outage",
    "password",
    "access",
    "monitor",
    "keyboard",
    "wifi",
    "invoice",
    "badge",
    "server",
    "backup",
    "restore",
    "license",
    "account",
    "phone",
    "teams",
    "mailbox",
    "quota",
    "disk",
    "certificate",
]
QUEUES = {"it", "infra", "vendors", "security"}
AGENTS = {f"agent{i}@example.com" for i in range(20)}


def make_rules(count: int, rnd: random.Random) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for n in range(count):
        word, other = rnd.choice(WORDS), rnd.choice(WORDS)
        kind = n % 6
        rule: dict[str, Any] = {"name": f"rule {n}", "set": {"tags": [f"t{n}"]}}
        if kind == 0:
            rule["match"] = {"subject": f"(?i)\\b{word}\\b.*{other}"}
        elif kind == 1:
            rule["when"] = {"field": "from", "domain": [f"vendor{n}.example", f"x{n}.example"]}
        elif kind == 2:
            rule["when"] = {"field": "recipients", "in": [f"team{n}@example.com"]}
        elif kind == 3:
            rule["when"] = {"field": "header", "name": "X-Ticket-Source", "equals": f"app{n}"}
        elif kind == 4:
            rule["when"] = {
                "all": [
                    {"field": "subject", "contains": word},
                    {"not": {"field": "sender_is_agent", "is": True}},
                    {"field": "body", "contains": f"code {n}"},
                ]
            }
        else:
            rule["when"] = {
                "any": [
                    {"field": "weekday", "in": ["sat", "sun"]},
                    {"field": "time", "between": ["18:00", "08:00"]},
                ]
            }
            rule["match"] = {"subject": f"(?i){word}"}
            rule["set"] = {"queue": rnd.choice(sorted(QUEUES)), "impact": "high"}
        rules.append(rule)
    return rules


def make_messages(count: int, rnd: random.Random) -> list[ParsedMessage]:
    out = []
    for _ in range(count):
        msg = EmailMessage()
        msg["From"] = f"user{rnd.randrange(500)}@vendor{rnd.randrange(1500)}.example"
        msg["To"] = f"team{rnd.randrange(1500)}@example.com"
        msg["Subject"] = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(3, 9)))
        msg["X-Ticket-Source"] = f"app{rnd.randrange(1500)}"
        body = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(50, 400)))
        msg.set_content(f"{body} code {rnd.randrange(1500)}")
        out.append(parse_message(msg.as_bytes(policy=SMTP)))
    return out


def run(rule_count: int, message_count: int, seed: int = 11) -> dict[str, Any]:
    rnd = random.Random(seed)
    tables = make_rules(rule_count, rnd)
    start = time.perf_counter()
    rules, problems = compile_rules(tables, queues=QUEUES, agents=AGENTS)
    compile_s = time.perf_counter() - start
    assert not problems, problems[:3]
    messages = make_messages(message_count, rnd)
    base = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    contexts = [
        RouteContext(now=base + timedelta(minutes=37 * i), agents=frozenset(AGENTS))
        for i in range(message_count)
    ]

    per_message: list[float] = []
    matched = 0
    start = time.perf_counter()
    for msg, ctx in zip(messages, contexts, strict=True):
        t0 = time.perf_counter()
        decision = route(msg, rules, "it", ctx)
        per_message.append(time.perf_counter() - t0)
        matched += len(decision.matched)
    total = time.perf_counter() - start

    subject_res = [re.compile(f"(?i){rnd.choice(WORDS)}") for _ in range(rule_count)]
    start = time.perf_counter()
    for msg in messages:
        sum(1 for r in subject_res if r.search(msg.subject))
    floor_total = time.perf_counter() - start

    ordered = sorted(per_message)
    return {
        "benchmark": "routing",
        "rules": rule_count,
        "messages": message_count,
        "results": [
            {
                "target": "maildesk route",
                "compile_ms": round(compile_s * 1000, 1),
                "decisions_per_s": round(message_count / total),
                "mean_ms": round(statistics.mean(per_message) * 1000, 3),
                "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
                "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 3),
                "rules_matched_per_msg": round(matched / message_count, 2),
            },
            {
                "target": "floor: one subject regex per rule, all evaluated",
                "decisions_per_s": round(message_count / floor_total),
                "mean_ms": round(floor_total / message_count * 1000, 3),
            },
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.rules, args.messages)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    keys = list(dict.fromkeys(k for row in report["results"] for k in row))
    table = Table(*keys, title=f"routing: {args.rules} rules, {args.messages} messages")
    for row in report["results"]:
        table.add_row(*(str(row.get(k, "")) for k in keys))
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
