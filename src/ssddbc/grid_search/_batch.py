"""The batch search's run: a :class:`BatchConfig` to a finished run folder and exit status.

The steps, in order: the inputs loaded and checked and the run identity computed (a resumed
run whose inputs changed is refused); the run folder created (exclusive) or the resumed one's
journal read, and only then the knncache stores cleared (``--clear_knn_cache``); shared inputs
per superclass, the tasks and their delivery on an engine, each result journaled as it
arrives; the outputs written by :mod:`._batch_report`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from knncache import KnnCacheError, PersistentStore, fingerprint
from ssddbc._errors import RunFolderError, SearchConfigError, SsddbcError
from ssddbc._metric import check_nonzero_rows
from ssddbc.data import build_digits_feature_cache, load_superclass
from ssddbc.data.feature_cache import NPZ_NAME, PKL_NAME
from ssddbc.evaluation import evaluation_mask
from ssddbc.grid_search._batch_config import BatchConfig, store_root
from ssddbc.grid_search._batch_pseudo import pseudo_current, selected_config, write_pseudo
from ssddbc.grid_search._batch_report import finish_run, format_grid, previous_knn, record_knn
from ssddbc.grid_search._config import RunConfig, compute_identity, describe, difference
from ssddbc.grid_search._console import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    PROG,
    BadInput,
    IOFailure,
    say,
    warn_line,
)
from ssddbc.grid_search._execution import (
    Engine,
    ExternalExecutor,
    ProgressReporter,
    WorkerCrashedError,
    make_engine,
    run_tasks,
)
from ssddbc.grid_search._files import (
    check_name_lengths,
    new_run_dir,
    sweep_temporaries,
    write_json,
)
from ssddbc.grid_search._inputs import (
    Prepared,
    check_knn_for,
    hold,
    prepare_inputs,
    prepare_with_fallback,
)
from ssddbc.grid_search._journal import ResultsJournal
from ssddbc.grid_search._original_flags import check_model_path
from ssddbc.grid_search._parser import DEFAULT_DEMO_DIR, ENV_KNN_CACHE_DIR
from ssddbc.grid_search._signals import Interrupted, interruptible
from ssddbc.grid_search._tasks import ConfigResult, ConfigTask, clear_resources
from ssddbc.grid_search._validate import validate_grid

__all__ = ["run", "run_validated"]


@dataclass
class _State:
    """What the interrupt and I/O-error messages need to know."""

    run_dir: Path | None = None
    journal: Path | None = None
    saved: int = 0
    total: int = 0
    started: bool = False
    knn: dict[str, dict[str, Any]] = field(default_factory=dict)

    def hint(self) -> str:
        if self.run_dir is None or not self.started:
            return ""
        return f"; resume with: {PROG} --resume {self.run_dir}"


def run(config: BatchConfig) -> int:
    """Run one batch search; return its exit status (see :mod:`ssddbc.grid_search._cli`).

    Parameters
    ----------
    config : BatchConfig
        What to run (:meth:`BatchConfig.from_namespace` builds it from the flags).
    """
    return run_validated(lambda: config)


def run_validated(validate: Callable[[], BatchConfig]) -> int:
    """Like :func:`run`, with the configuration built by ``validate`` under the same guard.

    A bad-input error ``validate`` raises is reported as one line with exit status 2, and an
    interrupt while it runs ends the command as one during the run does.
    """
    state = _State()
    try:
        with interruptible():
            return _run(validate, state)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        if state.started:
            print(
                f"\ninterrupted ({name}): {state.saved} of {state.total} configurations are "
                f"saved in {state.journal}{state.hint()}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(f"\n{PROG}: interrupted ({name}) before any work", file=sys.stderr, flush=True)
        return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def _run(validate: Callable[[], BatchConfig], state: _State) -> int:
    with contextlib.ExitStack() as scope:
        try:
            config = validate()
            quiet = config.quiet
            cfg = config.run
            run_dir = config.resume
            if config.demo:
                built = build_digits_feature_cache(DEFAULT_DEMO_DIR)
                say(
                    f"demo: built-in digits feature cache in {DEFAULT_DEMO_DIR.resolve()} "
                    f"(superclasses: {', '.join(built)})",
                    quiet,
                )
                if not cfg.superclasses:
                    cfg = replace(cfg, superclasses=built)
            check_model_path(config.model_path, cfg, quiet)
            check_name_lengths(cfg.superclasses, config.plot_formats, run_dir or config.output_dir)
            started = time.perf_counter()
            data = _load_inputs(cfg)
            read_seconds = time.perf_counter() - started
            if run_dir is not None:
                _check_identity(cfg, data, run_dir)
            else:
                cfg = replace(cfg, identity=compute_identity(cfg, data))
            clear = _clear_targets(cfg) if config.clear_knn_cache else []
            session = None
            if config.scheduler is not None:
                session = _connect(
                    scope, config.scheduler, Path(cfg.knn_cache_dir or cfg.feature_cache_dir), quiet
                )
            journal, done = _open_run_folder(
                cfg, run_dir, config.output_dir, config.command, state, quiet
            )
        except (SsddbcError, KnnCacheError, BadInput) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        assert state.run_dir is not None
        # Said only now: bad input before any work stays a single line.
        say(
            f"read {len(data)} superclass(es) from {cfg.feature_cache_dir} in {read_seconds:.1f}s",
            quiet,
        )
        say(f"grid: {format_grid(cfg.k_values, cfg.density_values, len(data))}", quiet)
        try:
            for target in clear:
                removed = _clear_store(target, config.knn_lock)
                say(f"cleared {target} ({_entries(len(removed))} removed)", quiet)
            # Always on stdout, even with --quiet: a script finds its output here.
            print(f"run folder: {state.run_dir.resolve()}", flush=True)
            return _execute(replace(config, run=cfg), data, journal, done, session, state)
        except (OSError, IOFailure) as exc:
            cause = exc.__cause__ if isinstance(exc, IOFailure) else exc
            print(f"{PROG}: error: {_io_text(cause)}{state.hint()}", file=sys.stderr)
            return EXIT_FAILED
        except (SsddbcError, KnnCacheError) as exc:
            print(f"{PROG}: error: {exc}{state.hint()}", file=sys.stderr)
            return EXIT_BAD_INPUT
    raise AssertionError("unreachable")  # pragma: no cover


def _io_text(exc: BaseException | None) -> str:
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"cannot write {where}{exc.strerror or exc} (errno {exc.errno})"
    return str(exc)


def _load_inputs(cfg: RunConfig) -> dict[str, tuple[Any, Any, str]]:
    """Load and check every superclass before any work; errors name the file.

    Returns ``{name: (SuperclassData, eval_mask, features_fingerprint)}``; the fingerprint
    is computed here once per run and reused for the identity and the summary.
    """
    fcd = Path(cfg.feature_cache_dir)
    if not fcd.is_dir():
        raise BadInput(f"--feature_cache_dir {fcd}: no such folder")
    data = {}
    for name in cfg.superclasses:
        folder = fcd / name
        if not folder.is_dir():
            raise BadInput(f"{folder}: superclass folder not found")
        try:
            d = load_superclass(fcd, name, allow_pickle=cfg.allow_pickle)
        except SsddbcError:
            raise
        except (ValueError, TypeError, KeyError, OSError, MemoryError, EOFError) as exc:
            # The loader's own checks raise FeatureCacheError; anything else is a file it
            # could not make sense of (a wrongly typed member, a header claiming a huge shape).
            raise BadInput(
                f"{folder}: unreadable feature file ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]})"
            ) from None
        _check_k_for(cfg.k_values, d.n, name)
        try:
            mask = evaluation_mask(
                d.n,
                train_size=d.train_size,
                labeled_mask=d.labeled_mask,
                mode=cfg.eval_split,  # type: ignore[arg-type]  # RunConfig checked it
            )
        except SsddbcError as exc:
            raise BadInput(
                f"{d.source}: cannot evaluate on the {cfg.eval_split!r} split "
                f"({exc}); try --eval unlabelled"
            ) from None
        if cfg.metric == "cosine":
            check_nonzero_rows(d.features, f"{d.source} (--metric cosine)")
        if cfg.knn_method != "exact":
            try:
                check_knn_for(d.features, cfg.knn_method, cfg.knn_params, cfg.metric)  # nlist <= N
            except SearchConfigError as exc:
                raise BadInput(f"--knn_params for {d.source}: {exc.message}") from None
        data[name] = (d, mask, fingerprint(d.features))
    validate_grid(cfg.k_values, cfg.density_values, n_samples=[d.n for d, _, _ in data.values()])
    return data


def _check_k_for(k_values: list[int], n: int, name: str) -> None:
    """Every k of the grid is below superclass ``name``'s N; one short line otherwise."""
    top = max(k_values)
    if top >= n:
        raise BadInput(
            f"--k_max {top + 1}: k must be < N={n} for superclass {name!r} "
            f"(allowed: --k_max <= {n}, the upper bound is excluded)"
        )


