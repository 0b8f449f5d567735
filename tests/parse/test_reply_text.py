"""The new text of a reply: quoted history and signatures stripped (maildesk.parse.reply)."""

from __future__ import annotations

import quopri
import tomllib
from pathlib import Path
from string import Template
from typing import Any

import pytest

from maildesk.parse.bodies import html_to_text
from maildesk.parse.parser import parse_message
from maildesk.parse.reply import new_text

REPLIES = Path(__file__).resolve().parents[1] / "data" / "replies"
CORPUS = REPLIES / "corpus"
NEW = "#priority P2\nI have restarted the spooler; please try again."


def corpus_cases() -> list[Any]:
    """Every case of tests/data/replies/corpus/*.toml, its id naming client and language."""
    cases = []
    for manifest in sorted(CORPUS.glob("*.toml")):
        for case in tomllib.loads(manifest.read_text(encoding="utf-8"))["case"]:
            label = f"{case['client']}-{case['language']}-{case['id']}".replace(" ", "_")
            # A case where maildesk knowingly answers otherwise than its source says why.
            known = case.get("disagreement")
            marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
            cases.append(pytest.param(case, id=label, marks=marks))
    return cases


def case_bodies(case: dict[str, Any]) -> tuple[str, str]:
    """(text, html) of a corpus case as the pipeline passes them to new_text."""
    data = (CORPUS / case["file"]).read_bytes()
    if case["kind"] == "eml":
        msg = parse_message(data)
        return msg.body_text, msg.body_html
    if case["kind"] == "html":
        return html_to_text(data.decode("utf-8")), data.decode("utf-8")
    if case["kind"] == "qp":  # a quoted-printable body, decoded as the MIME layer does
        return quopri.decodestring(data).decode("utf-8"), ""
    return data.decode("utf-8"), ""


