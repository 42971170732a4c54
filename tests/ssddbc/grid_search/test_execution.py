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
from ssddbc.grid_search._tasks import ConfigResult, ConfigTask, KTask

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

    def __init__(self, die: Callable[[KTask], bool]) -> None:
        self.die = die
        self.broken = False
        self.pending: list[tuple[Future[Any], KTask]] = []
        self.lock = threading.Lock()
        self.submitted: list[tuple[str, int, int]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self.broken:
            raise BrokenProcessPool("broken")
        (task,) = args
        self.submitted.extend(task.cells)
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
                f.set_result([_ok(c) for c in t.configs])
        self.pending.clear()


def _ok(c: ConfigTask) -> ConfigResult:
    return ConfigResult(group=c.group, k=c.k, density_percentile=c.density_percentile, ok=True)


class FakeEngine(Engine):
    def __init__(self, die: Callable[[KTask], bool], window: int = 3) -> None:
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

    def die(task: KTask) -> bool:
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
                f.set_result([ConfigResult(group="other", k=9, density_percentile=1, ok=True)])
            elif task.k == 4:
                f.set_result(_ok(task.configs[0]))  # not a list
            else:
                f.set_result([_ok(c) for c in task.configs])
            return f

    got, _ = _run(ExternalExecutor(Odd(), 2), _tasks(5))
    by_k = {r.k: r for r in got}
    assert sorted(by_k) == [0, 1, 2, 3, 4]
    assert not by_k[1].ok and "RuntimeError: KilledWorker-like failure" in by_k[1].error
    assert not by_k[2].ok and "returned the result of 'other'" in by_k[2].error
    assert not by_k[4].ok and "returned ConfigResult for this task" in by_k[4].error
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


def _grid(ks: range, dps: list[int]) -> list[ConfigTask]:
    return [
        ConfigTask(shared=_SHARED, k=k, density_percentile=dp, group="g") for k in ks for dp in dps
    ]


def test_one_task_per_k_in_grid_order_each_configuration_delivered_once() -> None:
    engine = FakeEngine(lambda t: False)
    tasks = _grid(range(3, 7), [40, 60, 80])
    got, _ = _run(engine, tasks)
    assert sorted(r.cell for r in got) == sorted(
        (t.group, t.k, t.density_percentile) for t in tasks
    )
    # One submission per k, low k first, its percentiles in order.
    assert engine.pools[0].submitted == [(t.group, t.k, t.density_percentile) for t in tasks]
    assert len(got) == 12


def test_resume_subset_groups_only_the_missing_percentiles() -> None:
    from ssddbc.grid_search._tasks import group_by_k

    missing = [
        t for t in _grid(range(3, 6), [40, 60, 80]) if (t.k, t.density_percentile) != (4, 60)
    ]
    groups = group_by_k(missing)
    assert [g.k for g in groups] == [3, 4, 5]
    assert [c.density_percentile for c in groups[1].configs] == [40, 80]


def test_a_k_task_that_kills_its_worker_is_split_and_only_the_guilty_configuration_fails() -> None:
    def die(task: KTask) -> bool:
        return any(c.k == 4 and c.density_percentile == 60 for c in task.configs)

    engine = FakeEngine(die)
    tasks = _grid(range(3, 7), [40, 60, 80])
    got, events = _run(engine, tasks)
    assert sorted(r.cell for r in got) == sorted(
        (t.group, t.k, t.density_percentile) for t in tasks
    )
    failed = [r for r in got if not r.ok]
    assert [(r.k, r.density_percentile) for r in failed] == [(4, 60)]
    assert "died 2 times" in failed[0].error
    assert events and "one at a time" in events[0]


def test_an_engine_failure_of_a_k_task_is_charged_to_its_configurations_alone() -> None:
    """Like Dask's KilledWorker: the whole task failed; each configuration then runs alone."""
    submitted: list[int] = []

    class Killing(Executor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Future[Any]:
            (task,) = args
            submitted.append(len(task.configs))
            f: Future[Any] = Future()
            if any((c.k, c.density_percentile) == (4, 60) for c in task.configs):
                f.set_exception(RuntimeError("KilledWorker: died twice"))
            else:
                f.set_result([_ok(c) for c in task.configs])
            return f

    tasks = _grid(range(3, 6), [40, 60, 80])
    got, _ = _run(ExternalExecutor(Killing(), 2), tasks)
    assert sorted(r.cell for r in got) == sorted(
        (t.group, t.k, t.density_percentile) for t in tasks
    )
    failed = [r for r in got if not r.ok]
    assert [(r.k, r.density_percentile) for r in failed] == [(4, 60)]
    assert "KilledWorker: died twice" in failed[0].error
    assert submitted == [3, 3, 3, 1, 1, 1]  # k=4 split after its failure
