"""Worker processes of the local pool: how they start, what they leave alone, when they end.

Three promises, kept here and nowhere else:

* **Spawn, never fork.** faiss and OpenMP are not fork-safe once the parent has run threads
  (a forked worker can block forever inside an OpenMP neighbour search).
* **The caller's ``__main__`` is left alone.** ``multiprocessing``'s spawn normally sends the
  child the caller's main module (``init_main_from_path`` / ``init_main_from_name`` in
  :func:`multiprocessing.spawn.get_preparation_data`) and the child re-imports it as
  ``__mp_main__``, which re-runs a script without an ``if __name__ == "__main__"`` guard or
  with a heavy top level. A task here is :func:`~ssddbc.grid_search._tasks.evaluate_config`
  on a :class:`~ssddbc.grid_search._tasks.ConfigTask`, all importable from ``ssddbc``, so
  :class:`WorkerContext` starts processes whose preparation data omits the main module
  (what loky does for its workers, ``init_main_module=False``).
* **No worker outlives the main process.** The parent passes its pid when it creates the
  worker; the initializer first asks the kernel to SIGKILL the worker when its parent dies
  (``prctl(PR_SET_PDEATHSIG)`` on Linux) and then checks that the parent is still the one
  that created it, so a parent that died during pool start-up, before the initializer ran,
  is detected too. Elsewhere (macOS) a watchdog thread polls ``getppid``. Workers ignore
  SIGINT and SIGTERM: those go to the whole process group (Ctrl-C, ``scancel``), and only the
  main process reacts (journal, resume hint, then it ends the workers itself). The kernel
  sends the parent-death signal when the *thread* that started the child ends, so a pool
  used from another thread starts its workers from one long-lived daemon thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.context
import multiprocessing.popen_spawn_posix
import multiprocessing.spawn
import numbers
import os
import queue
import signal
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import faiss
from threadpoolctl import threadpool_limits

from ssddbc._errors import SearchConfigError, SsddbcWarning
from ssddbc.grid_search._signals import deferred

__all__ = [
    "WorkerContext",
    "cap_threads",
    "init_worker",
    "resolve_n_jobs",
    "usable_cores",
]

_PR_SET_PDEATHSIG = 1


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: int | None, *, name: str = "n_jobs") -> int:
    """Worker count for ``n_jobs`` with joblib's meaning, capped at the usable cores.

    ``None`` or ``-1``: every usable core; ``-2``: all but one; ``-m``: all but ``m - 1``;
    a positive ``n``: ``n``, capped at the usable cores with a :class:`SsddbcWarning`.

    Raises
    ------
    SearchConfigError
        ``0``, a value below ``-cores``, or anything but an integer.
    """
    cores = usable_cores()
    if n_jobs is None:
        return cores
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise SearchConfigError(name, f"expected an integer, got {n_jobs!r}")
    n = int(n_jobs)
    if n == 0:
        raise SearchConfigError(
            name, "0 is not a worker count (1 runs serially, -1 uses every core)"
        )
    if n < 0:
        workers = cores + 1 + n
        if workers < 1:
            raise SearchConfigError(
                name, f"{n} leaves no worker on {cores} usable core(s); use -1 .. -{cores}"
            )
        return workers
    if n > cores:
        warnings.warn(
            f"{name}={n} is more than the {cores} usable core(s); using {cores}",
            SsddbcWarning,
            stacklevel=3,
        )
        return cores
    return n


class _NoMainPopen(multiprocessing.popen_spawn_posix.Popen):
    """Spawn a child without sending it the caller's ``__main__`` to re-import."""

    def _launch(self, process_obj: Any) -> None:
        real = multiprocessing.spawn.get_preparation_data

        def without_main(name: str) -> dict[str, Any]:
            data: dict[str, Any] = real(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        # The stdlib offers no hook for the preparation data: _launch looks the function up
        # in the spawn module at call time, so it is swapped for the duration of this call
        # (serialised by _LAUNCH_LOCK; a spawn by unrelated code in another thread during
        # those microseconds would also skip __main__, which it needs only for targets
        # defined there). Loky's workers skip the main module the same way by default.
        with _LAUNCH_LOCK:
            multiprocessing.spawn.get_preparation_data = without_main
            try:
                super()._launch(process_obj)  # type: ignore[misc]  # untyped in typeshed
            finally:
                multiprocessing.spawn.get_preparation_data = real


_LAUNCH_LOCK = threading.Lock()


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not import the caller's ``__main__``."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        if sys.platform == "win32":  # pragma: no cover - not supported by the grid search
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        return _NoMainPopen(process_obj)

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            # The kernel's parent-death signal follows the *thread* that started the child
            # (prctl(2)): started from a short-lived thread, the worker would be killed when
            # that thread ends. Such threads hand the start to one long-lived daemon thread.
            _in_starter_thread(super().start)
            return
        # SIGINT and SIGTERM wait until the child has its start-up data and this object
        # knows its pid: interrupted half-way, the child could not be killed and would die
        # on an empty pipe with a traceback on the caller's stderr.
        with deferred():
            super().start()


_STARTER_LOCK = threading.Lock()
# (the pid it belongs to, its job queue): a forked child starts a thread of its own.
_starter: tuple[int, queue.SimpleQueue[tuple[Callable[[], None], Future[None]]]] | None = None


def _in_starter_thread(start: Callable[[], None]) -> None:
    """Run ``start`` in this process's worker-starting daemon thread and wait for it."""
    global _starter
    with _STARTER_LOCK:
        if _starter is None or _starter[0] != os.getpid():
            jobs: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]] = queue.SimpleQueue()
            threading.Thread(
                target=_serve, args=(jobs,), name="ssddbc-worker-starter", daemon=True
            ).start()
            _starter = (os.getpid(), jobs)
        jobs = _starter[1]
    done: Future[None] = Future()
    jobs.put((start, done))
    done.result()


