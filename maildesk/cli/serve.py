"""`maildesk serve`: the daemon, with its pipeline in a thread or in worker processes
(`--workers N`, `[pipeline] workers`)."""

from __future__ import annotations

import argparse
import errno

from maildesk import logctx
from maildesk.cli.common import Parsers, open_app
from maildesk.config.model import Config
from maildesk.config.pipeline import MAX_WORKERS, one_writer_message
from maildesk.errors import ConfigError, ConfigProblem, MaildeskError


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the daemon until it is stopped (or, `--as-worker`, one of its pipeline workers)."""
    app = open_app(args)
    logctx.use_format(app.config.log.format)
    try:
        if args.as_worker:
            from maildesk.daemon.pipeline_proc import run_worker

            return run_worker(app, args.as_worker)
        workers = serve_workers(app.config, args.workers)
        from maildesk.daemon.serve import serve

        app.follow_renamed_queues()
        return serve(app, workers=workers)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        smtp = app.config.smtp
        raise MaildeskError(
            f"serve: cannot listen on {smtp.host}:{smtp.port} ([smtp] listen): {exc.strerror}"
        ) from None
    finally:
        app.close()


def serve_workers(config: Config, flag: int | None) -> int:
    """How many pipeline worker processes: `--workers` if given, else `[pipeline] workers`;
    more than one on SQLite is a config error."""
    workers = config.pipeline.workers if flag is None else flag
    if workers > 1 and config.database.url.startswith("sqlite"):
        place = "serve --workers" if flag is not None else "[pipeline]"
        problem = ConfigProblem(
            str(config.path), f"{place} (or [pipeline] key 'workers')", one_writer_message(workers)
        )
        raise ConfigError([problem])
    return workers


def _workers(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = -1
    if not 0 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_WORKERS}")
    return count


def add_serve(parsers: Parsers) -> None:
    """`maildesk serve [--workers N]`."""
    sp = parsers.add("serve", cmd_serve, "run the daemon (SMTP listener, pipeline, outbox sender)")
    sp.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="run the pipeline in N worker processes beside the listener (default: "
        "[pipeline] workers, else 1; 0: in the daemon's own process); more than 1 needs "
        "PostgreSQL",
    )
    # How the daemon starts each of its worker processes: the holder id it claims mail as.
    sp.add_argument("--as-worker", metavar="HOLDER", help=argparse.SUPPRESS)
