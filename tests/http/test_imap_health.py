"""IMAP as /healthz and /metrics see it: a mailbox read by the running desk has its last good
read and its mail counted as source imap; one that cannot be reached counts errors and has
no last read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import Sink, free_port, running_desk, wait_until
from tests.http.conftest import http_config, web_for
from tests.http.test_metrics_status import sample
from tests.ingest.test_imap import Dovecot, dovecot, mailbox_toml  # noqa: F401 (a fixture)


def test_mailboxes_on_healthz_and_metrics(
    dovecot: Dovecot,  # noqa: F811
    tmp_path: Path,
    sink: Sink,
    write_config: Callable[..., Path],
) -> None:
    boxes = mailbox_toml(dovecot, idle=False) + mailbox_toml(
        dovecot, name="nowhere", port=free_port(), idle=False
    )
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}", sink.port, extra=boxes + http_config())
    dovecot.append("Printer on fire")
    with running_desk(config, sink) as desk:
        web = web_for(desk)
        desk.wait_tickets(1)
        wait_until(lambda: sample(web, "maildesk_messages_accepted_total", source="imap") == 1)
        wait_until(lambda: sample(web, "maildesk_imap_errors_total", mailbox="nowhere") >= 1)
        with web.client(None) as http:
            mailboxes = http.get("/healthz").json()["mailboxes"]
        assert set(mailboxes) == {"support", "nowhere"}
        assert mailboxes["support"] is not None and mailboxes["nowhere"] is None
        assert sample(web, "maildesk_imap_lag_seconds", mailbox="support") >= 0
        assert sample(web, "maildesk_imap_last_success_timestamp_seconds", mailbox="support") > 0