def _check_identity(cfg: RunConfig, data: dict[str, tuple[Any, Any, str]], run_dir: Path) -> None:
    current = compute_identity(cfg, data)
    component = difference(cfg.identity, current)
    if component is not None:
        raise BadInput(
            f"--resume {run_dir}: {describe(component)} changed since the run started "
            f"({component}); its rows would mix with the earlier ones; start a new run"
        )


def _clear_targets(cfg: RunConfig) -> list[Path]:
    """The store folders --clear_knn_cache will clear, each checked first.

    A folder that holds a feature cache's file (``--knn_cache_dir`` or
    ``$SSDDBC_KNN_CACHE_DIR`` aimed at the feature cache) is refused, whatever else it holds:
    the clear goes through the store and would remove only entries, but a store placed
    there is a mistake the user should hear about before anything is removed.
    """
    out = []
    for name in cfg.superclasses:
        target = store_root(cfg, name)
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise BadInput(f"--clear_knn_cache: {target}: {exc.strerror or exc}") from None
        if stat.S_ISLNK(mode):
            raise BadInput(
                f"--clear_knn_cache: {target} is a symbolic link; refusing to delete through "
                "it (remove the link or its target yourself)"
            )
        if not stat.S_ISDIR(mode):
            raise BadInput(f"--clear_knn_cache: {target} is not a folder")
        found = [f for f in (NPZ_NAME, PKL_NAME) if os.path.lexists(target / f)]
        if found:
            raise BadInput(
                f"--clear_knn_cache: {target} holds a feature cache ({found[0]}), not a "
                f"knncache store; refusing to clear it (check --knn_cache_dir and "
                f"${ENV_KNN_CACHE_DIR})"
            )
        out.append(target)
    return out


