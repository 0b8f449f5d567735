"""/metrics moving as mail arrives over SMTP, and the requester status page linked from the
acknowledgement: status and public messages, never an internal note."""

from __future__ import annotations

import smtplib

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import mail, wait_until
from tests.http.conftest import ADMIN_TOKEN, Web, status_link


def scrape(web: Web) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    with web.client() as http:
        response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def sample(web: Web, name: str, **labels: str) -> float:
    return scrape(web).get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_and_gauges_move_as_mail_arrives(web_desk: Web) -> None:
    before = scrape(web_desk)
    assert before[("maildesk_store_up", ())] == 1
    assert before[("maildesk_backlog_messages", ())] == 0
    assert before[("maildesk_outbox_messages", (("status", "queued"),))] == 0
    assert ("maildesk_messages_accepted_total", (("source", "smtp"),)) not in before

    web_desk.desk.send(mail("Mail server down"))
    web_desk.desk.send(mail("Printer on fire"))
    with smtplib.SMTP("127.0.0.1", web_desk.desk.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("x@example.org")
        assert smtp.rcpt("nobody@elsewhere.example")[0] == 550

    wait_until(lambda: sample(web_desk, "maildesk_pipeline_messages_total", outcome="created") == 2)
    after = scrape(web_desk)
    assert after[("maildesk_messages_accepted_total", (("source", "smtp"),))] == 2
    assert after[("maildesk_messages_refused_total", (("code", "550"), ("source", "smtp")))] == 1
    assert after[("maildesk_pipeline_seconds_count", ())] == 2
    assert after[("maildesk_rule_hits_total", (("rule", "outages are P1 for infra"),))] == 1
    open_infra = (("priority", "P1"), ("queue", "infra"), ("status", "new"))
    assert after[("maildesk_tickets_open", open_infra)] == 1
    # The acknowledgements and agent notices go out through the sink: counted as sent.
    wait_until(
        lambda: (
            sample(web_desk, "maildesk_outbox_messages", status="sent") >= 2
            and sample(web_desk, "maildesk_notifications_sent_total", kind="acknowledgement") == 2
        )
    )
    assert sample(web_desk, "maildesk_sla_breaches_total") == 0


def test_the_status_page_shows_status_and_public_messages_only(web_desk: Web) -> None:
    web_desk.desk.send(mail("VPN broken", "It drops every five minutes."))
    web_desk.desk.wait_tickets(1)
    link = status_link(web_desk, "VPN broken")
    code, out = web_desk.desk.cli(
        "ticket", "note", "MD-1", "--as", "alice@example.com", "-m", "Internal: blame the ISP"
    )
    assert code == 0, out
    code, out = web_desk.desk.cli(
        "ticket", "reply", "MD-1", "--as", "alice@example.com", "-m", "Please restart the client."
    )
    assert code == 0, out
    with web_desk.client(None) as anonymous:
        page = anonymous.get(link)
        assert page.status_code == 200, page.text
        assert "MD-1" in page.text and "VPN broken" in page.text
        assert "It drops every five minutes." in page.text
        assert "Please restart the client." in page.text
        assert "blame the ISP" not in page.text and "alice@example.com" not in page.text
        assert page.headers["cache-control"] == "no-store"
        token = link.rsplit("/", 1)[1]
        forged = token[:-1] + ("0" if token[-1] != "0" else "1")
        for wrong in (forged, "2-" + token.split("-")[1], "1", "MD-1", "x" * 80):
            assert anonymous.get(f"/status/{wrong}").status_code == 404
    with web_desk.client(ADMIN_TOKEN) as admin:
        internal = admin.get("/api/tickets/MD-1").json()
    assert any("blame the ISP" in m["body_text"] for m in internal["messages"])
