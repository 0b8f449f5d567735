"""Compiled mail templates kept on disk, so that a process's start-up does not compile
every template again (the start-up check renders all of them: most of a start-up's time
after the imports).

Jinja's own file cache, in its per-user directory (`_jinja2-cache-UID` in the system's
temporary directory, mode 0700, refused if another user owns it), with one change: the
key of a compiled template names the environment's options as well as the template, since
the same file compiled for the text and the autoescaping environment is different code.
A changed source is compiled anew (Jinja checks its checksum); so is everything after a
Python upgrade (the cache's magic carries the version). Without a usable directory the
templates are compiled in memory as before.
"""

from __future__ import annotations

import functools
import hashlib
import logging

from jinja2 import Environment, FileSystemBytecodeCache
from jinja2.bccache import Bucket, BytecodeCache

log = logging.getLogger(__name__)

# What an environment compiles differently by (jinja2.Environment's own arguments).
OPTIONS = (
    "block_start_string", "block_end_string", "variable_start_string",
    "variable_end_string", "comment_start_string", "comment_end_string",
    "line_statement_prefix", "line_comment_prefix", "trim_blocks", "lstrip_blocks",
    "newline_sequence", "keep_trailing_newline", "optimized", "autoescape", "is_async",
)  # fmt: skip


def bucket_key(environment: Environment, name: str, filename: str | None) -> str:
    """The key of a template's compiled code: its name and file and what the environment
    compiles differently by."""
    options = [repr(getattr(environment, option)) for option in OPTIONS]
    options += [repr(environment.undefined), *sorted(environment.extensions)]
    key = hashlib.sha1(repr((name, filename, options)).encode(), usedforsecurity=False)
    return key.hexdigest()


class CompiledTemplates(FileSystemBytecodeCache):
    """Jinja's file cache keyed by template and environment options."""

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        key = bucket_key(environment, name, filename)
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket


@functools.cache
def compiled_templates() -> BytecodeCache | None:
    """The process's cache of compiled templates, or None where there is no safe directory."""
    try:
        return CompiledTemplates()
    except (OSError, RuntimeError) as exc:
        log.info("compiled templates are not kept on disk: %s", exc)
        return None