def _clear_store(root: Path, lock: str) -> list[str]:
    """Clear the knncache store at ``root``; return the fingerprints removed.

    Through the store, so pinned and locked entries are skipped and only what is an entry
    (or its lock or pin) is removed; its warnings become one line each.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PersistentStore(root, lock=lock) as store:
            removed = store.clear()
    for w in caught:
        warn_line(str(w.message))
    return removed


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _connect(scope: contextlib.ExitStack, spec: str, fcd: Path, quiet: bool) -> Any:
    """Open the Dask session for the run (closed by ``scope``) and check the workers."""
    # distributed: optional, imported only with --scheduler
    from ssddbc.grid_search._dask import dask_session, workers_missing_path

    try:
        session = scope.enter_context(dask_session(spec))
    except (OSError, ValueError) as exc:
        raise BadInput(
            f"--scheduler {spec}: cannot connect to the Dask scheduler ({exc})"
        ) from None
    blind = workers_missing_path(session.client, str(fcd))
    if blind:
        raise BadInput(
            f"--scheduler {spec}: {len(blind)} Dask worker(s) cannot read the knncache stores' "
            f"folder {fcd} ({', '.join(blind[:3])}{', ...' if len(blind) > 3 else ''}); the "
            "feature cache and its knncache stores must be on a filesystem every worker mounts "
            "at the same path"
        )
    how = "started for this run" if session.local else "connected"
    say(
        f"dask: scheduler {session.address} ({how}), {session.workers()} worker(s), "
        f"{session.threads()} thread(s)",
        quiet,
    )
    if not session.local:
        print(
            f"note: Dask workers open the knncache stores under {fcd} by path; keep it on a "
            "filesystem every worker mounts at the same path for the whole run",
            file=sys.stderr,
            flush=True,
        )
    return session


def _open_run_folder(
    cfg: RunConfig,
    run_dir: Path | None,
    output_dir: Path,
    command: Sequence[str],
    state: _State,
    quiet: bool,
) -> tuple[ResultsJournal, dict[tuple[str, int, int], ConfigResult]]:
    """Create the run folder (fresh run) or check the resumed one; read the journal."""
    if run_dir is None:
        run_dir = new_run_dir(output_dir, len(cfg.superclasses))
        try:
            # At once: a run folder is resumable from the moment it exists.
            write_json(run_dir / "config.json", cfg.to_json(list(command)))
        except OSError as exc:
            raise RunFolderError(str(run_dir), f"cannot write ({exc.strerror or exc})") from None
    else:
        sweep_temporaries(run_dir)
        state.knn = previous_knn(run_dir, cfg)
    state.run_dir = run_dir
    journal = ResultsJournal(run_dir / "results.csv")
    state.journal = journal.path
    wanted = set(cfg.cells())
    previous = journal.read()
    done = {r.cell: r for r in previous if r.ok and r.cell in wanted}
    try:
        # The journal restarts from the intact, successful rows: failed configurations of
        # an earlier attempt are retried. Written now, so an unwritable folder is found
        # before any work.
        journal.rewrite(done[c] for c in cfg.cells() if c in done)
    except OSError as exc:
        raise RunFolderError(str(run_dir), f"cannot write ({exc.strerror or exc})") from None
    if previous:
        say(f"resuming: {len(done)} of {len(wanted)} configurations already done", quiet)
    state.total = len(wanted)
    state.saved = len(done)
    state.started = True
    return journal, done


def _execute(
    config: BatchConfig,
    data: dict[str, tuple[Any, Any, str]],
    journal: ResultsJournal,
    done: dict[tuple[str, int, int], ConfigResult],
    session: Any,
    state: _State,
) -> int:
    cfg = config.run
    quiet = config.quiet
    workers = config.workers
    started = time.monotonic()
    k_max = max(cfg.k_values)
    knn: dict[str, dict[str, Any]] = dict(state.knn)
    searches = hits = 0
    results: dict[tuple[str, int, int], ConfigResult] = dict(done)
    # The run scope: every store entry the tasks read is held from here until the run ends,
    # and this process's memory maps of them are dropped when it does.
    run_dir = journal.path.parent
    with contextlib.ExitStack() as run_scope:
        run_scope.callback(clear_resources)
        tasks: list[ConfigTask] = []
        # Configurations still to arrive per superclass, and its shared inputs: when the
        # last one arrives, its pseudo-labels are written (an interrupted run keeps those
        # of every superclass that finished).
        left: dict[str, int] = {}
        inputs: dict[str, Any] = {}
        for name in cfg.superclasses:
            missing = [
                (k, dp)
                for k in cfg.k_values
                for dp in cfg.density_values
                if (name, k, dp) not in done
            ]
            d, eval_mask, fp = data[name]
            if not missing:
                # Finished in an earlier invocation: its pseudo-labels file too, unless it
                # is there and names the selected configuration.
                best = selected_config(cfg, name, results)
                if best is not None and not pseudo_current(run_dir, name, best):
                    say(f"{name}: writing the pseudo-labels of its selected configuration", quiet)
                    prepared = _prepare(
                        run_scope, cfg, name, d, eval_mask, k_max, config.knn_lock, quiet
                    )
                    searches += prepared.searches
                    hits += prepared.hits
                    write_pseudo(run_dir, cfg, name, d, prepared.shared, best)
                continue
            prepared = _prepare(run_scope, cfg, name, d, eval_mask, k_max, config.knn_lock, quiet)
            searches += prepared.searches
            hits += prepared.hits
            left[name] = len(missing)
            inputs[name] = prepared.shared
            knn[name] = {
                "searches": prepared.searches,
                "cache_hits": prepared.hits,
                "store": str(prepared.store.root),
                "fingerprint": fp,
                "temporary_store": prepared.temporary,
                "entry": prepared.shared.ref.fingerprint,  # the features' or the engine's key
                **prepared.shared.graph.as_dict(),
            }
            shared = prepared.shared
            how = "searched" if shared.searched else "cache hit"
            engine_name = f"{shared.graph.method} " if shared.graph.approximate else ""
            say(
                f"{name}: N={d.n}, d={d.features.shape[1]}, knn {how} ({engine_name}graph "
                f"stored at k={shared.ref.k}), {len(missing)} configurations to run",
                quiet,
            )
            tasks += [
                ConfigTask(
                    shared=shared,
                    k=k,
                    density_percentile=dp,
                    params=cfg.params,
                    group=name,
                    feature_source=str(d.source),
                    eval_split=cfg.eval_split,
                )
                for k, dp in missing
            ]

        # Recorded before any configuration runs: a superclass that finishes before an
        # interruption keeps its disclosure (method, parameters, recall) in the resume.
        record_knn(journal.path.parent, knn)
        engine: Engine
        if session is not None:
            engine = ExternalExecutor(
                session.executor, session.threads(), f"dask {session.address}"
            )
        else:
            assert workers is not None
            engine = make_engine(workers, len(tasks))

        def on_result(r: ConfigResult) -> None:
            try:
                journal.append(r)
            except OSError as exc:
                raise IOFailure() from exc
            results[r.cell] = r
            state.saved += 1
            left[r.group] -= 1
            if left[r.group] == 0:
                best = selected_config(cfg, r.group, results)
                if best is not None:
                    d = data[r.group][0]
                    write_pseudo(run_dir, cfg, r.group, d, inputs[r.group], best)

        progress = ProgressReporter(len(tasks), PROG, enabled=not quiet)
        try:
            with engine:
                run_tasks(
                    tasks,
                    engine=engine,
                    on_result=on_result,
                    progress=progress,
                    on_event=warn_line,
                )
        except WorkerCrashedError as exc:  # pragma: no cover - only external pools
            print(f"{PROG}: {exc}{state.hint()}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            progress.close()
    invocation = {
        "knn_searches": searches,
        "knn_cache_hits": hits,
        "workers": engine.workers,
        "executor": engine.label,
        "seconds": round(time.monotonic() - started, 3),
    }
    return finish_run(
        cfg,
        journal,
        results,
        knn,
        invocation,
        quiet,
        config.plot_formats,
        model_path=config.model_path,
        data=data,
        baselines=config.baselines,
    )


def _prepare(
    run_scope: contextlib.ExitStack,
    cfg: RunConfig,
    name: str,
    d: Any,
    eval_mask: Any,
    k_max: int,
    lock: str,
    quiet: bool,
) -> Prepared:
    """Shared inputs of one superclass, in its persistent store (or the fallback).

    The store is opened read-only by itself when its folder cannot be written (a read-only
    feature cache): a warm store serves every hit without a warning; a cold one falls back
    to a temporary store with one warning line (put the stores elsewhere with
    --knn_cache_dir).
    """
    store = PersistentStore(store_root(cfg, name), lock=lock, max_bytes=cfg.knn_max_bytes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = _prepare_in(run_scope, store, cfg, name, d, eval_mask, k_max, quiet)
    for w in caught:  # one line each, not Python's warning format with a source line
        warn_line(str(w.message))
    if prepared.temporary:
        warn_line(
            f"the neighbour graph of {name!r} will be searched again next run; keep the "
            f"stores in a writable folder with --knn_cache_dir DIR (or ${ENV_KNN_CACHE_DIR})"
        )
    hold(run_scope, prepared)
    return prepared


def _prepare_in(
    run_scope: contextlib.ExitStack,
    store: PersistentStore,
    cfg: RunConfig,
    name: str,
    d: Any,
    eval_mask: Any,
    k_max: int,
    quiet: bool,
) -> Prepared:
    return prepare_with_fallback(
        store,
        run_scope,
        lambda into: prepare_inputs(
            into,
            d.features,
            d.targets,
            d.known_mask,
            d.labeled_mask,
            eval_mask,
            k_max=k_max,
            plan=cfg.plan,
            pin_into=run_scope,
            metric=cfg.metric,
            report=lambda line: say(f"{name}: {line}", quiet),
            knn_method=cfg.knn_method,
            knn_params=cfg.knn_params,
        ),
        what=f"the knncache store of {name!r}",
    )
