"""The delivery loop, driven by fake executors: exactly once, dead workers, engine failures."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from knncache import KnnRef
from ssddbc.grid_search._execution import Engine, ExternalExecutor, WorkerCrashedError, run_tasks
from ssddbc.grid_search._inputs import SharedInputs
from ssddbc.grid_search._tasks import ConfigResult, ConfigTask, cell

_REF = KnnRef(
    root="unused-store", fingerprint="0" * 32, n=10, k=3, d=2, metric="euclidean", persistent=False
)
_SHARED = SharedInputs(ref=_REF, split_array="split_0", has_pairwise=True, searched=False)


def _tasks(n: int) -> list[ConfigTask]:
    return [ConfigTask(shared=_SHARED, k=k, density_percentile=50, group="g") for k in range(n)]


class FakePool(Executor):
    """Settles what is in flight shortly after a submission; a dying task breaks the pool.

    Like a real ``ProcessPoolExecutor``: once broken, every future in flight fails with
    ``BrokenProcessPool`` and ``submit`` raises it. Settling from a timer thread lets the
    loop fill its window first, so innocent tasks are in flight when one dies.
    """

    def __init__(self, die: Callable[[ConfigTask], bool]) -> None:
        self.die = die
        self.broken = False
        self.pending: list[tuple[Future[Any], ConfigTask]] = []
        self.lock = threading.Lock()
        self.submitted: list[tuple[str, int, int]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.broken:
            raise BrokenProcessPool("broken")
        (task,) = args
        self.submitted.append(cell(task))
        future: Future[Any] = Future()
        with self.lock:
            self.pending.append((future, task))
        threading.Timer(0.02, self._settle).start()
        return future

    def _settle(self) -> None:
        with self.lock:
            self._settle_locked()

    def _settle_locked(self) -> None:
        # Settles everything submitted so far: a dying task takes the others with it.
        if self.broken or any(self.die(t) for _, t in self.pending):
            self.broken = True
            for f, _ in self.pending:
                f.set_exception(BrokenProcessPool("a process died"))
        else:
            for f, t in self.pending:
                f.set_result(ConfigResult(group=t.group, k=t.k, density_percentile=50, ok=True))
        self.pending.clear()


class FakeEngine(Engine):
    def __init__(self, die: Callable[[ConfigTask], bool], window: int = 3) -> None:
        self.die = die
        self.window = window
        self.pools = [FakePool(die)]

    @property
    def executor(self) -> Executor:
        return self.pools[-1]

    def replace(self) -> bool:
        self.pools.append(FakePool(self.die))
        return True


def _run(engine: Engine, tasks: list[ConfigTask]) -> tuple[list[ConfigResult], list[str]]:
    got: list[ConfigResult] = []
    events: list[str] = []
    run_tasks(tasks, engine=engine, on_result=got.append, on_event=events.append)
    return got, events


def test_every_task_is_delivered_exactly_once() -> None:
    tasks = _tasks(10)
    got, events = _run(FakeEngine(lambda t: False), tasks)
    assert sorted(r.k for r in got) == list(range(10))
    assert all(r.ok for r in got) and events == []


def test_a_task_that_killed_its_worker_once_is_retried_and_succeeds() -> None:
    deaths: Counter[int] = Counter()

    def die(task: ConfigTask) -> bool:
        if task.k == 4 and deaths[4] == 0:
            deaths[4] += 1
            return True
        return False

    engine = FakeEngine(die)
    got, events = _run(engine, _tasks(10))
    assert sorted(r.k for r in got) == list(range(10))
    assert all(r.ok for r in got)
    assert len(engine.pools) == 2 and events and "retries" in events[0]


def test_a_task_that_kills_every_worker_is_recorded_failed_and_the_rest_completes() -> None:
    engine = FakeEngine(lambda t: t.k == 4)
    got, _ = _run(engine, _tasks(10))
    assert sorted(r.k for r in got) == list(range(10))  # once each
    failed = [r for r in got if not r.ok]
    assert [r.k for r in failed] == [4]
    assert "died 2 times" in failed[0].error
    # Innocent tasks in flight with it were retried, never failed; after the first death
    # each suspect ran alone, so the second death is charged to k=4 only.
    assert engine.pools[-2].submitted[-1][1] == 4  # its second death: k=4 alone in flight
    assert len(engine.pools) == 3


def test_a_wrong_or_failed_future_becomes_a_failed_result() -> None:
    class Odd(Executor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Future[Any]:
            (task,) = args
            f: Future[Any] = Future()
            if task.k == 1:
                f.set_exception(RuntimeError("KilledWorker-like\nfailure"))
            elif task.k == 2:
                f.set_result(ConfigResult(group="other", k=9, density_percentile=1, ok=True))
            else:
                f.set_result(ConfigResult(group="g", k=task.k, density_percentile=50, ok=True))
            return f

    got, _ = _run(ExternalExecutor(Odd(), 2), _tasks(4))
    by_k = {r.k: r for r in got}
    assert sorted(by_k) == [0, 1, 2, 3]
    assert not by_k[1].ok and "RuntimeError: KilledWorker-like failure" in by_k[1].error
    assert not by_k[2].ok and "returned the result of 'other'" in by_k[2].error
    assert by_k[0].ok and by_k[3].ok


def test_an_external_pool_that_breaks_raises_after_delivering_what_finished() -> None:
    pool = FakePool(lambda t: t.k == 3)
    got: list[ConfigResult] = []
    with pytest.raises(WorkerCrashedError) as info:
        run_tasks(_tasks(6), engine=ExternalExecutor(pool, 1), on_result=got.append)
    assert info.value.completed == len(got)


def test_an_exception_in_on_result_stops_the_loop_and_cancels(tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    def on_result(r: ConfigResult) -> None:
        raise Stop

    with pytest.raises(Stop):
        run_tasks(_tasks(5), engine=FakeEngine(lambda t: False), on_result=on_result)
