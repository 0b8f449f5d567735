"""Real mail nobody on the team wrote, through the pipeline and over SMTP, plus quarantine.

Sources (origins in tests/data/realworld/README.md): CPython's own test/test_email/data,
captured messages from other mail libraries' test data, and messages constructed to
reproduce what particular mailers write. Every message must become a ticket message with a
sensible subject, text and attachments, or land in quarantine with a reason; never a
traceback past the pipeline, never a stopped daemon.

Most of the corpus runs in-process (App + inbox.store_raw, pipeline.process) on SQLite and
PostgreSQL; a representative subset goes over real SMTP to a running desk.
"""

from __future__ import annotations

import re
import smtplib
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maildesk import pipeline
from maildesk.app import App
from maildesk.config import load_config
from maildesk.ingest import inbox
from maildesk.parse.attachments import sanitise_filename
from maildesk.store.models import Message, RawMessage
from tests.conftest import Desk, mail, run_maildesk, serve_process, skip_or_fail, wait_until

REALWORLD = Path(__file__).resolve().parents[1] / "data" / "realworld"
FINAL = {"processed", "duplicate", "ignored", "quarantined", "spam", "flood", "bounce"}
TICKETED = {"created", "appended", "reopened", "followup"}


def cpython_email_data() -> Path:
    """CPython's test/test_email/data, shipped with every CPython (Debian: -testsuite)."""
    where = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
    if not any(where.glob("msg_*.txt")):
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        skip_or_fail(
            f"CPython's test/test_email/data is not installed (looked in {where}; "
            f"on Debian: apt-get install libpython{version}-testsuite)"
        )
    return where


@pytest.fixture
def app(db_url: str, write_config: Callable[..., Path]) -> Iterator[App]:
    """An App on a fresh database (no daemon: notifications stay queued)."""
    built = App.build(load_config(write_config(db_url, max_size="25MB")))
    try:
        yield built
    finally:
        built.close()


@dataclass
class Result:
    status: str
    reason: str
    message: dict[str, Any] | None  # the stored inbound message, if it is on a ticket


def ingest(app: App, raw: bytes, envelope_from: str | None = None) -> Result:
    """store_raw then process, as `maildesk import` does; the stored result, read back."""
    raw_id = inbox.store_raw(
        app, raw, origin="import", envelope_from=envelope_from, envelope_to=["support@example.com"]
    )
    outcome = pipeline.process(app, raw_id)
    with app.sessions() as s:
        row = s.get_one(RawMessage, raw_id)
        assert row.status in FINAL, f"raw {raw_id} left in status {row.status}"
        if outcome.status == "quarantined":
            assert row.status == "quarantined" and row.reason
        found = s.scalar(select(Message).where(Message.raw_id == raw_id))
        stored = None
        if found is not None:
            stored = {
                "subject": found.subject,
                "from": found.from_addr,
                "from_name": found.from_name,
                "body": found.body_text,
                "ticket_subject": found.ticket.subject,
                "ticket_id": found.ticket_id,
                "attachments": {a.filename: (a.content_type, a.content) for a in found.attachments},
            }
    return Result(outcome.status, outcome.reason, stored)


def _ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --- CPython's test_email corpus ------------------------------------------------------------


def _stdlib_view(raw: bytes) -> EmailMessage | None:
    try:
        return message_from_bytes(raw, policy=policy.default)
    except Exception:
        return None


def _oracle_problems(raw: bytes, stored: dict[str, Any]) -> list[str]:
    """Compare what maildesk stored with an independent reading by the email package."""
    view = _stdlib_view(raw)
    if view is None:
        return []
    problems = []
    try:
        subject = _ws(str(view["subject"] or ""))
    except Exception:
        subject = ""
    if subject and "\ufffd" not in subject and subject != stored["subject"]:
        problems.append(f"subject {stored['subject']!r}, the email package reads {subject!r}")
    for part in view.walk():
        if part.is_multipart() or part.get_filename() or part.get_content_disposition():
            continue
        if part.get_content_type() != "text/plain":
            continue
        try:
            text = _ws(part.get_content())[:40]
        except Exception:
            continue
        if text and "\ufffd" not in text and text not in _ws(stored["body"]):
            problems.append(f"text {text!r} missing from the stored body")
    for index, part in enumerate(view.walk(), start=1):
        name = part.get_filename() if not part.is_multipart() else None
        if name and not any(
            n == sanitise_filename(name, part.get_content_type(), index)
            for n in stored["attachments"]
        ):
            problems.append(
                f"attachment {name!r} missing (stored: {sorted(stored['attachments'])})"
            )
    return problems


