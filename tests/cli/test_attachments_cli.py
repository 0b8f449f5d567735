"""`maildesk ticket attachments ID [--json]` and `maildesk ticket attachment save ID NAME|N
[--out PATH] [--force]`: a ticket's stored files, numbered as agent notices number them,
written out only where asked and never over an existing file without --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents import ALICE, Mailbox
from tests.conftest import Desk, mail

LOG = b"spooler restarted 10:02\n" * 200
PIXEL = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"


def _open_with_files(desk: Desk) -> str:
    """A ticket whose first mail carries a log, a tracking pixel and a second `log.txt`."""
    alice = Mailbox(desk, ALICE)
    msg = mail("Printer on fire")
    msg.add_attachment(LOG, maintype="text", subtype="plain", filename="log.txt")
    msg.add_attachment(PIXEL, maintype="image", subtype="gif", filename="pixel.gif")
    msg.add_attachment(b"second\n", maintype="text", subtype="plain", filename="log.txt")
    msg.add_attachment(b"%PDF-1.4\n", maintype="application", subtype="pdf", filename="a.pdf")
    desk.send(msg)
    alice.next()
    [ticket] = desk.tickets()
    return str(ticket["ref"])


def test_listing_shows_every_stored_file_numbered_and_marks_hidden_ones(desk: Desk) -> None:
    ref = _open_with_files(desk)
    files = desk.json("ticket", "attachments", ref)

    assert [(f["number"], f["filename"], f["hidden"]) for f in files] == [
        (1, "log.txt", False),
        (2, "pixel.gif", True),
        (3, "log.txt", False),
        (4, "a.pdf", False),
    ]
    assert set(files[0]) >= {
        "number",
        "filename",
        "content_type",
        "size",
        "message_id",
        "inline",
        "hidden",
    }
    assert (files[0]["content_type"], files[0]["size"], files[0]["inline"]) == (
        "text/plain",
        len(LOG),
        False,
    )
    assert files[0]["message_id"] == desk.ticket(ref)["messages"][0]["message_id"]
    code, out = desk.cli("ticket", "attachments", ref)
    assert code == 0, out
    assert "pixel.gif" in out and "hidden" in out


def test_save_by_number_into_the_current_directory(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _open_with_files(desk)
    monkeypatch.chdir(tmp_path)
    code, out = desk.cli("ticket", "attachment", "save", ref, "1")
    assert code == 0, out
    assert (tmp_path / "log.txt").read_bytes() == LOG
    assert f"saved {ref} #1 log.txt" in out


def test_save_by_name_to_a_directory_or_a_file(desk: Desk, tmp_path: Path) -> None:
    ref = _open_with_files(desk)
    code, out = desk.cli("ticket", "attachment", "save", ref, "a.pdf", "--out", str(tmp_path))
    assert code == 0, out
    assert (tmp_path / "a.pdf").read_bytes() == b"%PDF-1.4\n"
    target = tmp_path / "renamed.bin"
    code, out = desk.cli("ticket", "attachment", "save", ref, "3", "-o", str(target))
    assert code == 0, out
    assert target.read_bytes() == b"second\n"


def test_an_ambiguous_name_lists_the_numbers_and_writes_nothing(desk: Desk, tmp_path: Path) -> None:
    ref = _open_with_files(desk)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out = desk.cli("ticket", "attachment", "save", ref, "log.txt", "--out", str(out_dir))
    assert code == 1
    assert "several files named 'log.txt'" in out and "(1, 3)" in out
    assert list(out_dir.iterdir()) == []


def test_an_existing_file_is_kept_without_force(desk: Desk, tmp_path: Path) -> None:
    ref = _open_with_files(desk)
    target = tmp_path / "log.txt"
    target.write_bytes(b"mine")
    code, out = desk.cli("ticket", "attachment", "save", ref, "1", "--out", str(tmp_path))
    assert code == 1 and "exists" in out and "--force" in out
    assert target.read_bytes() == b"mine"
    code, out = desk.cli("ticket", "attachment", "save", ref, "1", "--out", str(target), "--force")
    assert code == 0, out
    assert target.read_bytes() == LOG


def test_a_symlink_in_the_way_is_not_followed(desk: Desk, tmp_path: Path) -> None:
    ref = _open_with_files(desk)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"keep")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "a.pdf").symlink_to(elsewhere)
    code, out = desk.cli("ticket", "attachment", "save", ref, "4", "-o", str(out_dir), "--force")
    assert code == 1, out
    assert elsewhere.read_bytes() == b"keep"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MD-1", "9"], "MD-1 has no attachment '9'"),
        (["MD-1", "nope.txt"], "MD-1 has no attachment 'nope.txt'"),
        (["MD-77", "1"], "ticket MD-77 not found"),
    ],
)
def test_unknown_files_and_tickets_are_clear_errors(
    desk: Desk, tmp_path: Path, args: list[str], message: str
) -> None:
    _open_with_files(desk)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out = desk.cli("ticket", "attachment", "save", *args, "--out", str(out_dir))
    assert code == 1 and message in out
    assert list(out_dir.iterdir()) == []


def test_a_stored_name_is_made_safe_again_before_it_is_written(desk: Desk, tmp_path: Path) -> None:
    ref = _open_with_files(desk)
    # A row written by an older version, or by hand: a name with a path in it.
    from sqlalchemy import update

    from maildesk.store.models import Attachment

    with desk.app.sessions() as session, session.begin():
        session.execute(
            update(Attachment).where(Attachment.filename == "a.pdf").values(filename="../../x.pdf")
        )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out = desk.cli("ticket", "attachment", "save", ref, "4", "--out", str(out_dir))
    assert code == 0, out
    assert [p.name for p in out_dir.iterdir()] == ["x.pdf"]
    assert not (tmp_path / "x.pdf").exists()
    listed = json.loads(desk.cli("ticket", "attachments", ref, "--json")[1])
    assert listed[3]["filename"] == "../../x.pdf"  # shown as stored
