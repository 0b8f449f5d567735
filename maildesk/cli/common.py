"""What every `maildesk` command shares: exit codes, opening the app, output as table or JSON."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from maildesk.app import App
from maildesk.config import load_config, load_database_config
from maildesk.errors import ConfigError
from maildesk.store.db import transaction

EX_OK, EX_USAGE, EX_CONFIG_INVALID = 0, 64, 2
EX_DATAERR, EX_TEMPFAIL, EX_SOFTWARE = 65, 75, 70

Command = Callable[[argparse.Namespace], int]


def err(text: str) -> None:
    """A line for the person at the terminal, on stderr."""
    print(text, file=sys.stderr)


def print_table(table: Table) -> None:
    """Tables fit the terminal; piped into a file or grep they are not cut at 80 columns."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


def print_json(value: Any) -> None:
    """`value` as the indented JSON every `--json` prints."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


# The commands that only read the database, and so run on [database] alone while the rest
# of the config has errors (someone is editing it; the daemon keeps its old config). Each is
# named by its command and, for commands of actions, the actions that read (None: all).
READ_COMMANDS: dict[str, frozenset[str] | None] = {
    "tickets": None,
    "ticket": frozenset({"show", "attachments"}),
    "sla": None,
    "outbox": frozenset({"list"}),
    "quarantine": frozenset({"list", "show"}),
    "status": None,
    "report": None,
    "contacts": None,
    "contact": frozenset({"show"}),
    "problems": None,
}
# Where a command of actions keeps the action it was given (absent or None: its default).
_ACTION_DESTS = ("ticket_command", "contact_command", "action")
_DEFAULT_ACTIONS = {"outbox": "list", "quarantine": "list"}


def is_read_command(args: argparse.Namespace) -> bool:
    """Whether the command given only reads (READ_COMMANDS)."""
    command = getattr(args, "command", None)
    if command not in READ_COMMANDS:
        return False
    actions = READ_COMMANDS[command]
    if actions is None:
        return True
    given = next((getattr(args, d) for d in _ACTION_DESTS if getattr(args, d, None)), None)
    return (given or _DEFAULT_ACTIONS.get(command)) in actions


def open_app(args: argparse.Namespace, **kwargs: Any) -> App:
    """The App built from the config named on the command line (or the default one).

    A read command runs on the config's [database] alone when the rest does not load,
    with a warning naming every error; any other command stops at the errors.
    """
    try:
        return App.build(load_config(args.config), **kwargs)
    except ConfigError as exc:
        if not is_read_command(args):
            raise
        config = load_database_config(args.config)
        err(f"maildesk: warning: {config.path} has errors; reading with its [database] only:")
        for problem in exc.problems:
            err(f"  {problem}")
        return App.build(config, **kwargs)


def with_session(
    args: argparse.Namespace, fn: Callable[[App, Any], Any], *, readonly: bool = False
) -> Any:
    """`fn(app, session)` in one transaction of a freshly opened app, closed afterwards."""
    app = open_app(args)
    try:
        with transaction(app.sessions, readonly=readonly) as session:
            return fn(app, session)
    finally:
        app.close()


def operator() -> str:
    """Who runs this command, for the record a drop leaves."""
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "operator"


@dataclass(frozen=True)
class Parsers:
    """Where a module adds its subcommands, with the option sets they share."""

    sub: argparse._SubParsersAction[argparse.ArgumentParser]
    common: argparse.ArgumentParser  # --config, --verbose: on every command
    json_flag: argparse.ArgumentParser  # --json: on the commands that can print it

    def add(
        self,
        name: str,
        func: Command,
        help: str,
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> argparse.ArgumentParser:
        """A subcommand `name` that runs `func`, with the common options and `parents`."""
        sp = self.sub.add_parser(name, help=help, parents=[self.common, *parents])
        sp.set_defaults(func=func)
        return sp

    def group(self, name: str, help: str, dest: str) -> Parsers:
        """A command of actions (`maildesk NAME ACTION`), the action stored as `dest`."""
        parser = self.sub.add_parser(name, help=help)
        actions = parser.add_subparsers(dest=dest, metavar="ACTION", required=True)
        return replace(self, sub=actions)
