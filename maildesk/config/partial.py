"""The config as read commands see it while the file does not load: [database] alone.

Someone editing maildesk.toml leaves a typo; the daemon keeps its old config, and
`tickets`, `ticket show` and the other read commands still need to find the database.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from typing import Any

from maildesk.config.load import parse_config, resolve_config_path
from maildesk.config.model import Config
from maildesk.errors import ConfigError, ConfigProblem


def load_database_config(path: str | os.PathLike[str] | None = None) -> Config:
    """What read commands need from a config file that does not load: [database] (and the
    reference prefix and timezone of [desk], where valid), every other section left out.
    A section that is not valid TOML is skipped; ConfigError if [database] itself is wrong."""
    cfg_path = resolve_config_path(path)
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(cfg_path), "file", f"cannot read: {exc}")]) from None
    database, desk = (_lenient_section(text, name) for name in ("database", "desk"))
    shown = {k: v for k, v in desk.items() if k in ("ref_prefix", "timezone", "name")}
    fallback = {"address": "support@invalid.test"}
    try:
        return parse_config({"database": database, "desk": {**fallback, **shown}}, cfg_path)
    except ConfigError:
        return parse_config({"database": database, "desk": fallback}, cfg_path)


def _lenient_section(text: str, name: str) -> dict[str, Any]:
    """Section [name] of a TOML text, read alone if the whole text does not parse."""
    try:
        section = tomllib.loads(text).get(name, {})
    except tomllib.TOMLDecodeError:
        lines = text.splitlines()
        heads = [i for i, line in enumerate(lines) if re.match(r"\s*\[", line)]
        section = {}
        for start, end in zip(heads, [*heads[1:], len(lines)], strict=True):
            if re.fullmatch(rf"\s*\[\s*{name}\s*\]\s*(#.*)?", lines[start]):
                with contextlib.suppress(tomllib.TOMLDecodeError):
                    section = tomllib.loads("\n".join(lines[start + 1 : end]))
    return dict(section) if isinstance(section, dict) else {}
