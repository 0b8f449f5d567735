"""The `maildesk` command. Only this module (and the daemon) decides exit codes and logging."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from maildesk import logctx
from maildesk.cli import (
    admin,
    catalog,
    changes,
    cis,
    contacts,
    kb,
    learn,
    mail,
    problems,
    queues,
    report,
    search,
    serve,
    services,
    tickets,
)
from maildesk.cli.common import EX_CONFIG_INVALID, EX_OK, EX_TEMPFAIL, EX_USAGE, Parsers, err
from maildesk.config import resolve_config_path
from maildesk.errors import ConfigError, MaildeskError, NotFound, StoreUnavailable

DESCRIPTION = """\
maildesk: an email-driven help desk. Requesters write to the support address; every mail
becomes or updates a ticket, routed to a queue by rules, with acknowledgements, agent
notices and SLA clocks. Agents answer by replying to the mail, or with these commands.
Run `maildesk serve` as the daemon; `maildesk COMMAND --help` tells more about each command.
"""

# The commands in the order `maildesk --help` lists them; each module adds its own.
COMMANDS: tuple[Callable[[Parsers], None], ...] = (
    serve.add_serve,
    admin.add_init,
    admin.add_check_config,
    mail.add_deliver,
    mail.add_import,
    admin.add_route,
    learn.add_learn,
    tickets.add_tickets,
    tickets.add_ticket,
    contacts.add_contacts,
    admin.add_outbox,
    mail.add_quarantine,
    tickets.add_sla,
    problems.add_problems,
    changes.add_changes,
    catalog.add_catalog,
    services.add_services,
    cis.add_ci,
    report.add_report,
    mail.add_poll,
    admin.add_status,
    admin.add_db,
    kb.add_kb,
    search.add_search,
    queues.add_queue,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `maildesk` command; its exit code says how it went."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Absent on the command line: the options stay unset (SUPPRESS) wherever they may be
    # given, before or after the command, so neither place overwrites the other.
    args.config = getattr(args, "config", None)
    args.verbose = getattr(args, "verbose", False)
    if not getattr(args, "func", None):
        parser.print_help()
        return EX_USAGE
    _configure_logging(args)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        err(f"configuration error in {resolve_config_path(args.config)}:")
        for problem in exc.problems:
            err(f"  {problem}")
        return EX_CONFIG_INVALID
    except StoreUnavailable as exc:
        err(f"maildesk: database unavailable: {exc}")
        return EX_TEMPFAIL
    except NotFound as exc:
        err(f"maildesk: {exc}")
        return 1
    except MaildeskError as exc:
        err(f"maildesk: {exc}")
        return 1
    except BrokenPipeError:
        return EX_OK


def _configure_logging(args: argparse.Namespace) -> None:
    level = (
        logging.DEBUG
        if args.verbose
        else logging.INFO
        if args.command == "serve"
        else logging.WARNING
    )
    # Text until the config is read: `serve` then switches to its [log] format.
    handler = logging.StreamHandler(sys.stderr)
    logctx.install(handler)
    logging.basicConfig(level=level, handlers=[handler])
    # aiosmtpd logs every SMTP command at INFO, alembic every migration step, APScheduler
    # every run: too chatty. mail-parser and tnefparse warn about every odd message or
    # winmail.dat they read; maildesk logs what matters about those itself (one line per
    # quarantined message).
    for noisy in ("mail.log", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    for parser in ("mailparser", "tnefparse"):
        logging.getLogger(parser).setLevel(max(level, logging.ERROR))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command, with --config and --verbose on each."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        default=argparse.SUPPRESS,
        help="config file (default: $MAILDESK_CONFIG or ./maildesk.toml)",
    )
    common.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log debugging detail on stderr",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="machine-readable output")

    # No set_defaults for the common options here: the parents share their actions, so a
    # default set on this parser would be set on every command's too and overwrite
    # `maildesk --config PATH COMMAND` with None.
    parser = argparse.ArgumentParser(
        prog="maildesk",
        description=DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"maildesk {_version()}", help="show the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = Parsers(sub=sub, common=common, json_flag=json_flag)
    for add in COMMANDS:
        add(parsers)
    return parser


def _version() -> str:
    try:
        return version("maildesk")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"
