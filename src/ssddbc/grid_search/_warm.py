"""One process-wide warm worker pool for the one-shot grid search of training code.

Training code calls the one-shot function every few epochs; starting and stopping spawn
workers each time would cost more than a small search itself. :func:`borrow` lends the one
warm :class:`~ssddbc.grid_search._execution.LocalPool` of this process to one call at a
time (a call made while another thread holds it gets its own pool, as before, and never
waits). The pool ends after :data:`IDLE_TIMEOUT` idle seconds, at interpreter exit, with
:func:`shutdown_workers`, or (its workers killed) when a call holding it is interrupted.
A forked child forgets the parent's pool without touching it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator

from ssddbc.grid_search._execution import Engine, LocalPool, make_engine

__all__ = ["IDLE_TIMEOUT", "borrow", "shutdown_workers", "warm_pids"]

#: Seconds an unused warm pool stays up (joblib/loky's idle timeout).
IDLE_TIMEOUT: float = 300.0


class _State:
    """The warm pool and what guards it (one instance, replaced in a forked child)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool: LocalPool | None = None
        self.asked = 0  # the worker count the pool was made for
        self.owner = os.getpid()
        self.busy = False
        self.timer: threading.Timer | None = None


_state = _State()


def _forget_in_child() -> None:
    """After fork: the parent's pool, lock and timer are not this process's."""
    global _state
    _state = _State()


def _cancel_timer(state: _State) -> None:
    timer, state.timer = state.timer, None
    if timer is not None:
        timer.cancel()


def _checkout(n_workers: int, n_tasks: int) -> tuple[LocalPool | None, LocalPool | None]:
    """(the warm pool now held by the caller or None if another holds it, a pool to stop)."""
    state = _state
    with state.lock:
        if state.owner != os.getpid():  # created in another process: not ours to use
            _forget_in_child()
            state = _state
        if state.busy:
            return None, None
        _cancel_timer(state)
        stale = None
        pool = state.pool
        if pool is None or state.asked != n_workers or pool.workers < min(n_workers, n_tasks):
            stale = pool
            state.pool = pool = LocalPool(max(1, min(n_workers, n_tasks)))
            state.asked = n_workers
        state.busy = True
        return pool, stale


def _checkin(pool: LocalPool, *, interrupted: bool) -> None:
    state = _state
    with state.lock:
        if state.pool is not pool:  # shut down (or forgotten) while it was lent
            mine = False
        else:
            mine = True
            state.busy = False
            if interrupted:
                state.pool = None
            else:
                timer = threading.Timer(IDLE_TIMEOUT, _idle, args=(state, pool))
                timer.daemon = True
                state.timer = timer
                timer.start()
    if interrupted or not mine:
        _stop(pool, kill=interrupted)


def _idle(state: _State, pool: LocalPool) -> None:
    with state.lock:
        # A timer cancelled after it fired finds another (or no) timer in place.
        if state.pool is not pool or state.busy or state.timer is not threading.current_thread():
            return
        state.pool = None
        state.timer = None
    _stop(pool, kill=False)


def _stop(pool: LocalPool, *, kill: bool) -> None:
    error = KeyboardInterrupt() if kill else None
    pool.__exit__(type(error) if error else None, error, None)


@contextlib.contextmanager
def borrow(n_workers: int, n_tasks: int) -> Iterator[Engine]:
    """An entered engine for one call: the warm pool when free, else a pool of its own.

    Parameters
    ----------
    n_workers : int
        The resolved worker count (``>= 1``).
    n_tasks : int
        Tasks of the call (one per ``k``): no more workers than that are started.

    Yields
    ------
    Engine
        Serial for one worker; the warm :class:`LocalPool` (started on first use, replaced
        when made for another worker count or too small for this call) when no other
        thread holds it; otherwise a pool of its own, ended when the block ends. The warm
        pool goes back warm when the block ends normally or with an ``Exception``; an
        interruption (any other ``BaseException``) kills its workers and discards it.
    """
    if max(1, min(n_workers, n_tasks)) < 2:
        with make_engine(n_workers, n_tasks) as engine:
            yield engine
        return
    pool, stale = _checkout(n_workers, n_tasks)
    if stale is not None:
        _stop(stale, kill=False)
    if pool is None:
        with make_engine(n_workers, n_tasks) as engine:
            yield engine
        return
    try:
        yield pool
    except BaseException as exc:
        _checkin(pool, interrupted=not isinstance(exc, Exception))
        raise
    _checkin(pool, interrupted=False)


def shutdown_workers() -> None:
    """End the warm worker pool's processes now (idempotent).

    The next :func:`~ssddbc.grid_search.api.run_clustering_search_on_features` starts a new
    pool. A call running in another thread keeps its pool until it returns; the pool is
    then ended instead of kept. Also runs at interpreter exit.
    """
    state = _state
    with state.lock:
        if state.owner != os.getpid():
            return
        _cancel_timer(state)
        pool, state.pool = state.pool, None
        busy, state.busy = state.busy, False
    if pool is not None and not busy:
        _stop(pool, kill=False)


def warm_pids() -> tuple[int, ...]:
    """The pids of the warm pool's running workers, sorted (empty when there is none)."""
    state = _state
    with state.lock:
        pool = state.pool if state.owner == os.getpid() else None
        return pool.pids() if pool is not None else ()


atexit.register(shutdown_workers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