def test_cpython_email_corpus_through_the_pipeline(app: App) -> None:
    data = cpython_email_data()
    files = sorted(data.glob("msg_*.txt"))
    assert len(files) >= 40
    table: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for path in files:
        raw = path.read_bytes()
        result = ingest(app, raw)
        table.append((path.name, result.status, result.reason[:70]))
        if result.status == "quarantined":
            # Without an envelope (as `maildesk import` reads them) only two reasons are
            # expected: no header block at all, or no sender anywhere.
            view = _stdlib_view(raw)
            no_sender = view is not None and not str(view.get("from") or "").count("@")
            if not ("not an email message" in result.reason or no_sender):
                problems.append(f"{path.name}: quarantined for {result.reason!r}")
        elif result.status in TICKETED:
            assert result.message is not None, path.name
            problems += [f"{path.name}: {p}" for p in _oracle_problems(raw, result.message)]
            if not result.message["ticket_subject"]:
                problems.append(f"{path.name}: ticket without a subject")
        else:
            assert result.status in {"duplicate", "bounce", "ignored"}, (path.name, result)
    print("\n".join(f"{n:<14} {s:<12} {r}" for n, s, r in table))
    assert not problems, "\n".join(problems)
    statuses = {s for _, s, _ in table}
    assert "created" in statuses and "quarantined" in statuses
    with app.sessions() as s:
        assert len(s.scalars(select(RawMessage.id)).all()) == len(files), "a message was lost"


# --- captured and constructed fixtures ------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What a fixture must become (in-process, read without an envelope sender)."""

    status: str
    subject: str = ""
    body: tuple[str, ...] = ()
    not_in_body: tuple[str, ...] = ()
    attachments: tuple[str, ...] = ()
    from_name: str | None = None
    reason: str = ""


TNEF_SIGNATURE = bytes.fromhex("789f3e22")

