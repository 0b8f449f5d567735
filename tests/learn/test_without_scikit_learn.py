"""A desk without the `learn` extra (scikit-learn blocked in a fresh interpreter): the
pipeline routes by rules and says so once; `maildesk learn` says how to enable it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from maildesk.app import App
from maildesk.config import load_config
from maildesk.learn.model import INSTALL_HINT, dump, signing_key
from maildesk.store import repo
from maildesk.store.db import transaction
from tests.learn.synthetic import LEARNING

SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    sys.modules["sklearn"] = None  # as if the extra were not installed
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from maildesk import cli
    from maildesk.app import App
    from maildesk.config import load_config
    from tests.learn.synthetic import deliver, mail, routed

    app = App.build(load_config(sys.argv[1]))
    deliver(app, mail("locked password", "login"), mail("VPN down", "since 9"))
    queues = [routed(app, s)[0].queue for s in ("locked password", "VPN down")]
    suggested = [routed(app, s)[1].get("suggestions") for s in ("locked password", "VPN down")]
    app.close()
    code = cli.main(["learn", "--config", sys.argv[1]])
    print(json.dumps({"queues": queues, "suggested": suggested, "learn_exit": code}))
    """
)


def test_without_scikit_learn_the_desk_routes_by_rules_and_logs_once(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    path = write_config(f"sqlite:///{tmp_path / 'desk.db'}", extra=LEARNING.format(more=""))
    app = App.build(load_config(path))
    try:  # a model is stored: only the missing library keeps it out
        with transaction(app.sessions) as session:
            blob, digest = dump("queue", {"not": "used"}, signing_key(repo.desk_secret(session)))
            repo.save_model(session, "queue", blob, digest, {}, app.now())
    finally:
        app.close()
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path)],
        capture_output=True, text=True, cwd=root, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["queues"] == ["it", "infra"]  # the default queue, and the rule's
    assert result["suggested"] == [None, None]
    assert result["learn_exit"] == 1
    assert done.stderr.count("learned routing off for queue") == 1, done.stderr
    assert INSTALL_HINT in done.stderr


def test_learning_off_never_looks_for_a_model(
    tmp_path: Path, write_config: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.learn.synthetic import deliver, mail, routed

    app = App.build(load_config(write_config(f"sqlite:///{tmp_path / 'desk.db'}")))
    try:
        deliver(app, mail("locked password", "login"))
        assert "suggestions" not in routed(app, "locked password")[1]
        assert not [r for r in caplog.records if r.name.startswith("maildesk.learn")]
    finally:
        app.close()
