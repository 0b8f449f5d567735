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
from maildesk.config import load_config
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


def open_app(args: argparse.Namespace, **kwargs: Any) -> App:
    """The App built from the config named on the command line (or the default one)."""
    return App.build(load_config(args.config), **kwargs)


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