EXPECT: dict[str, Expect] = {
    "pgp-signed-gnupg-announce-mimekit.eml": Expect(
        "created",
        "[Announce] GnuPG 2.1.20 released",
        ("The GnuPG team is pleased to announce", "Gnupg-announce mailing list"),
        ("-----BEGIN PGP SIGNATURE-----", "=3D"),
    ),
    "smime-signed-m2crypto-flanker.eml": Expect(
        "created", "M2Crypto S/MIME testing", ("a pöstal sign of our times",), (), ("smime.p7s",)
    ),
    "forward-thunderbird-rfc822-flanker.eml": Expect(
        "created", "Wow", ("Hello", "you're kicking ass"), (), ("thanks.eml",)
    ),
    "missing-boundaries-flanker.eml": Expect(
        "created", "(no subject)", ("Hi This is a broken message",)
    ),
    "no-content-type-gmail-flanker.eml": Expect(
        "created", "Testing message parsing", ("I'm just testing message parsing",)
    ),
    "bounce-gmail-invalid-address-flanker.eml": Expect(
        "bounce", reason="hard bounce for a message that is not on any ticket"
    ),
    "utf7-mikel-mail.eml": Expect("quarantined", reason="no usable From address"),
    "outlook-original.eml": Expect(
        "created",
        "VPN client keeps disconnecting",
        ("drops the connection every 10 minutes",),
        ("=\n", "<p"),
        from_name="Dana Field",
    ),
    "outlook-reply.eml": Expect(
        "appended", "RE: VPN client keeps disconnecting", ("office Wi-Fi",)
    ),
    "calendar-invite-google.eml": Expect(
        "created",
        "Invitation: Laptop rollout planning @ Mon 20 Mar 2023 09:00 - 09:30 (GMT)"
        " (support@example.com)",
        ("You have been invited to the following event.",),
        (),
        ("invite.ics",),
    ),
    "tnef-winmail-outlook.eml": Expect(
        "created",
        "Printer on floor 3 is broken",
        ("error 59.4",),
        (),
        ("winmail.dat", "printer-notes.txt"),
    ),
    "iso-2022-jp-thunderbird.eml": Expect(
        "created",
        "プリンターが動きません",
        ("三階のプリンターが動きません。",),
        ("\x1b$B",),
        from_name="山田 太郎",
    ),
    "gb18030-foxmail.eml": Expect("created", "邮箱无法登录", ("提示密码错误",), from_name="李伟"),
    "koi8-r-thebat.eml": Expect(
        "created",
        "Не работает принтер",
        ("принтер в бухгалтерии опять не печатает",),
        from_name="Ольга Смирнова",
    ),
    "unknown-charset.eml": Expect(
        "created", "Drucker für Büro 2", ("Der Drucker für Büro 2 druckt",), ("=?",)
    ),
    "raw-8bit-headers.eml": Expect(
        "created",
        "Gerät im Büro defekt – bitte prüfen",
        ("„Fehler 42“",),
        from_name="Zoë Müller",
    ),
    "nul-bytes.eml": Expect(
        "created",
        "nightly report failed",
        ("step 3 wrote", "into the log"),
        ("\x00",),
        ("log_.txt",),
    ),
    "nested-7-levels.eml": Expect(
        "created",
        "Original problem report",  # the ticket's subject drops the Fwd: chain
        ("Forwarding, level 1.", "badge reader at door 7"),
        (),
        ("door7-log.pdf",),
    ),
    "utf7-outlook-express.eml": Expect(
        "created",
        "Drucker im 2. Stock: Papierstau – dringend",
        ("Grüße aus Zürich", "„Papierstau“ — seit gestern"),
        ("+APw",),
        from_name="Marie Keller",
    ),
    "missing-headers-script.eml": Expect("quarantined", reason="no usable From address"),
    "broken-boundary-phpmailer.eml": Expect(
        "created",
        "Order 10023: payment page shows an error",
        ("Customer 4711 reports",),
        ("Content-Type:", "--b1_"),
    ),
}


def test_every_fixture_has_an_expectation_and_an_origin() -> None:
    names = {p.name for p in REALWORLD.glob("*.eml")}
    assert names == set(EXPECT)
    readme = (REALWORLD / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme or name.split(".")[0] in readme for name in names)


def check_fixture(name: str, result: Result, expect: Expect) -> list[str]:
    problems = []
    if result.status != expect.status:
        return [f"{name}: {result.status} ({result.reason}), expected {expect.status}"]
    if expect.reason and expect.reason not in result.reason:
        problems.append(f"{name}: reason {result.reason!r}")
    if expect.status not in TICKETED:
        return problems
    stored = result.message
    assert stored is not None
    if expect.status == "created" and stored["ticket_subject"] != expect.subject:
        problems.append(f"{name}: ticket subject {stored['ticket_subject']!r}")
    if expect.status == "appended" and stored["subject"] != expect.subject:
        problems.append(f"{name}: message subject {stored['subject']!r}")
    problems += [f"{name}: {t!r} not in body" for t in expect.body if t not in stored["body"]]
    problems += [f"{name}: {t!r} in body" for t in expect.not_in_body if t in stored["body"]]
    problems += [
        f"{name}: no attachment {a!r} in {sorted(stored['attachments'])}"
        for a in expect.attachments
        if a not in stored["attachments"]
    ]
    if expect.from_name is not None and stored["from_name"] != expect.from_name:
        problems.append(f"{name}: from name {stored['from_name']!r}")
    return problems


