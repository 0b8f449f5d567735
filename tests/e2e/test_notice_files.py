"""The requester's files reach the agents, end to end on both databases: a PDF sent over
SMTP arrives attached to the agent's notice (read as delivered, from the Maildir
transport), the acknowledgement to the requester carries none, and the agent saves the
same bytes with `maildesk ticket attachment save`."""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import Sink, mail, running_desk, wait_until

PDF = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _delivered(outbox: Path) -> list[EmailMessage]:
    return [
        message_from_bytes(m.as_bytes(), policy=policy.default)  # type: ignore[misc]
        for m in mailbox.Maildir(outbox, create=False)
    ]


def test_a_requesters_pdf_reaches_the_agent_and_is_saved_by_cli(
    db_url: str, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url)
    config.write_text(
        config.read_text().replace('transport = "smtp"', 'transport = "maildir"\npath = "outbox"')
    )
    msg = mail("Invoice wrong", "The total on the attached invoice is off.")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice-7.pdf")
    with running_desk(config, Sink()) as desk:
        desk.send(msg)
        wait_until(lambda: [e["status"] for e in desk.json("outbox")] == ["sent", "sent"])
        [ticket] = desk.tickets()
        saved = tmp_path / "saved"
        saved.mkdir()
        code, out = desk.cli(
            "ticket", "attachment", "save", ticket["ref"], "invoice-7.pdf", "--out", str(saved)
        )
        assert code == 0, out

    notices = {str(m["To"]): m for m in _delivered(tmp_path / "outbox")}
    notice, ack = notices["alice@example.com"], notices["carol@example.org"]
    [part] = list(notice.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == ("application/pdf", "invoice-7.pdf")
    assert part.get_payload(decode=True) == PDF
    assert "1. invoice-7.pdf" in str(notice.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert list(ack.iter_attachments()) == []
    assert (saved / "invoice-7.pdf").read_bytes() == PDF
