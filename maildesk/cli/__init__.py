"""The `maildesk` command line: `main` is the entry point (see main.py)."""

from maildesk.cli.main import main

__all__ = ["main"]