def test_realworld_fixtures_through_the_pipeline(app: App) -> None:
    problems: list[str] = []
    results: dict[str, Result] = {}
    for name in sorted(EXPECT):  # outlook-original before outlook-reply
        results[name] = result = ingest(app, (REALWORLD / name).read_bytes())
        problems += check_fixture(name, result, EXPECT[name])
    assert not problems, "\n".join(problems)

    original, reply = results["outlook-original.eml"], results["outlook-reply.eml"]
    assert original.message and reply.message
    assert reply.message["ticket_id"] == original.message["ticket_id"], "reply not threaded"
    tnef = results["tnef-winmail-outlook.eml"].message
    assert tnef is not None
    content_type, content = tnef["attachments"]["winmail.dat"]
    assert content_type == "application/ms-tnef" and content.startswith(TNEF_SIGNATURE)
    assert b"printer-notes.txt" in content  # stored whole, beside the files unpacked from it
    nul = results["nul-bytes.eml"].message
    assert nul is not None
    assert nul["attachments"]["log_.txt"][1] == b"line 1\x00line 2\x00\r\n"
    smime = results["smime-signed-m2crypto-flanker.eml"].message
    assert smime is not None
    signature = smime["attachments"]["smime.p7s"][1]
    assert signature[:4] == bytes.fromhex("308206b9") and len(signature) == 1725
    forward = results["forward-thunderbird-rfc822-flanker.eml"].message
    assert forward is not None
    assert forward["attachments"]["thanks.eml"][0] == "message/rfc822"
    assert b"Subject: Thanks!" in forward["attachments"]["thanks.eml"][1]


# --- over real SMTP, to a running desk ------------------------------------------------------

SMTP_CPYTHON = ["msg_01.txt", "msg_07.txt", "msg_16.txt", "msg_19.txt", "msg_22.txt",
                "msg_28.txt", "msg_37.txt", "msg_41.txt", "msg_45.txt"]  # fmt: skip
# Over SMTP there is always an envelope sender: messages without From become tickets of it.
SMTP_EXPECT = {
    **EXPECT,
    "utf7-mikel-mail.eml": Expect("created", "(no subject)", ("Valid: &Zi8-",)),
    "missing-headers-script.eml": Expect(
        "created", "backup job failed on fs01", ("rsync exited with code 23",)
    ),
}


def test_corpus_over_smtp_leaves_the_daemon_serving(desk: Desk) -> None:
    sent: list[tuple[str, bytes]] = []
    for name in sorted(SMTP_EXPECT):
        sent.append((name, (REALWORLD / name).read_bytes()))
    try:
        data = cpython_email_data()
        sent += [(n, (data / n).read_bytes()) for n in SMTP_CPYTHON]
    except pytest.skip.Exception:
        pass  # the fixtures alone still make the point
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=30) as smtp:
        for name, raw in sent:
            sender = "" if name.startswith("bounce-") else "corpus@example.org"
            refused = smtp.sendmail(sender, ["support@example.com"], raw)
            assert refused == {}, (name, refused)
    statuses = desk.wait_processed(len(sent), timeout=60)
    assert len(statuses) == len(sent)
    assert set(statuses) <= FINAL

    tickets = desk.tickets()
    subjects = {t["subject"] for t in tickets}
    for name, expect in SMTP_EXPECT.items():
        if expect.status == "created":
            assert expect.subject in subjects, (name, sorted(subjects))
    held = desk.json("quarantine")
    assert all(h["reason"] and h["origin"] == "smtp" for h in held)
    assert [h for h in held if "not an email message" in h["reason"]], held  # msg_19

    # Still serving: a plain message right after the corpus becomes a ticket.
    desk.send(mail("After the corpus", message_id="<after-corpus@client.example.org>"))
    wait_until(lambda: any(t["subject"] == "After the corpus" for t in desk.tickets()), 15)


# --- quarantine you can see and act on ------------------------------------------------------


def too_many_parts(count: int = 1500) -> bytes:
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(count))
    return (
        "From: Parts Galore <galore@example.org>\r\nTo: support@example.com\r\n"
        "Subject: =?utf-8?q?Sehr_viele_Teile?=\r\nMessage-ID: <galore@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        f"{parts}--b--\r\n"
    ).encode()


