"""What ``ssddbc-search`` says and how it ends: its name, exit statuses and message lines."""

from __future__ import annotations

import sys

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "PROG",
    "BadInput",
    "IOFailure",
    "say",
    "warn_line",
]

PROG = "ssddbc-search"

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class BadInput(Exception):
    """An input or environment problem found before any work: one line, exit status 2."""


class IOFailure(Exception):
    """Writing the run folder failed mid-run (disk full, file-size limit): exit status 1."""


def say(msg: str, quiet: bool = False) -> None:
    """Progress: on stderr, hidden by --quiet (stdout carries only the run folder and table)."""
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def warn_line(msg: str) -> None:
    """A warning as one ``ssddbc-search: warning: ...`` line on stderr."""
    print(f"{PROG}: warning: {msg}", file=sys.stderr, flush=True)
