"""The one delivery loop: every task's result delivered once, whatever runs the tasks.

An :class:`Engine` says where tasks run: :class:`SerialEngine` (this process, the same code
path a worker takes), :class:`LocalPool` (spawned worker processes, see
:mod:`ssddbc.grid_search._workers`) or :class:`ExternalExecutor` (any
:class:`concurrent.futures.Executor`, e.g. a Dask ``Client.get_executor()``).
:func:`run_tasks` drives all three with the same loop: it groups the configurations into one
task per ``k`` (:func:`~ssddbc.grid_search._tasks.group_by_k`, low ``k`` first as given),
keeps at most ``engine.window`` of them in flight, delivers each configuration's result as
its task returns (the journal is written there), and handles a worker that dies: the pool is
replaced, the configurations that were in flight are retried one at a time, and one that
kills its worker again is recorded as failed while the search goes on.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from tqdm import tqdm

from ssddbc._errors import SsddbcError
from ssddbc.grid_search._signals import check_interrupted, deferred
from ssddbc.grid_search._tasks import (
    ConfigResult,
    ConfigTask,
    KTask,
    cell,
    drop_removed_resources,
    evaluate_k,
    group_by_k,
)
from ssddbc.grid_search._workers import (
    WorkerContext,
    init_worker,
    usable_cores,
)

__all__ = [
    "Engine",
    "ExternalExecutor",
    "LocalPool",
    "ProgressReporter",
    "SerialEngine",
    "WorkerCrashedError",
    "engine_failure",
    "make_engine",
    "run_tasks",
]

#: How often a configuration whose worker died is run again before it is recorded as failed.
RETRIES = 1


class WorkerCrashedError(SsddbcError, RuntimeError):
    """A worker of an executor that cannot be replaced (one the caller passed in) died.

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