def test_quarantine_lists_shows_retries_and_drops(desk: Desk) -> None:
    junk = b"\x00\x01 not mail at all"
    complex_mail = too_many_parts()
    desk.send(junk, mail_from="junk@example.org")
    desk.send(complex_mail, mail_from="galore@example.org")
    desk.send(mail("Fine one", message_id="<fine@client.example.org>"))
    desk.wait_processed(3)

    held = {h["id"]: h for h in desk.json("quarantine")}
    assert len(held) == 2
    by_reason = {("MIME parts" in h["reason"]): h for h in held.values()}
    big, junk_row = by_reason[True], by_reason[False]
    # Read from the header block although the body could not be parsed.
    assert big["from"] == "galore@example.org"
    assert big["subject"] == "Sehr viele Teile"
    assert big["message_id"] == "<galore@example.org>"
    assert "more than 1000 MIME parts" in big["reason"]
    assert big["size"] == len(complex_mail) and big["origin"] == "smtp"
    assert big["received_at"] and big["status"] == "quarantined"
    assert junk_row["from"] is None and junk_row["envelope_from"] == "junk@example.org"
    code, table = desk.cli("quarantine")
    assert code == 0 and "galore@example.org" in table and "Sehr viele Teile" in table

    shown = run_maildesk("quarantine", "show", str(big["id"]), "--config", str(desk.config_path))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout_bytes == complex_mail

    code, out = desk.cli("quarantine", "retry", "--all")
    assert code == 65, out  # quarantined again: the retry did not succeed, and says why
    assert "retried 2 messages: 2 quarantined" in out and "2 of 2 quarantined again" in out
    assert len(desk.json("quarantine")) == 2, "still unprocessable: still held"

    code, out = desk.cli("quarantine", "drop", str(junk_row["id"]), "--reason", "line noise")
    assert code == 0, out
    [record] = desk.json("quarantine", "--status", "dropped")
    assert record["id"] == junk_row["id"] and record["size"] == junk_row["size"]
    assert "line noise" in record["reason"] and "not an email message" in record["reason"]
    assert re.search(r"dropped by \S+ at \d{4}-", record["reason"])
    assert [h["id"] for h in desk.json("quarantine")] == [big["id"]]
    code, out = desk.cli("quarantine", "show", str(junk_row["id"]))
    assert code == 1 and "no quarantined message" in out
    with desk.app.sessions() as s:
        assert s.get_one(RawMessage, junk_row["id"]).raw == b"", "dropped bytes are removed"


@pytest.mark.slow
def test_serve_logs_one_clear_line_per_quarantined_message(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", max_size="5MB")
    log = tmp_path / "serve.log"
    with serve_process(config, log) as proc:
        port = int(re.findall(rb"listening on [\d.]+:(\d+)", log.read_bytes())[0])
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("junk@example.org", ["support@example.com"], b"\x00 not mail")
            smtp.sendmail("galore@example.org", ["support@example.com"], too_many_parts())
        lines = wait_until(
            lambda: (
                [
                    line
                    for line in log.read_text(errors="replace").splitlines()
                    if "quarantined" in line
                ]
                if log.read_text(errors="replace").count("quarantined:") >= 2
                else None
            ),
            20,
        )
        assert proc.poll() is None
    assert len(lines) == 2, lines
    assert re.search(r"raw message 1 quarantined: not an email message", lines[0])
    assert re.search(r"raw message 2 quarantined: .*more than 1000 MIME parts", lines[1])


@pytest.mark.slow
def test_serve_logs_no_traceback_for_expected_quarantines(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", max_size="5MB")
    log = tmp_path / "serve.log"
    with serve_process(config, log):
        port = int(re.findall(rb"listening on [\d.]+:(\d+)", log.read_bytes())[0])
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("galore@example.org", ["support@example.com"], too_many_parts())
            smtp.sendmail("", ["support@example.com"], b"Subject: nobody sent this\r\n\r\nhi\r\n")
        wait_until(lambda: log.read_text(errors="replace").count("quarantined:") >= 2, 20)
    assert "Traceback" not in log.read_text(errors="replace")