def lines_of(text: str) -> list[str]:
    """The lines with text (a divider of underscores or dashes is none), inner whitespace
    collapsed: what a reader compares."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip(" \t_=-")]


@pytest.mark.parametrize("case", corpus_cases())
def test_corpus_reply_keeps_the_new_text_and_drops_the_history(case: dict[str, Any]) -> None:
    got = lines_of(new_text(*case_bodies(case)))
    expected = lines_of(case["expected"])
    signature = lines_of(case.get("signature", ""))
    # maildesk drops signatures; a source that keeps one may be matched with or without it.
    allowed = [expected]
    if signature and expected[-len(signature) :] == signature:
        allowed.append(expected[: -len(signature)])
    assert got in allowed


def test_the_corpus_spans_many_clients_and_languages() -> None:
    cases = [p.values[0] for p in corpus_cases()]
    assert len(cases) >= 150
    assert len({c["client"] for c in cases}) >= 12
    assert len({c["language"] for c in cases}) >= 12
    assert all((CORPUS / c["file"]).is_file() for c in cases)


def client_reply(name: str, new: str = NEW, **values: str) -> bytes:
    """A fixture from tests/data/replies filled in; CRLF line ends as clients send them."""
    defaults = {
        "FROM": "alice@example.com",
        "TO": "support+1-a00000000000000000000@example.com",
        "SUBJECT": "[MD-1] New ticket: Printer on fire",
        "IN_REPLY_TO": "<notice@example.com>",
        "REFERENCES": "<p1@client.example.org> <notice@example.com>",
        "NONCE": "0",
        "NEW": new,
    }
    text = Template((REPLIES / name).read_text(encoding="utf-8")).substitute({**defaults, **values})
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("latin-1")


CLIENTS = sorted(p.name for p in REPLIES.glob("*.eml"))


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_style_keeps_only_the_new_text(client: str) -> None:
    msg = parse_message(client_reply(client))
    assert new_text(msg.body_text, msg.body_html) == NEW


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Rebooted.\n\n-- \nAlice Admin | IT\n+49 30 1234", "Rebooted."),
        ("Rebooted.\n\nBest regards,\nAlice", "Rebooted."),
        ("Erledigt.\n\nMit freundlichen Grüßen\nAlice", "Erledigt."),
        ("Fixed.\n\nSent from my iPhone", "Fixed."),
        ("Done.\n\n> quoted\n> more quoted\n", "Done."),
        ("Look:\n>From the logs it is the spooler.", "Look:\n>From the logs it is the spooler."),
        ("Steps:\n- reboot\n- reinstall\n\nOn Mon, X wrote:\n> a", "Steps:\n- reboot\n- reinstall"),
        # A closing phrase that begins a sentence is text, not a signature.
        (
            "Hi,\nThanks, but the printer still fails with this error:\nerror 42\nsee log",
            "Hi,\nThanks, but the printer still fails with this error:\nerror 42\nsee log",
        ),
        # Bottom-posting: the quote and its attribution above the answer go.
        (
            "On Sun, Nov 22, 2026 at 10:00AM, Test Desk wrote:\n> New ticket.\n> Help.\n\n"
            "#priority P2\nMy answer.\n\n-- \nAlice",
            "#priority P2\nMy answer.",
        ),
        ("Test Desk wrote:\n> New ticket.\n\nMy answer.", "My answer."),
        ("> New ticket.\n> Help.\n\nMy answer.", "My answer."),
        # Inline answers between quotes are kept.
        ("> Is it on?\nYes.\n> Cable?\nPlugged in.", "> Is it on?\nYes.\n> Cable?\nPlugged in."),
        ("", ""),
    ],
)
def test_stripping(body: str, expected: str) -> None:
    assert new_text(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # A greeting above the quote and the answer below it: both kept.
        (
            "Hi,\n\nOn Tue, Dec 1, 2026 at 6:27 PM Carol <carol@example.org> wrote:\n> q\n\nDone.",
            "Hi,\n\nDone.",
        ),
        # Closing words that start a sentence are text.
        (
            "Fixed.\n\nThanks for waiting, the spooler was stuck.",
            "Fixed.\n\nThanks for waiting, the spooler was stuck.",
        ),
        ("Fixed.\n\nCheers\nAlice", "Fixed."),
        ("Fixed.\n\nRegards, Alice", "Fixed."),
        ("Thanks", "Thanks"),  # nothing else: a sign-off alone is the text
        ("Erledigt.\n\nVon meinem iPhone gesendet", "Erledigt."),
        # A line above "wrote:" that is the author's own text stays.
        ("I rebooted it at 10:30\nCarol wrote:\n> old\n> more", "I rebooted it at 10:30"),
        # Sentences with an attribution's verb, a number or a time are text.
        ("I sent 2 test pages:\n- page 1 ok\n- page 2 failed", None),
        ("As I wrote on 3 May:\nthe toner is empty.\nPlease order more.", None),
        ("The log writes 3 lines at 10:30:\nerror 1\nerror 2", None),
        ("Fixed it.\n\nOn Monday we will replace the others.", None),
        # A trailing quote goes; the line introducing it stays unless it names an author.
        (
            "Hi,\n\nHere is the error from 10:30:\n> error 42",
            "Hi,\n\nHere is the error from 10:30:",
        ),
        ("Done.\n\nCarol <c@example.org> hat am 01.12.2026 geantwortet:\n> q", "Done."),
        # A closing word that starts a sentence, or a sentence below a closing, is text.
        ("Rebooted the server.\nThanks for the fix", None),
        ("Rebooted the server.\n\nThanks\nPlease also check printer 4", None),
        ("Rebooted.\n\nThanks,\nAlice Admin | IT\n+49 30 1234", "Rebooted."),
        ("Fixed.\n\nMit freundlichen Grüßen\nAlice Admin\nIT-Abteilung", "Fixed."),
        # ">>> >>> link <<<" is decoration, not a quote.
        (
            "See:\n>>> >>>  http://example.org <<<\nbye",
            "See:\n>>> >>>  http://example.org <<<\nbye",
        ),
        # The message's own headers pasted above it are skipped, not taken for history.
        ("From: Alice <a@example.com>\nSent: Tue\nTo: support\n\nDone.", "Done."),
    ],
)
def test_rules_around_the_quote(body: str, expected: str | None) -> None:
    assert new_text(body) == (body if expected is None else expected)


def test_html_structure_cuts_history_the_text_does_not_show() -> None:
    # The plain part's attribution is in no known form; the HTML's gmail_quote marks it.
    text = "Done.\n\nCarol hat dies geantwortet\n\nold history line"
    html = (
        '<div>Done.</div><div class="gmail_quote">Carol hat dies geantwortet<br>'
        "old history line</div>"
    )
    assert new_text(text, html) == "Done."
    assert new_text(text) == text  # without the HTML nothing says where history starts


def test_html_to_text_result_is_used_when_there_is_no_plain_part() -> None:
    html = (
        "<div>Done.</div><hr><div><b>Von:</b> Carol &lt;c@example.org&gt;</div>"
        "<div><b>Gesendet:</b> Dienstag</div><div><b>An:</b> support</div><div>old</div>"
    )
    assert new_text(html_to_text(html), html) == "Done."


def test_unparsable_html_falls_back_to_the_text_rules() -> None:
    assert new_text("Done.\n\n> old", "<div class=gmail_quote><<<>>>") == "Done."


def test_a_forward_keeps_what_it_forwards() -> None:
    body = (
        "See the error below.\n\n---------- Forwarded message ---------\n"
        "From: Printer <printer@example.org>\nDate: Sun, 22 Nov 2026\nSubject: Error\n\n"
        "Toner low."
    )
    assert new_text(body) == body


def test_the_notice_marker_ends_the_new_text() -> None:
    body = (
        "My answer.\n\nNew ticket MD-1 in queue it.\n\nHelp, it is burning.\n\n-- \n"
        "Reply to this message to answer the requester.\n-- maildesk notice MD-1 0a1b2c3d --\n"
        "---------- Forwarded message ---------\nFrom: Carol <carol@example.org>\n\nmore"
    )
    # Cut at the marker: the forward below it is gone (the notice above is caught later).
    assert new_text(body) == "My answer.\n\nNew ticket MD-1 in queue it.\n\nHelp, it is burning."


def test_a_quoted_notice_marker_leaves_the_answer_below_it() -> None:
    body = (
        "Test Desk wrote:\n> New ticket MD-1 in queue it.\n> -- maildesk notice MD-1 0a1b2c3d --"
        "\n\nMy answer."
    )
    assert new_text(body) == "My answer."