class _InlineExecutor(Executor):
    """Runs each submitted call at once, in this process (the serial engine)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class Engine:
    """Where tasks run. A context manager: entering starts it, leaving ends every worker.

    Attributes
    ----------
    workers : int
        Tasks that can run at once (for the summary).
    window : int
        Tasks kept in flight by :func:`run_tasks`.
    label : str
        Named in the summary (``"serial"``, ``"local process pool"``, ``"dask ..."``).
    """

    workers: int = 1
    window: int = 1
    label: str = ""

    @property
    def executor(self) -> Executor:
        raise NotImplementedError

    def replace(self) -> bool:
        """After a worker died: start a fresh pool and return True, or False if impossible."""
        return False

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class SerialEngine(Engine):
    """Every task in this process, one after the other."""

    label = "serial"

    def __init__(self) -> None:
        self._executor = _InlineExecutor()

    @property
    def executor(self) -> Executor:
        return self._executor


class ExternalExecutor(Engine):
    """An executor the caller owns (Dask, another engine); it is neither replaced nor shut down.

    Parameters
    ----------
    executor : Executor
        Its workers must import ``ssddbc`` and read the store's files at the same path.
    workers : int
        Its parallelism (for the summary and the in-flight window).
    label : str
        How the summary names it.
    """

    def __init__(self, executor: Executor, workers: int = 1, label: str = "executor") -> None:
        self._executor = executor
        self.workers = max(1, workers)
        # Everything at once: the engine schedules (and reruns on its own worker deaths).
        self.window = sys.maxsize
        self.label = label

    @property
    def executor(self) -> Executor:
        return self._executor


class LocalPool(Engine):
    """A pool of spawned worker processes that share the cores without oversubscription.

    Parameters
    ----------
    workers : int
        Worker processes (>= 2; use :class:`SerialEngine` for 1).
    """

    label = "local process pool"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        # A little more than the workers, so none waits for the next task.
        self.window = 2 * workers
        self._threads = max(1, usable_cores() // workers)
        self._pool: ProcessPoolExecutor | None = None
        self._context = WorkerContext()

    def _start(self) -> ProcessPoolExecutor:
        self._context = WorkerContext()
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(self._threads, os.getpid(), drop_removed_resources),
        )

    def pids(self) -> tuple[int, ...]:
        """The pids of this pool's running workers, sorted (empty before the first task)."""
        return self._context.pids() if self._pool is not None else ()

    @property
    def executor(self) -> Executor:
        if self._pool is None:
            self._pool = self._start()
        return self._pool

    def replace(self) -> bool:
        self._stop(kill=True)
        self._pool = self._start()
        return True

    def _stop(self, *, kill: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            # Interrupted or broken: running configurations are not waited for.
            self._context.kill_workers()
        pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with deferred():
            self._stop(kill=kind is not None)


def make_engine(
    n_workers: int, n_tasks: int, executor: Executor | None = None, label: str = ""
) -> Engine:
    """The engine for a run: the given executor, else a local pool, else serial."""
    if executor is not None:
        return ExternalExecutor(executor, n_workers, label or "executor")
    workers = max(1, min(n_workers, n_tasks))
    return SerialEngine() if workers == 1 else LocalPool(workers)


def run_tasks(
    tasks: Sequence[ConfigTask],
    *,
    engine: Engine,
    on_result: Callable[[ConfigResult], None],
    progress: Callable[[ConfigResult], None] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> None:
    """Run every task on ``engine``, calling ``on_result`` in this process as each finishes.

    Parameters
    ----------
    tasks : sequence of ConfigTask
        What to run, one per configuration; each task's cell must be unique. The
        configurations of one ``k`` run as one :class:`~ssddbc.grid_search._tasks.KTask`.
    engine : Engine
        Where to run them (entered by the caller).
    on_result : callable
        Called exactly once per task with its :class:`ConfigResult` as soon as it arrives
        (results are journaled there, so a crash loses nothing finished). A task the engine
        failed to run (a Dask ``KilledWorker``, a cancelled task, a worker that died twice)
        arrives as a failed result with the error, not as an exception.
    progress : callable or None
        Called after ``on_result``.
    on_event : callable or None
        Told, in one line, when a worker died and what is retried.

    Raises
    ------
    WorkerCrashedError
        A worker of an :class:`ExternalExecutor` that is a local process pool died (it
        cannot be replaced); every result that arrived before has been delivered.

    Notes
    -----
    Exactly once holds for any executor because delivery follows the futures, not the
    engine's attempts: a ``concurrent.futures.Future`` resolves once, and each is dropped
    as soon as it is delivered (with Dask this also releases the result on the worker).
    When a local worker dies, Python's pool fails every task in flight; their
    configurations are then run again one at a time, so a second death is charged to
    exactly the configuration that caused it.
    """
    queue: deque[KTask] = deque(group_by_k(tasks))
    inflight: dict[Future[list[ConfigResult]], KTask] = {}
    deaths: Counter[tuple[str, int, int]] = Counter()
    suspects: set[tuple[str, int, int]] = set()
    delivered = 0

    def deliver(result: ConfigResult) -> None:
        nonlocal delivered
        on_result(result)
        delivered += 1
        if progress is not None:
            progress(result)

    try:
        while queue or inflight:
            limit = 1 if suspects else engine.window
            while queue and len(inflight) < limit:
                task = queue.popleft()
                try:
                    with deferred():
                        inflight[engine.executor.submit(evaluate_k, task)] = task
                except BrokenProcessPool:
                    # A worker died between two submissions: its tasks fail below; with
                    # none in flight, start a fresh pool now.
                    queue.appendleft(task)
                    if inflight:
                        break
                    with deferred():
                        replaced = engine.replace()
                    if not replaced:
                        raise WorkerCrashedError(delivered, len(tasks) - delivered) from None
            # A timeout, so that an interruption a callback swallowed is raised within a second.
            done, _ = wait(inflight, timeout=1.0, return_when=FIRST_COMPLETED)
            check_interrupted()
            lost: list[KTask] = []
            for future in done:
                task = inflight.pop(future)
                try:
                    results = _checked(task, future.result())
                except BrokenProcessPool:
                    lost.append(task)
                    continue
                except Exception as exc:
                    # evaluate_k never raises, so this is the engine failing to run the
                    # task (Dask's KilledWorker, a cancelled task, an unpicklable task).
                    if len(task.configs) > 1:
                        # Each configuration again on its own, so the failure is charged to
                        # exactly the ones that cause it (an engine that reruns tasks itself,
                        # like Dask, only says the whole task failed).
                        queue.extendleft(reversed([KTask((c,)) for c in task.configs]))
                        continue
                    results = [engine_failure(c, exc) for c in task.configs]
                for c in task.cells:
                    suspects.discard(c)
                for result in results:
                    deliver(result)
            if not lost:
                continue
            # The pool is broken: every other task in flight fails with it.
            lost += inflight.values()
            inflight.clear()
            with deferred():
                replaced = engine.replace()
            if not replaced:
                raise WorkerCrashedError(delivered, len(tasks) - delivered)
            isolated = len(lost) == 1 and len(lost[0].configs) == 1
            retry: list[KTask] = []
            for task in lost:
                for config in task.configs:
                    c = cell(config)
                    deaths[c] += 1
                    if isolated and deaths[c] > RETRIES:
                        suspects.discard(c)
                        deliver(
                            ConfigResult.failed(
                                config,
                                f"the worker process running this configuration died "
                                f"{deaths[c]} times (killed, or out of memory?)",
                            )
                        )
                    else:
                        # Alone from now on, so a second death is charged to exactly it.
                        suspects.add(c)
                        retry.append(KTask((config,)))
            queue.extendleft(reversed(retry))
            if on_event is not None and retry:
                on_event(
                    f"a worker process died; a new pool retries {len(retry)} "
                    "configuration(s) one at a time"
                )
    except BaseException:
        for future in inflight:
            future.cancel()
        raise


def _checked(task: KTask, results: Any) -> list[ConfigResult]:
    """The task's results, or failed results if the executor returned something else."""
    if not isinstance(results, list) or len(results) != len(task.configs):
        return [
            engine_failure(
                c, RuntimeError(f"the executor returned {type(results).__name__} for this task")
            )
            for c in task.configs
        ]
    out: list[ConfigResult] = []
    for config, result in zip(task.configs, results, strict=True):
        if not isinstance(result, ConfigResult) or result.cell != cell(config):
            what = (
                f"{result.group!r} k={result.k} dp={result.density_percentile}"
                if isinstance(result, ConfigResult)
                else type(result).__name__
            )
            result = engine_failure(
                config,
                RuntimeError(f"the executor returned the result of {what} for this task"),
            )
        out.append(result)
    return out


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
    return ConfigResult.failed(
        task, f"executor failed to run the configuration: {type(exc).__name__}: {message}{hint}"
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
        #: The best score so far of each group (superclass): scores of different feature
        #: matrices are not comparable, so the line names the group of the latest result.
        self.best: dict[str, float] = {}
        self._group = ""
        self._start = time.monotonic()
        self._next_log = 0.0
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            self._bar = tqdm(total=total, desc=desc, unit="config", dynamic_ncols=True)

    def __call__(self, result: ConfigResult) -> None:
        self.count += 1
        self._group = result.group
        if not result.ok:
            self.failed += 1
        elif result.group not in self.best or result.score > self.best[result.group]:
            self.best[result.group] = result.score
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"{self.best_text()}, {self.failed} failed")
            return
        now = time.monotonic() - self._start
        if self.count == self.total or now >= self._next_log:
            self._next_log = now + 5.0
            print(
                f"[{self.desc}] {self.count}/{self.total} configurations, {self.best_text()}, "
                f"{self.failed} failed, {now:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    def best_text(self) -> str:
        """``best score 0.1234``, or for a named group ``best score of <group> 0.1234``: the
        best so far of the latest result's group (never a maximum across groups)."""
        best = self.best.get(self._group)
        shown = f"{best:.4f}" if best is not None else "n/a"
        return f"best score of {self._group} {shown}" if self._group else f"best score {shown}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
