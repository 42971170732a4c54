"""Running grid-search tasks on an executor: a local process pool, serial, or any other.

The search depends only on :class:`concurrent.futures.Executor`. Without one, a local pool is
started with the *spawn* method: faiss and OpenMP are not fork-safe once the parent has run
threads (a forked worker can block forever inside an OpenMP neighbour search), and spawn is
what the original research code needed but did not get. Each worker caps its BLAS/OpenMP
threads so that workers × threads never exceeds the cores.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from ssddbc._errors import SsddbcError
from ssddbc.grid_search._tasks import ConfigResult, ConfigTask, evaluate_config, init_worker

__all__ = [
    "WorkerCrashedError",
    "default_workers",
    "engine_failure",
    "local_executor",
    "run_tasks",
]


class WorkerCrashedError(SsddbcError, RuntimeError):
    """A worker process died (killed, out of memory) while configurations were running.

    Attributes
    ----------
    completed : int
        Configurations whose results were delivered before the crash.
    pending : int
        Configurations without a result.
    """

    def __init__(self, completed: int, pending: int) -> None:
        self.completed = completed
        self.pending = pending
        super().__init__(
            f"a worker process died with {pending} configuration(s) unfinished "
            f"({completed} finished and kept)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.completed, self.pending))


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def default_workers(n_tasks: int, max_workers: int | None) -> int:
    """Number of local workers: ``max_workers`` or the usable cores, never more than tasks."""
    workers = _cpu_count() if max_workers is None else max_workers
    return max(1, min(workers, n_tasks))


@contextmanager
def local_executor(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A spawn-started process pool whose workers share the cores without oversubscription."""
    threads = max(1, _cpu_count() // workers)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(threads,),
    )
    try:
        yield pool
    except BaseException:
        # Ctrl-C or an error in the caller: drop queued work, do not wait for it.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)


def run_tasks(
    tasks: Sequence[ConfigTask],
    *,
    max_workers: int | None = None,
    executor: Executor | None = None,
    on_result: Callable[[ConfigResult], None],
    progress: Callable[[ConfigResult], None] | None = None,
) -> None:
    """Run every task, calling ``on_result`` in the main process as each one finishes.

    Parameters
    ----------
    tasks : sequence of ConfigTask
        What to run.
    max_workers : int or None
        Local pool size when ``executor`` is None; 1 runs the tasks in this process, through
        the same code path as a worker.
    executor : Executor or None
        Any ``concurrent.futures`` executor (for example ``dask.distributed`` ``Client
        .get_executor()``); its workers must be able to import ``ssddbc`` and read the
        store's files at the same path.
    on_result : callable
        Called once per task with its :class:`ConfigResult` as soon as it arrives (results
        are journaled there, so a crash loses nothing finished). A task the executor failed
        to run (a Dask ``KilledWorker``, a cancelled task) arrives as a failed result with
        the error, not as an exception.
    progress : callable or None
        Called after ``on_result`` (progress bar or log line).

    Raises
    ------
    WorkerCrashedError
        A worker process of the local pool died (the whole pool is then unusable); every
        result that arrived before has been delivered.
    """

    def deliver(result: ConfigResult) -> None:
        on_result(result)
        if progress is not None:
            progress(result)

    if not tasks:
        return
    if executor is not None:
        _drain(executor, tasks, deliver)
        return
    workers = default_workers(len(tasks), max_workers)
    if workers == 1:
        for task in tasks:
            deliver(evaluate_config(task))
        return
    with local_executor(workers) as pool:
        _drain(pool, tasks, deliver)


def _drain(
    executor: Executor, tasks: Sequence[ConfigTask], deliver: Callable[[ConfigResult], None]
) -> None:
    """Submit every task and deliver each one's result exactly once, as it completes.

    Exactly once holds for any executor because delivery follows the futures, not the
    engine's attempts: ``as_completed`` yields each future once, and a
    ``concurrent.futures.Future`` can be resolved only once. When a Dask worker dies, the
    scheduler reruns its tasks elsewhere, but the client-side future of each task resolves
    once, with the final outcome, so ``results.csv`` cannot get a configuration twice.
    Each future is dropped once delivered, so only pending ones are cancelled on an error.
    """
    futures: dict[Future[ConfigResult], ConfigTask] = {
        executor.submit(evaluate_config, t): t for t in tasks
    }
    done = 0
    try:
        for future in as_completed(futures):
            # Drop our reference as soon as a future is done: with Dask this releases the
            # result on the worker, so a worker that dies later does not make the cluster
            # recompute configurations that were already delivered.
            task = futures.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool:
                raise WorkerCrashedError(done, len(tasks) - done) from None
            except Exception as exc:
                # evaluate_config never raises, so this is the engine failing to run the
                # task: Dask's KilledWorker after the task's workers died more often than
                # distributed.scheduler.allowed-failures, a task cancelled on the cluster, a
                # worker unable to unpickle it. One configuration fails; the search goes on.
                result = engine_failure(task, exc)
            else:
                if (result.group, result.k, result.density_percentile) != _cell(task):
                    result = engine_failure(
                        task,
                        RuntimeError(
                            f"the executor returned the result of {result.group!r} "
                            f"k={result.k} dp={result.density_percentile} for this task"
                        ),
                    )
            deliver(result)
            done += 1
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _cell(task: ConfigTask) -> tuple[str, int, int]:
    return task.group, task.k, task.density_percentile


def engine_failure(task: ConfigTask, exc: BaseException) -> ConfigResult:
    """A failed :class:`ConfigResult` for a task the executor could not run.

    The error text is one line: the exception type, its message, and what to do.
    """
    message = " ".join(str(exc).split())
    hint = ""
    if type(exc).__name__ == "KilledWorker":
        hint = (
            " (every Dask worker that ran this configuration died: look for out-of-memory "
            "kills or crashes in the worker logs; ssddbc-search --resume retries it)"
        )
    return ConfigResult(
        group=task.group,
        k=task.k,
        density_percentile=task.density_percentile,
        ok=False,
        error=f"executor failed to run the configuration: {type(exc).__name__}: {message}{hint}",
    )


class ProgressReporter:
    """A tqdm bar on an interactive terminal, plain log lines otherwise.

    Parameters
    ----------
    total : int
        Number of configurations.
    desc : str
        Label of the bar.
    enabled : bool
        False silences it completely.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool = True) -> None:
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.count = 0
        self.failed = 0
        self.best: float | None = None
        self._start = time.monotonic()
        self._next_log = 0.0
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="config", dynamic_ncols=True)

    def __call__(self, result: ConfigResult) -> None:
        self.count += 1
        if not result.ok:
            self.failed += 1
        elif self.best is None or result.score > self.best:
            self.best = result.score
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(
                best=f"{self.best:.4f}" if self.best is not None else "n/a", failed=self.failed
            )
            return
        now = time.monotonic() - self._start
        if self.count == self.total or now >= self._next_log:
            self._next_log = now + 5.0
            best = f"{self.best:.4f}" if self.best is not None else "n/a"
            print(
                f"[{self.desc}] {self.count}/{self.total} configurations, best score {best}, "
                f"{self.failed} failed, {now:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
