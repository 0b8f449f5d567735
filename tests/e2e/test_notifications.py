"""Notifications and the guards around them, end to end: which mail goes out, which does not
(and that it is recorded why), the transactional outbox, retries and backoff against a real
smarthost, and templates (desk-wide overrides checked at load, HTML autoescaped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from maildesk.config import load_config
from maildesk.notify.sender import backoff_delay
from tests.conftest import Desk, Sink, mail, run_cli, running_desk, wait_until


def _suppressed(desk: Desk, ref: str) -> list[dict[str, str]]:
    return [e["data"] for e in desk.ticket(ref)["events"] if e["kind"] == "notification_suppressed"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "list"}, "Precedence: list"),
        ({"List-Id": "<staff.example.org>"}, "list-id header present"),
        ({"X-Loop": "helpdesk@other.example"}, "x-loop header present"),
        ({"Auto-Submitted": "auto-generated"}, "Auto-Submitted: auto-generated"),
    ],
)
def test_no_acknowledgement_to_list_bulk_or_looping_mail(
    desk: Desk, headers: dict[str, str], reason: str
) -> None:
    desk.send(mail("Weekly digest", headers=headers))
    [ticket] = desk.wait_tickets(1)
    [record] = wait_until(lambda: _suppressed(desk, ticket["ref"]))
    assert record == {"notification": "acknowledgement", "reason": reason}
    desk.sink.wait_for(1)  # the agents still hear of the ticket
    assert desk.sink.to("carol@example.org") == []


def test_our_own_notification_coming_back_is_ignored(desk: Desk) -> None:
    desk.send(mail("Printer on fire"))
    desk.sink.wait_for(2)
    [ack] = desk.sink.to("carol@example.org")
    desk.send(ack.as_bytes(), mail_from="support@example.com")  # e.g. a forwarding loop
    statuses = desk.wait_processed(2)
    assert statuses == ["processed", "ignored"]
    assert len(desk.tickets()) == 1


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("[notify]\nacknowledge = false\n", "acknowledgements are off"),
        (None, "acknowledgements are off"),  # the queue's own switch
    ],
)
def test_acknowledgements_can_be_turned_off_globally_or_per_queue(
    db_url: str, sink: Sink, write_config: Callable[..., Path], extra: str | None, reason: str
) -> None:
    path = write_config(db_url, sink.port, extra=extra or "")
    if extra is None:
        path.write_text(
            path.read_text().replace(
                '[[queues]]\nname = "it"\ndefault = true\n',
                '[[queues]]\nname = "it"\ndefault = true\nacknowledge = false\n',
            )
        )
    with running_desk(path, sink) as desk:
        desk.send(mail("Printer on fire"))
        [ticket] = desk.wait_tickets(1)
        assert {"notification": "acknowledgement", "reason": reason} in wait_until(
            lambda: _suppressed(desk, ticket["ref"])
        )
        sink.wait_for(1)
        assert sink.to("carol@example.org") == []


def test_outbox_is_written_with_the_ticket_or_not_at_all(
    tmp_path: Path, db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    # A template that renders with the sample context but fails on one real message: the
    # failure happens after the ticket and an outbox row were written in the transaction.
    overrides = tmp_path / "overrides" / "agent"
    overrides.mkdir(parents=True)
    (overrides / "ticket_created.txt.j2").write_text(
        "{% block subject %}New: {{ ticket.subject }}{% endblock %}{% block body %}"
        "{% if 'explode' in ticket.subject %}{{ 1 // 0 }}{% endif %}ok{% endblock %}"
    )
    path = write_config(db_url, sink.port, extra='[notify]\ntemplates = "overrides"\n')
    with running_desk(path, sink) as desk:
        desk.send(mail("Please explode"))
        desk.send(mail("Printer on fire", sender="dave@example.org"))
        statuses = desk.wait_processed(2)
        assert statuses == ["quarantined", "processed"]
        [ticket] = desk.tickets()  # the failed message left no ticket behind...
        assert ticket["subject"] == "Printer on fire"
        outbox = desk.json("outbox")  # ...and no notification about it
        assert {e["ticket"] for e in outbox} == {ticket["ref"]}
        assert all("explode" not in e["subject"] for e in outbox)


def test_backoff_doubles_up_to_the_cap(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    cfg = load_config(write_config(f"sqlite:///{tmp_path / 'md.db'}")).outbound
    assert [backoff_delay(n, cfg).total_seconds() for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    capped = replace(cfg, max_backoff=timedelta(seconds=5))
    assert backoff_delay(10, capped) == timedelta(seconds=5)


def test_temporary_failures_back_off_then_fail_at_the_limit_with_the_answer(
    desk: Desk,
) -> None:
    # max_attempts = 3, backoff 1s: 451, 451 (after 1 s), 451 (after 2 s) -> failed.
    desk.sink.data_replies.extend(["451 4.3.0 greylisted"] * 6)
    desk.send(mail("Printer on fire"))
    failed = wait_until(
        lambda: (
            entries
            if len(entries := [e for e in desk.json("outbox") if e["status"] == "failed"]) == 2
            else None
        ),
        timeout=20,
    )
    for entry in failed:
        assert entry["attempts"] == 3
        assert entry["last_error"] == "451 4.3.0 greylisted"
    assert desk.sink.messages == []


def test_a_retried_notification_keeps_its_message_id(desk: Desk) -> None:
    desk.sink.data_replies.extend(["451 4.3.0 try later", "451 4.3.0 try later"])
    desk.send(mail("Printer on fire"))
    received = desk.sink.wait_for(2, timeout=20)

    def all_sent() -> list[dict[str, object]] | None:
        entries = desk.json("outbox")
        return entries if all(e["status"] == "sent" for e in entries) else None

    entries = wait_until(all_sent, timeout=20)
    assert {m["Message-ID"] for m in received} == {e["message_id"] for e in entries}
    assert max(e["attempts"] for e in entries) == 2


def test_broken_desk_wide_template_is_a_config_error(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    directory = tmp_path / "overrides" / "requester"
    directory.mkdir(parents=True)
    (directory / "agent_reply.txt.j2").write_text(
        "{% block subject %}{{ agent.email }}{% endblock %}{% block body %}{% endblock %}"
    )
    path = write_config(
        f"sqlite:///{tmp_path / 'md.db'}", extra='[notify]\ntemplates = "overrides"\n'
    )
    code, out = run_cli("check-config", "--config", str(path))
    assert code == 2
    # The relay gets agent.name only: an agent's address never reaches a requester.
    assert "requester/agent_reply" in out and "email" in out


def test_html_part_is_autoescaped_and_only_the_body_block(
    tmp_path: Path, db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    directory = tmp_path / "overrides" / "requester"
    directory.mkdir(parents=True)
    (directory / "ticket_created.html.j2").write_text(
        "{% block subject %}SUBJECT-BLOCK{% endblock %}"
        "{% block body %}<p>We got: {{ ticket.subject }}</p>{% endblock %}"
    )
    path = write_config(db_url, sink.port, extra='[notify]\ntemplates = "overrides"\n')
    with running_desk(path, sink) as desk:
        desk.send(mail('<script>alert("x")</script> & more'))
        desk.wait_tickets(1)
        sink.wait_for(2)
        [ack] = sink.to("carol@example.org")
    html = ack.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more" in html
    assert "<script>" not in html and "SUBJECT-BLOCK" not in html
    assert "<script>" in ack.get_body(("plain",)).get_content()  # text is not HTML
