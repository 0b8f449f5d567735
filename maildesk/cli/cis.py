"""`maildesk ci list [--json]` (the CI inventory of `[cmdb] path`) and
`maildesk ci import FILE [--dry-run] [--json]` (check an inventory file and put it in place;
the daemon reloads it)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from rich.table import Table

from maildesk.cli.common import EX_OK, Parsers, print_json, print_table
from maildesk.config import load_config
from maildesk.config.inventory import read_inventory
from maildesk.errors import ConfigError, MaildeskError
from maildesk.routing.cis import Ci


def add_ci(parsers: Parsers) -> None:
    """`maildesk ci list|import`."""
    ci = parsers.group("ci", "configuration items ([cmdb] path)", "ci_command")
    ci.add("list", cmd_ci_list, "the CI inventory", [parsers.json_flag])
    sp = ci.add(
        "import", cmd_ci_import, "check an inventory file and install it", [parsers.json_flag]
    )
    sp.add_argument("file", help="a .csv or .toml inventory (the format of [cmdb] path)")
    sp.add_argument(
        "--dry-run", action="store_true", help="only say which CIs it adds, removes or changes"
    )


def ci_json(ci: Ci) -> dict[str, Any]:
    """A CI as `ci list --json` gives it."""
    return {
        "name": ci.name,
        "kind": ci.kind,
        "services": list(ci.services),
        "owner": ci.owner,
        "aliases": list(ci.aliases),
        "attributes": dict(ci.attributes),
    }


def cmd_ci_list(args: argparse.Namespace) -> int:
    """Every CI of the inventory, with its services and aliases."""
    config = load_config(args.config)
    rows = [ci_json(c) for c in config.inventory.cis]
    if args.json:
        print_json(rows)
        return EX_OK
    table = Table("name", "kind", "services", "owner", "aliases")
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"] or "-",
            " ".join(r["services"]) or "-",
            r["owner"] or "-",
            " ".join(r["aliases"]) or "-",
        )
    print_table(table)
    path = config.cmdb.path
    if path is None:
        print("no inventory: [cmdb] path is not configured")
    elif not path.is_file():
        print(f"no inventory yet: {path} does not exist (`maildesk ci import FILE` writes it)")
    return EX_OK


def cmd_ci_import(args: argparse.Namespace) -> int:
    """Check FILE against the configured services; unless --dry-run, copy it to [cmdb] path."""
    config = load_config(args.config)
    target = config.cmdb.path
    if target is None:
        raise MaildeskError("no [cmdb] path configured: where would the inventory go?")
    source = Path(args.file)
    if source.suffix.lower() != target.suffix.lower():
        raise MaildeskError(f"{source} is not a {target.suffix} file like [cmdb] path {target}")
    if not source.is_file():
        raise MaildeskError(f"{source}: no such file")
    cis, problems = read_inventory(source, {s.name for s in config.services})
    if problems:
        raise ConfigError(problems)
    result: dict[str, Any] = {"path": str(target), **inventory_changes(config.inventory.cis, cis)}
    result["written"] = not args.dry_run
    if not args.dry_run:
        _install(source.read_bytes(), target)
    if args.json:
        print_json(result)
        return EX_OK
    for what in ("added", "removed", "changed"):
        if result[what]:
            print(f"{what}: {', '.join(result[what])}")
    done = "written to" if result["written"] else "would be written to (--dry-run)"
    print(f"{len(cis)} CIs {done} {target}")
    return EX_OK


def inventory_changes(old: tuple[Ci, ...], new: tuple[Ci, ...]) -> dict[str, list[str]]:
    """Which CIs a new inventory adds, removes and changes, by name."""
    before = {c.name: c for c in old}
    after = {c.name: c for c in new}
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(n for n in set(before) & set(after) if before[n] != after[n]),
    }


def _install(content: bytes, target: Path) -> None:
    """Write the inventory in one step (a reader never sees half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".inventory-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