def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]]) -> None:
    while True:
        start, done = jobs.get()
        try:
            start()
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)


class WorkerContext(multiprocessing.context.SpawnContext):
    """The spawn context of one local pool; it remembers the workers it created.

    ``ProcessPoolExecutor`` creates its workers with ``mp_context.Process(...)``; here that
    makes a :class:`_WorkerProcess` and records it, so :meth:`kill_workers` can end exactly
    this pool's workers (the interrupt path must not wait for running configurations).
    """

    def __init__(self) -> None:
        super().__init__()
        self._workers: weakref.WeakSet[_WorkerProcess] = weakref.WeakSet()

    def Process(self, *args: Any, **kwargs: Any) -> _WorkerProcess:  # type: ignore[override]
        proc = _WorkerProcess(*args, **kwargs)
        self._workers.add(proc)
        return proc

    def pids(self) -> tuple[int, ...]:
        """The pids of this context's workers that are still running, sorted."""
        out = []
        for proc in list(self._workers):
            try:
                if proc.is_alive() and proc.pid is not None:
                    out.append(proc.pid)
            except (OSError, ValueError, AssertionError):  # not started, reaped or closed
                pass
        return tuple(sorted(out))

    def kill_workers(self) -> None:
        """SIGKILL every worker of this context that is still running."""
        for proc in list(self._workers):
            try:
                if proc.is_alive():
                    proc.kill()
            except (OSError, ValueError, AssertionError):  # not started, reaped or closed
                pass


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    """Poll fallback (no PR_SET_PDEATHSIG): end this process once ``parent`` is gone."""

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="ssddbc-parent-watch", daemon=True).start()


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        except (OSError, AttributeError):
            _watch_parent(parent)
    else:
        _watch_parent(parent)
    # After arming: a parent that died before this point has left us re-parented already.
    if os.getppid() != parent:
        os._exit(1)


#: Seconds between two calls of an initializer's ``housekeeping``.
HOUSEKEEPING_INTERVAL = 1.0


def init_worker(
    threads: int, parent: int, housekeeping: Callable[[], object] | None = None
) -> None:
    """Pool initializer: die with ``parent``, ignore group signals, cap the threads.

    Parameters
    ----------
    threads : int
        BLAS/OpenMP threads for this worker, so that workers × threads <= cores.
    parent : int
        The pid of the process that created the pool (``os.getpid()`` there).
    housekeeping : callable or None
        Called every :data:`HOUSEKEEPING_INTERVAL` seconds in a daemon thread of the worker,
        busy or idle (the local pool drops the memory maps of removed stores with it, so an
        idle worker of a long-lived pool keeps no deleted file's disk space).
    """
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    cap_threads(threads)
    if housekeeping is not None:
        _start_housekeeping(housekeeping)


def _start_housekeeping(job: Callable[[], object]) -> None:
    def loop() -> None:
        while True:
            time.sleep(HOUSEKEEPING_INTERVAL)
            with contextlib.suppress(Exception):  # housekeeping must never end the worker
                job()

    threading.Thread(target=loop, name="ssddbc-housekeeping", daemon=True).start()


def cap_threads(threads: int) -> None:
    """Cap BLAS (threadpoolctl), OpenMP and faiss threads of this process at ``threads``.

    The environment variables cover libraries loaded later (and their child processes);
    threadpoolctl and faiss cover the ones already loaded.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    threadpool_limits(threads)
    faiss.omp_set_num_threads(threads)
