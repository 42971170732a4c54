"""Running the grid search on a Dask cluster (the optional extra ``knncache[dask]``).

Nothing else in ``ssddbc`` imports this module at import time: the core needs only a
:class:`concurrent.futures.Executor`, and a ``dask.distributed`` ``Client.get_executor()``
is one. This module adds what the ``ssddbc-search --scheduler`` flag needs around it:
connecting to a scheduler or starting a :class:`~distributed.LocalCluster` for the run, capping
each worker's BLAS/OpenMP threads, and checking that the workers can see the feature cache.

Tasks stay what they are locally: a :class:`~ssddbc.grid_search._tasks.ConfigTask` carrying a
``knncache.KnnRef`` and the parameters. The store is not shipped; every worker opens it by path,
so it must live on a filesystem that every worker mounts at the same path.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from ssddbc._errors import SearchConfigError
from ssddbc.grid_search._workers import cap_threads

__all__ = [
    "DaskSession",
    "ThreadLimitsPlugin",
    "cap_threads",
    "dask_session",
    "parse_scheduler",
    "workers_missing_path",
]

#: Seconds to wait for a scheduler to answer, and for a LocalCluster's workers to start.
CONNECT_TIMEOUT = 30.0


def parse_scheduler(spec: str) -> int | None:
    """Validate a ``--scheduler`` value: the worker count of ``local:N``, or None for an address.

    Raises
    ------
    SearchConfigError
        ``local:`` followed by anything but a positive integer, or an empty value.
    """
    spec = spec.strip()
    if not spec:
        raise SearchConfigError("--scheduler", "empty address")
    if not spec.startswith("local:"):
        return None
    count = spec[len("local:") :]
    if not count.isdigit() or int(count) < 1:
        raise SearchConfigError(
            "--scheduler", f"expected local:N with N >= 1 worker processes, got {spec!r}"
        )
    return int(count)


class ThreadLimitsPlugin(WorkerPlugin):
    """Worker plugin: :func:`cap_threads` on every worker, including ones started later.

    Registered with ``client.register_plugin``, it also runs on a worker that the nanny
    restarts after a crash, which a one-off ``client.run`` would miss. Dask's nanny already
    starts workers with ``OMP_NUM_THREADS=1`` (``distributed.nanny.pre-spawn-environ``); this
    repeats the cap for libraries loaded later and for workers started without a nanny.
    Unlike the local pool's initializer it leaves SIGINT alone unless told otherwise: a Dask
    worker's signals belong to Dask.

    Parameters
    ----------
    threads : int
        BLAS/OpenMP threads per worker thread.
    ignore_sigint : bool
        Also ignore SIGINT in the worker process. Only for workers this run started
        (``local:N``): they share the terminal's process group, and Ctrl-C should reach the
        main process alone, which journals what finished and then closes the cluster.
    """

    name = "ssddbc-thread-limits"

    def __init__(self, threads: int = 1, *, ignore_sigint: bool = False) -> None:
        self.threads = threads
        self.ignore_sigint = ignore_sigint

    def setup(self, worker: Any) -> None:
        cap_threads(self.threads)
        if self.ignore_sigint and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class DaskSession:
    """An open connection to a Dask cluster for one run.

    Attributes
    ----------
    client : distributed.Client
        The connected client.
    executor : Executor
        ``client.get_executor()``: what :func:`~ssddbc.grid_search._execution.run_tasks` uses.
    address : str
        The scheduler's address.
    local : bool
        Whether the cluster was started for this run (``local:N``).
    """

    client: Client
    executor: Executor
    address: str
    local: bool

    def threads(self) -> int:
        """Worker threads in the cluster now (each runs one configuration at a time)."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return int(sum(w["nthreads"] for w in workers.values()))

    def workers(self) -> int:
        """Workers in the cluster now."""
        return len(self.client.scheduler_info(n_workers=-1)["workers"])


@contextmanager
def dask_session(spec: str) -> Iterator[DaskSession]:
    """Connect to ``spec`` (a scheduler address) or start ``local:N`` for the run.

    ``local:N`` starts a :class:`~distributed.LocalCluster` of N single-threaded worker
    processes and closes it on exit (client first, then the cluster, so that no worker
    outlives the run). The workers get :class:`ThreadLimitsPlugin`.

    Raises
    ------
    SearchConfigError
        Bad ``local:N``.
    OSError
        The scheduler cannot be reached within :data:`CONNECT_TIMEOUT` seconds.
    """
    n_local = parse_scheduler(spec)
    with ExitStack() as stack:
        if n_local is not None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_local,
                    threads_per_worker=1,
                    processes=True,
                    # The scheduler always serves HTTP (the dashboard when bokeh is
                    # installed); on an OS-chosen port, two runs never fight over 8787.
                    dashboard_address=":0",
                    # Workers only read memory-mapped store files; Dask's memory monitor
                    # counts those mapped pages as worker memory and could pause or kill a
                    # worker that is merely reading a large entry.
                    memory_limit=0,
                )
            )
            client = stack.enter_context(Client(cluster, timeout=CONNECT_TIMEOUT))
        else:
            client = stack.enter_context(Client(spec.strip(), timeout=CONNECT_TIMEOUT))
        client.register_plugin(ThreadLimitsPlugin(1, ignore_sigint=n_local is not None))
        if n_local is None:
            # A shared cluster outlives the run: do not leave the plugin to workers that
            # join later for someone else's work (the caps already applied stay).
            stack.callback(_unregister_quietly, client, ThreadLimitsPlugin.name)
        yield DaskSession(
            client=client,
            executor=client.get_executor(),
            address=str(client.scheduler.address),
            local=n_local is not None,
        )


def _unregister_quietly(client: Client, name: str) -> None:
    try:
        client.unregister_worker_plugin(name)
    except Exception as exc:  # best effort at exit: the scheduler may be gone already
        print(f"note: could not unregister Dask worker plugin {name!r}: {exc}", file=sys.stderr)


def workers_missing_path(client: Client, path: str) -> list[str]:
    """Addresses of the workers on which ``path`` is not a readable folder."""
    seen = client.run(_readable_dir, path)
    return sorted(addr for addr, ok in seen.items() if not ok)


def _readable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK)
