"""Scale: import throughput and threading-lookup time with 0, 100,000 and 1,000,000 tickets
already stored, on SQLite and on PostgreSQL.

The database is created by `maildesk init` (Alembic), then seeded directly with SQL, set at
a time (INSERT ... SELECT over a generated series; nothing goes through the pipeline): per
stored ticket one raw message, the inbound message and its acknowledgement (two rows in
`messages`), two events and one sent outbox entry, with one contact per ten tickets (the
first ones are the corpus's own senders, so new mail meets requesters with history). Most
seeded tickets are closed, all are older than an hour. SQLite seeds are built once and
cached under bench/.cache/scale/ (copied for each run); PostgreSQL databases are created,
seeded, VACUUM ANALYZEd and dropped in each run.

Per database:
- `msgs/s`: `maildesk import` of the corpus mbox (replies tagged with the tickets the import
  will create), with the start-up measured on an empty mbox subtracted;
- lookup times (microseconds, p50/p99) of what threading asks the store for one message,
  measured in this process through maildesk's own StoreThreadIndex and thread_message, on
  random stored tickets: a ref tag in the subject, In-Reply-To of its acknowledgement, a
  References hit after an In-Reply-To miss, the reply token, and a new message (every
  lookup misses). Each includes the Message-ID dedupe lookup the pipeline makes first.

    python bench/scale.py [--quick] [--sizes 0 100000 1000000] [--backends sqlite postgres]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from common import (
    CACHE,
    PG_URL,
    Load,
    check_run,
    check_threads,
    emit,
    machine,
    maildesk_bin,
    maildesk_threads,
    mark,
    percentile,
    run_measured,
    target,
    work_dir,
    write_config,
)
from corpus import CorpusOptions, cached_mbox, people

SEED_FORMAT = 1  # bump when the seeded rows change, so cached SQLite seeds are rebuilt
CONTACTS_PER_TICKET = 10
PROBES = ("tag", "in-reply-to", "references", "reply-token", "new")

# --- seeding ----------------------------------------------------------------------------
# One statement per table, the row number `i` coming from a generated series. Written once
# for both databases: {series} is the series, and the few functions that differ are
# filled in per dialect.

SQLITE = {
    "series": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})"
    " SELECT {cols} FROM s",
    "ts": "(strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || ({expr}) || ' minutes')"
    " || '.000000')",
    "pad": "printf('%019d', {expr})",
    "hex64": "printf('%016x%016x%016x%016x', random(), random(), random(), random())",
    "blob": "CAST({expr} AS BLOB)",
    "json": "{expr}",
    "false": "0",
}
POSTGRES = {
    "series": "SELECT {cols} FROM generate_series(1::bigint, {n}::bigint) AS s(i)",
    "ts": "(timestamptz '2024-01-01 00:00:00+00' + ({expr}) * interval '1 minute')",
    "pad": "lpad(({expr})::text, 19, '0')",
    "hex64": "md5(i::text) || md5((i + 7)::text)",
    "blob": "convert_to({expr}, 'UTF8')",
    "json": "({expr})::json",
    "false": "false",
}


def seed_statements(n: int, contacts: int, d: dict[str, str]) -> list[str]:
    """The INSERT ... SELECT statements that seed n tickets, in this dialect `d`."""

    def ts(expr: str) -> str:
        return d["ts"].format(expr=expr)

    def series(cols: str) -> str:
        return d["series"].format(n=n, cols=cols)

    def js(literal: str) -> str:
        return d["json"].format(expr=f"'{literal}'")

    nl = "chr(10)" if d is POSTGRES else "char(10)"
    created = ts("i")
    raw = d["blob"].format(
        expr=f"'Message-ID: <seed.' || i || '@client.example.org>' || {nl} || "
        f"'Subject: Seeded request ' || i || {nl} || {nl} || 'Printer jams again.'"
    )
    body = "'Since this morning the printer on floor ' || (i % 9) || ' jams on every job.'"
    to_desk, to_requester, empty = (
        js('["support@example.com"]'),
        js('["requester@client.example.org"]'),
        js("[]"),
    )
    created_data, routed_data = js('{"ref": "seed"}'), js('{"queue": "it"}')
    message_cols = (
        "INSERT INTO messages (id, ticket_id, raw_id, direction, kind, message_id,"
        ' in_reply_to, from_addr, from_name, "to", cc, subject, body_text, body_html,'
        " internal, created_at) "
    )
    return [
        "INSERT INTO tickets (id, subject, status, priority, queue, type, category, assignee,"
        " requester_id, tags, reply_token, created_at, updated_at, closed_at, parent_id) "
        + series(
            "i, 'Seeded request ' || i,"
            " CASE WHEN i % 10 < 8 THEN 'closed' WHEN i % 10 = 8 THEN 'resolved'"
            " ELSE 'open' END, 'P3', CASE WHEN i % 4 = 0 THEN 'infra' ELSE 'it' END,"
            " 'incident', NULL,"
            " CASE WHEN i % 2 = 0 THEN 'alice@example.com' ELSE 'bob@example.com' END,"
            f" 1 + ((i * 7919) % {contacts}), {empty}, 's' || {d['pad'].format(expr='i')},"
            f" {created}, {created},"
            f" CASE WHEN i % 10 < 8 THEN {ts('i + 1440')} ELSE NULL END, NULL"
        ),
        "INSERT INTO raw_messages (id, received_at, origin, envelope_from, envelope_to, size,"
        " sha256, status, reason, processed_at, ticket_id) "
        + series(
            f"i, {created}, 'smtp', 'seed@client.example.org', {to_desk}, 120, {d['hex64']},"
            f" 'processed', NULL, {created}, i"
        ),
        "INSERT INTO raw_bodies (raw_id, raw) " + series(f"i, {raw}"),
        message_cols
        + series(
            "2 * i - 1, i, i, 'in', 'mail', '<seed.' || i || '@client.example.org>', NULL,"
            f" 'requester' || i || '@client.example.org', '', {to_desk}, {empty},"
            f" 'Seeded request ' || i, {body}, '', {d['false']}, {created}"
        ),
        message_cols
        + series(
            "2 * i, i, NULL, 'out', 'acknowledgement', '<md.' || i || '.ack@example.com>',"
            " '<seed.' || i || '@client.example.org>', 'support@example.com',"
            f" 'Example IT Service Desk', {to_requester}, {empty},"
            " '[MD-' || i || '] Seeded request ' || i,"
            " 'We have received your request and opened ticket MD-' || i || '.', '',"
            f" {d['false']}, {created}"
        ),
        "INSERT INTO events (id, ticket_id, at, kind, actor, data) "
        + series(f"2 * i - 1, i, {created}, 'created', 'seed', {created_data}"),
        "INSERT INTO events (id, ticket_id, at, kind, actor, data) "
        + series(f"2 * i, i, {created}, 'routed', 'system', {routed_data}"),
        "INSERT INTO outbox (id, ticket_id, kind, message_id, sender, recipients, subject, raw,"
        " status, attempts, next_attempt_at, last_error, created_at, sent_at) "
        + series(
            "i, i, 'acknowledgement', '<md.' || i || '.ack@example.com>',"
            f" 'support@example.com', {to_requester}, '[MD-' || i || '] Seeded request ' || i,"
            f" {raw}, 'sent', 1, {created}, NULL, {created}, {created}"
        ),
    ]


def contact_rows(contacts: int, seed: int) -> list[tuple[int, str, str]]:
    """The corpus's senders first (same seed), then generated ones."""
    known = people(min(contacts, 5000), seed)
    rows = [(k + 1, p.email, p.name) for k, p in enumerate(known)]
    rows += [(k + 1, f"contact{k}@seed.example.org", "") for k in range(len(rows), contacts)]
    return rows


