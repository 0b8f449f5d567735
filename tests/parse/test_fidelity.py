"""The fidelity corpus (tests/data/fidelity) read as its expectations say.

Every message goes through the comparison bench/fidelity.py prints (loaded here by path:
bench/ is not a package): maildesk's parse_message against the message's expected.json, the
truth, and against Python's email package with policy.default, a second opinion. A case is
right when nothing is garbled, emptied, refused, lost or wrong. The comparison's own rules are
tested on fixed readings, so they hold whatever the parser does.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "fidelity"


def _load_fidelity() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fidelity", REPO / "bench" / "fidelity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their own module up while it loads
    spec.loader.exec_module(module)
    return module


fidelity = _load_fidelity()

# Cases whose fix is not in the parser yet, and how they fail today. Strict: a case that
# starts to pass fails here until its line is removed.
NOT_YET = {}

SAMPLES = [s for s in fidelity.samples([CORPUS]) if s.expected is not None]


def _case(sample: Any) -> Any:
    name = sample.path.name.removesuffix(".eml")
    marks = [pytest.mark.xfail(strict=True, reason=NOT_YET[name])] if name in NOT_YET else []
    return pytest.param(sample, id=name, marks=marks)


def _failures(verdict: Any) -> list[str]:
    return [
        f"{f.kind}, {f.where}: {f.detail}" for f in verdict.findings if f.kind in fidelity.FAILING
    ]


@pytest.mark.parametrize("sample", [_case(s) for s in SAMPLES])
def test_message_reads_as_its_expectation_says(sample: Any) -> None:
    verdict = fidelity.check(sample)
    assert verdict.maildesk is not None, _failures(verdict)
    assert not _failures(verdict), "\n".join(_failures(verdict))


def test_every_case_has_an_expectation_and_every_expectation_a_message() -> None:
    messages = {p.name.removesuffix(".eml") for p in CORPUS.glob("*.eml")}
    specs = {p.name.removesuffix(".expected.json") for p in CORPUS.glob("*.expected.json")}
    assert messages <= specs, f"messages without an expectation: {messages - specs}"
    assert all(s.path.is_file() for s in SAMPLES)
    assert {s.path.name.removesuffix(".eml") for s in SAMPLES} == specs
    assert set(NOT_YET) <= specs, f"unknown cases in NOT_YET: {set(NOT_YET) - specs}"


def test_the_corpus_is_what_make_corpus_writes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(CORPUS / "make_corpus.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written, "make_corpus.py wrote nothing"
    stale = [n for n in written if (tmp_path / n).read_bytes() != (CORPUS / n).read_bytes()]
    assert not stale, f"committed files differ from make_corpus.py's output: {stale}"
    committed = {p.name for p in CORPUS.glob("*.eml")} | {p.name for p in CORPUS.glob("*.json")}
    assert committed == set(written), "a committed case file that make_corpus.py does not write"


# The comparison's rules, on fixed readings.


def reading(subject: str = "Printer", body: str = "The printer is broken.", **kw: Any) -> Any:
    files = tuple(
        a if isinstance(a, fidelity.Attachment) else fidelity.Attachment(*a)
        for a in kw.pop("files", ())
    )
    return fidelity.Reading(subject, kw.pop("from_addr", "a@example.org"), body, files, **kw)


def kinds(findings: list[Any]) -> set[str]:
    return {f.kind for f in findings}


@pytest.mark.parametrize(
    "text",
    ["GrÃ¼ÃŸe aus KÃ¶ln", "itâ€™s broken", "ÎÒ°Ñ¾µÍ·Ë¤»µÁË", "îÅ ÒÁÂÏÔÁÅÔ ÐÒÉÎÔÅÒ", "a \ufffd b"],
)
def test_mojibake_and_replacement_characters_are_suspicious(text: str) -> None:
    assert fidelity.suspicious(text)


@pytest.mark.parametrize(
    "text",
    ["Grüße aus Köln", "déjà vu, à la carte", "ÄÖÜ", "我把镜头摔坏了", "Привет", "naïve café"],
)
def test_real_text_is_not_suspicious(text: str) -> None:
    assert not fidelity.suspicious(text)


def test_mojibake_the_reference_does_not_have_is_garbled() -> None:
    found = fidelity.judge(reading(body="GrÃ¼ÃŸe"), reading(body="Grüße"), None, b"")
    assert "garbled" in kinds(found)


def test_an_empty_body_where_the_reference_has_text_is_emptied() -> None:
    found = fidelity.judge(reading(body=""), reading(), None, b"")
    assert kinds(found) == {"emptied"}


def test_a_file_only_the_reference_lists_is_lost() -> None:
    ref = reading(files=[("report.pdf", "application/pdf")])
    assert kinds(fidelity.judge(reading(), ref, None, b"")) == {"lost attachment"}
    same = reading(files=[("report.pdf", "application/pdf")])
    assert fidelity.judge(same, ref, None, b"") == []


def test_a_report_part_maildesk_does_not_list_is_explained() -> None:
    ref = reading(files=[("", "message/disposition-notification")])
    assert kinds(fidelity.judge(reading(), ref, None, b"")) == {"explained"}


def test_a_uuencoded_file_maildesk_takes_out_of_the_text_is_explained() -> None:
    raw = b"Subject: x\n\nlog:\nbegin 644 a.log\n#86)C\n`\nend\n"
    ref = reading(body="log:\nbegin 644 a.log\n#86)C\n`\nend")
    mine = reading(body="log:", files=[("a.log", "application/octet-stream")])
    assert kinds(fidelity.judge(mine, ref, None, raw)) == {"explained"}


def test_a_refused_message_is_refused() -> None:
    assert kinds(fidelity.judge(ValueError("no"), reading(), None, b"")) == {"refused"}


def test_the_expectation_is_the_truth() -> None:
    expected = {
        "subject": "Printer",
        "from": "a@example.org",
        "body_contains": ["printer is broken"],
        "body_excludes": ["Content-Type:"],
        "attachments": ["notes.txt"],
    }
    mine = reading(files=[("notes.txt", "text/plain")])
    assert fidelity.against_expected(mine, expected) == []
    assert kinds(fidelity.against_expected(reading(subject="Printr"), expected)) == {
        "wrong",
        "lost attachment",
    }
    junk = reading(body="The printer is broken. Content-Type: text/plain", files=mine.attachments)
    assert kinds(fidelity.against_expected(junk, expected)) == {"garbled"}


def test_the_command_exits_1_on_a_failing_message_and_0_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = b"From: a@example.org\nSubject: Printer\n\nThe printer is broken.\n"
    (tmp_path / "ok.eml").write_bytes(raw)
    assert fidelity.main([str(tmp_path)]) == 0
    assert "1 messages, 1 ok" in capsys.readouterr().out
    spec = {"subject": "Scanner", "body_contains": ["printer is broken"]}
    (tmp_path / "ok.expected.json").write_text(json.dumps(spec), encoding="utf-8")
    assert fidelity.main([str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["wrong"] == 1
    assert report["results"][0]["findings"][0]["where"] == "subject"
