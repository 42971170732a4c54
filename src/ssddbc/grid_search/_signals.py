"""SIGINT and SIGTERM in the main process: one exception, raised only where it is safe.

:func:`interruptible` (the CLI's run) turns both signals into :class:`Interrupted`, so a
Slurm ``scancel`` or time limit (SIGTERM) is handled exactly like Ctrl-C: the journal keeps
every finished configuration, the workers are ended and the user is told how to resume.
Inside :func:`deferred` (starting a worker, submitting to or shutting down the pool: the
standard library's pool machinery is not safe against an exception raised at an arbitrary
point) the signal is remembered and raised when the block ends. A signal that arrives while
Python runs a callback it cannot raise from (a weak reference's callback, a ``__del__``)
would be printed as "Exception ignored" and lost; inside :func:`interruptible` it is
remembered instead, and :func:`check_interrupted` (called by the search's main loop at
least once a second) raises it, or the end of the block does.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Interrupted", "check_interrupted", "deferred", "interruptible"]


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the main process (a BaseException, like KeyboardInterrupt).

    Attributes
    ----------
    signum : int
        The signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_depth = 0
_pending: int | None = None
_installed = False
# A signal whose exception Python could not raise (see the module docstring).
_swallowed: int | None = None


def _handler(signum: int, frame: Any) -> None:
    global _pending
    if _depth:
        _pending = signum
        return
    raise Interrupted(signum)


def _unraisable(previous: Any) -> Any:
    """A ``sys.unraisablehook`` that keeps an :class:`Interrupted` for
    :func:`check_interrupted` and hands anything else to ``previous``."""

    def hook(unraisable: Any) -> None:
        global _swallowed
        if isinstance(unraisable.exc_value, Interrupted):
            _swallowed = unraisable.exc_value.signum
            return
        previous(unraisable)

    return hook


def check_interrupted() -> None:
    """Raise the :class:`Interrupted` a callback swallowed, if any (main thread only)."""
    global _swallowed
    if _swallowed is not None and threading.current_thread() is threading.main_thread():
        signum, _swallowed = _swallowed, None
        raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold an interruption back until the block ends (main thread; no-op elsewhere)."""
    global _depth, _pending
    if not _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted`.

    Also ignores SIGXFSZ, so that exceeding a file-size limit is an ``OSError`` (EFBIG) the
    run reports, not a kill. Only in the main thread (signals are delivered there); in any
    other thread the block changes nothing.
    """
    global _installed, _pending, _swallowed
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    if hasattr(signal, "SIGXFSZ"):
        saved[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(previous_hook)
    _installed, _pending, _swallowed = True, None, None
    try:
        yield
    finally:
        _installed = False
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        sys.unraisablehook = previous_hook
        swallowed, _swallowed = _swallowed, None
    if swallowed is not None:
        # Swallowed after the main loop's last check: the block finished, the signal stands.
        raise Interrupted(swallowed)