def seed_sqlite(path: Path, n: int, seed: int) -> float:
    start = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    contacts = max(1, n // CONTACTS_PER_TICKET)
    db.executemany(
        "INSERT INTO contacts (id, email, name, created_at) VALUES (?, ?, ?,"
        " '2024-01-01 00:00:00.000000')",
        contact_rows(contacts, seed),
    )
    if n:
        for statement in seed_statements(n, contacts, SQLITE):
            db.execute(statement)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - start


def seed_postgres(url: str, n: int, seed: int) -> float:
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(_libpq(url), autocommit=False) as conn:
        contacts = max(1, n // CONTACTS_PER_TICKET)
        with conn.cursor() as cur:
            with cur.copy("COPY contacts (id, email, name, created_at) FROM STDIN") as copy:
                for row in contact_rows(contacts, seed):
                    copy.write_row((*row, "2024-01-01 00:00:00+00"))
            if n:
                for statement in seed_statements(n, contacts, POSTGRES):
                    cur.execute(statement)
            for table in ("contacts", "tickets", "raw_messages", "messages", "events", "outbox"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - start


# --- PostgreSQL databases of our own --------------------------------------------------------


def _libpq(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    parts = [f"host={u.host or '127.0.0.1'}", f"port={u.port or 5432}", f"dbname={u.database}"]
    if u.username:
        parts.append(f"user={u.username}")
    if u.password:
        parts.append(f"password={u.password}")
    return " ".join(parts)


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(_libpq(PG_URL), connect_timeout=3):
            return True
    except Exception:
        return False


def pg_create(name: str) -> str:
    """A new, empty database of ours (dropped first if a previous run left it)."""
    import psycopg
    from sqlalchemy.engine import make_url

    with psycopg.connect(_libpq(PG_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(PG_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- one database ---------------------------------------------------------------------------


def alembic_head() -> str:
    from alembic.script import ScriptDirectory

    from maildesk.store.db import alembic_config

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def sqlite_seeded(n: int, seed: int, work: Path) -> tuple[Path, float]:
    """A copy of the cached seeded SQLite database (built on first use) and its seed time."""
    cache = CACHE / "scale"
    cache.mkdir(parents=True, exist_ok=True)
    template = cache / f"sqlite-{n}-{alembic_head()}-{SEED_FORMAT}-{seed}.db"
    stamp = template.with_suffix(".seconds")
    if not (template.exists() and stamp.exists()):
        building = template.with_suffix(".building")
        building.parent.mkdir(parents=True, exist_ok=True)
        for old in cache.glob(f"sqlite-{n}-*"):
            old.unlink()
        config = write_config(work / "seed", db_url=f"sqlite:///{building}")
        log = work / "seed" / "init.log"
        init = run_measured([maildesk_bin(), "init", "--config", str(config)], log=log)
        check_run(init, "maildesk init", log)
        seconds = seed_sqlite(building, n, seed)
        building.rename(template)
        stamp.write_text(f"{seconds:.1f}")
    path = work / "maildesk.db"
    shutil.copyfile(template, path)
    return path, float(stamp.read_text())


def lookup_probes(url: str, count: int, seed: int) -> dict[str, list[float]]:
    """Time threading's store lookups for random stored tickets, per kind of probe."""
    from sqlalchemy import text

    from maildesk.parse.parser import parse_message
    from maildesk.routing.thread import thread_message
    from maildesk.store.db import create_db_engine, session_factory, transaction
    from maildesk.store.repo import StoreThreadIndex

    engine = create_db_engine(url)
    sessions = session_factory(engine)
    rnd = random.Random(f"probes-{seed}")
    with engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM tickets")).scalar() or 0
        wanted = sorted({rnd.randint(1, top) for _ in range(count)}) if top else []
        targets: list[tuple[int, str, str, str]] = []
        for tid in wanted:
            row = conn.execute(
                text(
                    "SELECT t.id, t.reply_token,"
                    " (SELECT min(message_id) FROM messages m"
                    "   WHERE m.ticket_id = t.id AND m.direction = 'in'),"
                    " (SELECT min(message_id) FROM messages m"
                    "   WHERE m.ticket_id = t.id AND m.direction = 'out')"
                    " FROM tickets t WHERE t.id = :id"
                ),
                {"id": tid},
            ).first()
            if row is not None and row[2] and row[3]:
                targets.append((int(row[0]), str(row[1]), str(row[2]), str(row[3])))
    rnd.shuffle(targets)
    probes: list[tuple[str, Any]] = []
    for n, (tid, token, inbound, outbound) in enumerate(targets):
        for kind in PROBES:
            msg = EmailMessage()
            msg["From"] = "someone@client.example.org"
            msg["To"] = "support@example.com"
            msg["Subject"] = "Printer jams again"
            msg["Message-ID"] = f"<probe.{kind}.{n}@client.example.org>"
            if kind == "tag":
                msg.replace_header("Subject", f"Re: [MD-{tid}] Printer jams again")
            elif kind == "in-reply-to":
                msg["In-Reply-To"] = outbound
            elif kind == "references":
                msg["In-Reply-To"] = f"<unknown.{n}@elsewhere.example>"
                msg["References"] = f"{inbound} <unknown.{n}@elsewhere.example>"
            elif kind == "reply-token":
                msg.replace_header("To", f"support+{token}@example.com")
            msg.set_content("It happened again.")
            probes.append((kind, parse_message(msg.as_bytes())))
    timings: dict[str, list[float]] = {k: [] for k in PROBES}
    desk = ("support@example.com", "helpdesk@example.com")
    try:
        for kind, msg in probes:
            with transaction(sessions) as session:
                session.connection()  # BEGIN (IMMEDIATE on SQLite) is not a lookup
                index = StoreThreadIndex(session)
                start = time.perf_counter()
                index.ticket_for_message_ids([msg.message_id])  # the dedupe check
                match = thread_message(
                    msg, index, prefix="MD", recipients=list(msg.to), desk_addresses=desk
                )
                timings[kind].append(time.perf_counter() - start)
                if kind != "new" and match.ticket_id is None:
                    raise RuntimeError(f"probe {kind} did not thread: {msg.message_id}")
    finally:
        engine.dispose()
    return timings


def _us(values: list[float], q: float) -> int | str:
    """A percentile in microseconds; "" when nothing was probed (an empty store whose
    imported tickets have no outbound mail: `import` sends and records none)."""
    return round(percentile(values, q) * 1e6) if values else ""


def measure(
    backend: str, n: int, messages: int, probes: int, seed: int, work: Path
) -> dict[str, Any]:
    opts = CorpusOptions(messages=messages, first_ticket=n + 1, seed=seed)
    mbox, info = cached_mbox(opts)
    here = work / f"{backend}-{n}"
    here.mkdir(parents=True)
    pg_name = f"mdbench_scale_{n}"
    if backend == "sqlite":
        path, seed_s = sqlite_seeded(n, seed, here)
        url = f"sqlite:///{path}"
    else:
        url = pg_create(pg_name)
    try:
        config = write_config(here, db_url=url)
        log = here / "maildesk.log"
        md = maildesk_bin()
        if backend == "postgres":
            check_run(run_measured([md, "init", "--config", str(config)], log=log), "init", log)
            seed_s = seed_postgres(url, n, seed)
        empty = here / "empty.mbox"
        empty.write_bytes(b"")
        base = [md, "import", "--quiet", "--config", str(config)]
        first = run_measured([*base, str(empty)], cwd=here, log=log)
        check_run(first, "maildesk import (empty)", log)
        load = Load()
        full = run_measured([*base, str(mbox)], cwd=here, log=log)
        check_run(full, "maildesk import", log)
        net = max(full.seconds - first.seconds, 1e-9)
        row: dict[str, Any] = {
            "backend": backend,
            "stored_tickets": n,
            "seed_s": round(seed_s, 1),
            "messages": messages,
            "msgs_per_s": round(messages / net, 1),
            "ms_per_msg": round(1000 * net / messages, 2),
            "peak_rss_mib": full.peak_rss_mib,
        }
        mark(row, load)
        check = check_threads(maildesk_threads(url), info)
        row["verified"] = check["verified"]
        if check["verified"] != "yes":
            row["check"] = check
        timings = lookup_probes(url, probes, seed)
        every = [t for values in timings.values() for t in values]
        row["lookup_p50_us"] = _us(every, 0.5)
        row["lookup_p99_us"] = _us(every, 0.99)
        for kind, values in timings.items():
            row[f"{kind}_p50_us"] = _us(values, 0.5)
        row["lookup_detail"] = {
            kind: {
                "probes": len(values),
                "p50_us": _us(values, 0.5),
                "p99_us": _us(values, 0.99),
            }
            for kind, values in timings.items()
        }
        return row
    finally:
        if backend == "postgres":
            pg_drop(pg_name)


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    by = {(r["backend"], r["stored_tickets"]): r for r in rows if "error" not in r}
    if ("sqlite", 0) in by and ("postgres", 0) in by:
        ratio = round(by[("postgres", 0)]["ms_per_msg"] / by[("sqlite", 0)]["ms_per_msg"], 2)
        out.append(target("import time PostgreSQL / SQLite (empty)", ratio, "<= 1.5", ratio <= 1.5))
    for backend in ("sqlite", "postgres"):
        sizes = sorted(n for b, n in by if b == backend)
        if len(sizes) > 1 and sizes[0] == 0:
            big = sizes[-1]
            ratio = round(by[(backend, big)]["msgs_per_s"] / by[(backend, 0)]["msgs_per_s"], 2)
            wanted = ">= 0.9" + ("" if big >= 1_000_000 else " (at 1,000,000)")
            out.append(
                target(f"{backend}: msgs/s at {big:,} stored / empty", ratio, wanted, ratio >= 0.9)
            )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="sizes 0 and 100,000; 300 messages")
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"])
    p.add_argument("--messages", type=int, help="messages imported per database (1000)")
    p.add_argument("--probes", type=int, help="stored tickets probed per database (500)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    sizes = args.sizes or ([0, 100_000] if args.quick else [0, 100_000, 1_000_000])
    messages = args.messages or (300 if args.quick else 1000)
    probes = args.probes or (200 if args.quick else 500)
    backends = args.backends or ["sqlite", "postgres"]
    notes = []
    if "postgres" in backends and not pg_available():
        backends = [b for b in backends if b != "postgres"]
        notes.append(f"PostgreSQL at {PG_URL} not reachable: skipped")
    rows = []
    with work_dir("scale", args.keep) as work:
        for backend in backends:
            for n in sizes:
                try:
                    rows.append(measure(backend, n, messages, probes, args.seed, work))
                except Exception as exc:  # keep the other rows; the error is reported
                    print(f"scale {backend} {n}: {exc!r}", file=sys.stderr)
                    rows.append({"backend": backend, "stored_tickets": n, "error": repr(exc)})
    report: dict[str, Any] = {
        "benchmark": "scale",
        "messages": messages,
        "probes": probes,
        "machine": machine(),
        "results": rows,
        "targets": targets(rows),
    }
    if notes:
        report["notes"] = notes
    columns = [
        "backend", "stored_tickets", "seed_s", "msgs_per_s", "ms_per_msg", "peak_rss_mib",
        "verified", "lookup_p50_us", "lookup_p99_us", "tag_p50_us", "in-reply-to_p50_us",
        "references_p50_us", "reply-token_p50_us", "new_p50_us", "others_cores", "busy",
        "error",
    ]  # fmt: skip
    emit(report, args.json, columns)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
