"""Template overrides: desk-wide and per queue, checked when the config loads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import Sink, mail, run_cli, running_desk


def _write(directory: Path, name: str, text: str) -> None:
    path = directory / f"{name}.txt.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_queue_templates_override_only_that_queue(
    tmp_path: Path, db_url: str, sink: Sink, write_config: Callable[..., Path]
) -> None:
    config = write_config(db_url, sink.port)
    # give queue "infra" its own acknowledgement
    config.write_text(
        config.read_text().replace(
            '[[queues]]\nname = "infra"\n',
            '[[queues]]\nname = "infra"\ntemplates = "infra-templates"\n',
        )
    )
    _write(
        tmp_path / "infra-templates",
        "requester/ticket_created",
        "{% block subject %}Infra is on it: {{ ticket.subject }}{% endblock %}\n"
        "{% block body %}We know, {{ recipient.email }}.{% endblock %}\n",
    )
    with running_desk(config, sink) as desk:
        desk.send(mail("Mail server down", sender="a@example.org"))
        desk.send(mail("Need a mouse", sender="b@example.org"))
        desk.wait_tickets(2)
        sink.wait_for(4)
        [infra_ack] = sink.to("a@example.org")
        [it_ack] = sink.to("b@example.org")
    assert "Infra is on it: Mail server down" in str(infra_ack["Subject"])
    assert infra_ack.get_content().strip() == "We know, a@example.org."
    assert "Infra is on it" not in str(it_ack["Subject"])


def test_broken_queue_template_is_a_config_error_naming_the_queue(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    config = write_config(f"sqlite:///{tmp_path / 'md.db'}")
    config.write_text(
        config.read_text().replace(
            '[[queues]]\nname = "infra"\n',
            '[[queues]]\nname = "infra"\ntemplates = "infra-templates"\n',
        )
    )
    _write(
        tmp_path / "infra-templates",
        "agent/ticket_created",
        "{% block subject %}{{ ticket.no_such_field }}{% endblock %}{% block body %}{% endblock %}",
    )
    code, out = run_cli("check-config", "--config", str(config))
    assert code == 2
    assert "queue 'infra': agent/ticket_created" in out and "no_such_field" in out

    config.write_text(config.read_text().replace('"infra-templates"', '"missing-dir"'))
    code, out = run_cli("check-config", "--config", str(config))
    assert code == 2 and "[[queues]] 'infra' key 'templates'" in out
