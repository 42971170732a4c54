"""Offline SS-DDBC grid search over per-superclass feature caches (``ssddbc-search``).

For every superclass ``S`` of a feature cache, the neighbour graph lives in a persistent
knncache store at ``<feature_cache_dir>/S/knn_cache/``, keyed by the features' fingerprint:
a second run over unchanged features runs no neighbour search at all, and changed features
are detected and recomputed without any flag. Every configuration is journaled to
``results.csv`` as it finishes; ``--resume RUN_DIR`` completes only what is missing.

Run ``ssddbc-search --help`` for the flags. With no ``--feature_cache_dir`` it builds the
built-in digits demo cache and searches it. ``--scheduler`` runs the configurations on a Dask
cluster instead of a local process pool (optional extra ``knncache[dask]``; ``distributed`` is
imported only then).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import math
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from knncache import KnnCacheError, KnnCacheWarning, PersistentStore, StoreWriteError, fingerprint
from ssddbc._errors import SearchConfigError, SsddbcError
from ssddbc.grid_search._execution import (
    ProgressReporter,
    WorkerCrashedError,
    default_workers,
    run_tasks,
)
from ssddbc.grid_search._results import (
    ResultsJournal,
    plot_heatmap,
    write_json,
)
from ssddbc.grid_search._tasks import (
    AlgorithmParams,
    ConfigResult,
    ConfigTask,
    SharedInputs,
    prepare_inputs,
)
from ssddbc.grid_search._validate import validate_grid
from ssddbc.grid_search.api import select_best

__all__ = ["DEFAULT_DEMO_DIR", "DEFAULT_OUTPUT_DIR", "EXIT_BAD_INPUT", "main", "run_batch"]

#: Where the built-in demo feature cache is built when no --feature_cache_dir is given.
DEFAULT_DEMO_DIR = Path("ssddbc_demo") / "feature_cache"
#: Where run folders go by default.
DEFAULT_OUTPUT_DIR = Path("ssddbc_runs")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_CONFIG_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json`` and reused by ``--resume``."""

    feature_cache_dir: str
    superclasses: list[str]
    k_values: list[int]
    density_values: list[int]
    params: dict[str, Any]
    eval_split: str
    allow_pickle: bool
    fingerprints: dict[str, str]


class _BadInput(Exception):
    """Raised inside the CLI for input errors; printed as one line, exit status 2."""


def _inclusive(lo: int, hi: int, step: int, flag: str) -> list[int]:
    if step < 1:
        raise SearchConfigError(flag, f"step must be >= 1, got {step}")
    values = list(range(lo, hi + 1, step))
    if not values:
        raise SearchConfigError(flag, f"empty range: min {lo} > max {hi}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The ``ssddbc-search`` argument parser."""
    p = argparse.ArgumentParser(
        prog="ssddbc-search",
        description=(
            "Grid search of SS-DDBC's k and density percentile over per-superclass feature "
            "caches, selecting by the label-only score (-L1 + 3*silhouette). Ranges are "
            "INCLUSIVE at both ends (the original runner's --k_max and --density_max were "
            "exclusive). Without --feature_cache_dir, the built-in digits demo cache is built "
            f"in ./{DEFAULT_DEMO_DIR} and searched."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--feature_cache_dir",
        default=None,
        help="folder with one <superclass>/features.npz (or .pkl) per superclass",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--superclasses",
        default=None,
        help="comma-separated superclass names (default: every superclass found)",
    )
    g.add_argument(
        "--count_all",
        action="store_true",
        help="search all 15 CIFAR-100 superclasses of the original research",
    )
    p.add_argument("--k_min", type=int, default=None, help="smallest k, inclusive [3]")
    p.add_argument(
        "--k_max",
        type=int,
        default=None,
        help="largest k, INCLUSIVE [20] (one neighbour search at this k serves all)",
    )
    p.add_argument(
        "--density_min", type=int, default=None, help="smallest density percentile, inclusive [40]"
    )
    p.add_argument(
        "--density_max", type=int, default=None, help="largest density percentile, INCLUSIVE [95]"
    )
    p.add_argument("--density_step", type=int, default=None, help="percentile step [5]")
    p.add_argument(
        "--n_jobs",
        "--max_workers",
        dest="n_jobs",
        type=int,
        default=None,
        help="worker processes (default: the usable cores); 1 runs serially",
    )
    p.add_argument("--no_parallel", action="store_true", help="same as --n_jobs 1")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the configurations on a Dask cluster instead of a local pool: a "
        "dask.distributed scheduler address (tcp://host:8786), or local:N to start N "
        "single-threaded local worker processes for this run. Needs pip install "
        "'knncache[dask]'. The main process still runs the one neighbour search per "
        "superclass; workers only read the knncache stores under --feature_cache_dir, "
        "so on a remote cluster that folder must be on a filesystem every worker mounts "
        "at the same path. Start remote workers with one thread each and "
        "OMP_NUM_THREADS=1 (dask worker --nthreads 1; Dask's nanny sets the BLAS/OpenMP "
        "variables to 1 by default, keep it so). Conflicts with --n_jobs/--no_parallel",
    )
    p.add_argument(
        "--knn_lock",
        choices=("hard", "soft", "none"),
        default="hard",
        help="how the knncache stores lock an entry while one process computes it: hard "
        "(fcntl/flock; local disks), soft (marker files naming the holder's host and pid; "
        "for NFS/Lustre, where flock is unreliable), none (no lock: still correct, two runs "
        "racing may both search)",
    )
    p.add_argument(
        "--output_dir", default=str(DEFAULT_OUTPUT_DIR), help="where run folders are created"
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="complete the missing configurations of an earlier run folder "
        "(its config.json defines the grid)",
    )
    p.add_argument(
        "--clear_knn_cache",
        action="store_true",
        help="delete <feature_cache_dir>/<superclass>/knn_cache/ before the run",
    )
    p.add_argument(
        "--eval",
        dest="eval_split",
        choices=("test", "unlabelled"),
        default=None,
        help="samples the reported accuracies use: the test split (indices >= "
        "train size, the original protocol) or the unlabelled samples [test]",
    )
    p.add_argument(
        "--dense_method",
        type=int,
        choices=(0, 1, 2, 3),
        default=None,
        help="density: 0 mean, 1 median, 2 normalised, 3 exponential [1]",
    )
    p.add_argument(
        "--co_mode", type=int, choices=(1, 2, 3), default=None, help="cutoff distance mode [2]"
    )
    p.add_argument("--co_manual", type=float, default=None, help="cutoff for --co_mode 1")
    p.add_argument(
        "--assign_model",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="sparse-point assignment strategy [3]",
    )
    p.add_argument("--voting_k", type=int, default=None, help="voters for --assign_model 2 [5]")
    p.add_argument(
        "--allow_pickle",
        action="store_true",
        help="also read the original features.pkl files (unpickling runs code: "
        "only for your own files; convert them with python -m "
        "ssddbc.data.convert)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


_GRID_FLAGS = (
    "k_min",
    "k_max",
    "density_min",
    "density_max",
    "density_step",
    "eval_split",
    "dense_method",
    "co_mode",
    "co_manual",
    "assign_model",
    "voting_k",
)


def _fresh_config(args: argparse.Namespace, fcd: Path) -> RunConfig:
    from ssddbc.data import SUPERCLASSES, list_superclasses

    if args.count_all:
        names = list(SUPERCLASSES)
    elif args.superclasses:
        names = [s.strip() for s in args.superclasses.split(",") if s.strip()]
        if not names:
            raise SearchConfigError("--superclasses", f"no names in {args.superclasses!r}")
    else:
        names = list_superclasses(fcd)
        if not names:
            raise _BadInput(f"{fcd}: no <superclass>/features.npz (or .pkl) found")
    ks = _inclusive(
        3 if args.k_min is None else args.k_min,
        20 if args.k_max is None else args.k_max,
        1,
        "--k_min/--k_max",
    )
    dps = _inclusive(
        40 if args.density_min is None else args.density_min,
        95 if args.density_max is None else args.density_max,
        5 if args.density_step is None else args.density_step,
        "--density_min/--density_max/--density_step",
    )
    params = AlgorithmParams(
        dense_method=1 if args.dense_method is None else args.dense_method,
        co_mode=2 if args.co_mode is None else args.co_mode,
        co_manual=args.co_manual,
        assign_model=3 if args.assign_model is None else args.assign_model,
        voting_k=5 if args.voting_k is None else args.voting_k,
    )
    if params.co_mode == 1 and params.co_manual is None:
        raise SearchConfigError("--co_manual", "required with --co_mode 1")
    return RunConfig(
        feature_cache_dir=str(fcd.resolve()),
        superclasses=names,
        k_values=ks,
        density_values=dps,
        params=asdict(params),
        eval_split=args.eval_split or "test",
        allow_pickle=bool(args.allow_pickle),
        fingerprints={},
    )


def _load_all(cfg: RunConfig) -> dict[str, Any]:
    """Load and validate every superclass before any work (errors name the file).

    Returns ``{name: (SuperclassData, eval_mask)}``.
    """
    from ssddbc.data import load_superclass

    fcd = Path(cfg.feature_cache_dir)
    if not fcd.is_dir():
        raise _BadInput(f"--feature_cache_dir {fcd}: no such folder")
    data = {}
    for name in cfg.superclasses:
        if not (fcd / name).is_dir():
            raise _BadInput(f"{fcd / name}: superclass folder not found")
        d = load_superclass(fcd, name, allow_pickle=cfg.allow_pickle)
        try:
            mask = _eval_mask(d, cfg.eval_split)
        except SsddbcError as exc:
            raise _BadInput(
                f"{d.source}: cannot evaluate on the {cfg.eval_split!r} split "
                f"({exc}); try --eval unlabelled"
            ) from None
        data[name] = (d, mask)
    validate_grid(cfg.k_values, cfg.density_values, n_samples=[d.n for d, _ in data.values()])
    return data


def _eval_mask(data: Any, split: str) -> Any:
    from ssddbc.evaluation import evaluation_mask

    return evaluation_mask(
        data.n, train_size=data.train_size, labeled_mask=data.labeled_mask, mode=split
    )


def _new_run_dir(output_dir: Path, n_superclasses: int) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = output_dir / f"run_{stamp}_{n_superclasses}sc"
    run = base
    i = 1
    while run.exists():
        i += 1
        run = base.with_name(f"{base.name}_{i}")
    run.mkdir(parents=True)
    return run


def _print(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, flush=True)


def run_batch(argv: Sequence[str] | None = None) -> int:
    """Run the batch search; return the exit status (0 ok, 1 failures, 2 bad input)."""
    args = build_parser().parse_args(argv)
    quiet = args.quiet
    try:
        if args.scheduler is not None:
            _check_scheduler_flags(args)
        if args.resume:
            given = [f"--{f}" for f in _GRID_FLAGS if getattr(args, f) is not None]
            if given or args.feature_cache_dir or args.superclasses or args.count_all:
                raise _BadInput(
                    "--resume takes the grid and the superclasses from RUN_DIR/config.json; "
                    f"drop {', '.join(given) or 'the superclass/feature-cache flags'}"
                )
            run_dir = Path(args.resume)
            cfg_path = run_dir / "config.json"
            if not cfg_path.is_file():
                raise _BadInput(f"--resume {run_dir}: no config.json (not a run folder)")
            import json

            try:
                raw = json.loads(cfg_path.read_text(encoding="utf-8"))
                cfg = RunConfig(**{k: raw[k] for k in RunConfig.__dataclass_fields__})
            except (ValueError, KeyError, TypeError) as exc:
                raise _BadInput(f"{cfg_path}: unreadable run configuration ({exc})") from None
            data = _load_all(cfg)
            for name, (d, _) in data.items():
                if fingerprint(d.features) != cfg.fingerprints.get(name):
                    raise _BadInput(
                        f"{d.source}: features changed since the run started; start a new run "
                        "instead of resuming"
                    )
        else:
            if args.feature_cache_dir is None:
                from ssddbc.data import build_digits_feature_cache

                fcd = DEFAULT_DEMO_DIR
                built = build_digits_feature_cache(fcd)
                _print(
                    f"demo: built-in digits feature cache in {fcd.resolve()} "
                    f"(superclasses: {', '.join(built)})",
                    quiet,
                )
            else:
                fcd = Path(args.feature_cache_dir)
            cfg = _fresh_config(args, fcd)
            data = _load_all(cfg)
            cfg = RunConfig(
                **{
                    **asdict(cfg),
                    "fingerprints": {n: fingerprint(d.features) for n, (d, _) in data.items()},
                }
            )
            run_dir = None
    except (SsddbcError, KnnCacheError, _BadInput) as exc:
        print(f"ssddbc-search: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    fcd = Path(cfg.feature_cache_dir)
    with contextlib.ExitStack() as stack:
        session = None
        if args.scheduler is not None:
            try:
                session = _connect(stack, args.scheduler, fcd, quiet)
            except _BadInput as exc:
                print(f"ssddbc-search: error: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
            except (OSError, ValueError) as exc:
                print(
                    f"ssddbc-search: error: --scheduler {args.scheduler}: cannot connect to "
                    f"the Dask scheduler ({exc})",
                    file=sys.stderr,
                )
                return EXIT_BAD_INPUT
        if args.clear_knn_cache:
            for name in cfg.superclasses:
                target = fcd / name / "knn_cache"
                if target.exists():
                    shutil.rmtree(target)
                    _print(f"cleared {target}", quiet)
        if run_dir is None:
            run_dir = _new_run_dir(Path(args.output_dir), len(cfg.superclasses))
            write_json(
                run_dir / "config.json",
                {
                    **asdict(cfg),
                    "version": _CONFIG_VERSION,
                    "command": ["ssddbc-search", *sys.argv[1:]],
                },
            )
        _print(f"run folder: {run_dir.resolve()}", quiet)
        return _execute(cfg, data, run_dir, args, session)
    raise AssertionError("unreachable")  # pragma: no cover


def _check_scheduler_flags(args: argparse.Namespace) -> None:
    """``--scheduler`` problems, found before any work: conflicts, missing package, bad N."""
    if args.n_jobs is not None or args.no_parallel:
        given = "--n_jobs" if args.n_jobs is not None else "--no_parallel"
        raise _BadInput(
            f"--scheduler conflicts with {given}: the Dask cluster's workers run the "
            "configurations (use --scheduler local:N for N local workers)"
        )
    try:
        from ssddbc.grid_search._dask import parse_scheduler
    except ImportError as exc:
        raise _BadInput(
            f"--scheduler needs the optional 'distributed' package ({exc}): "
            "pip install 'knncache[dask]'"
        ) from None
    parse_scheduler(args.scheduler)


def _connect(stack: contextlib.ExitStack, spec: str, fcd: Path, quiet: bool) -> Any:
    """Open the Dask session for the run (closed by ``stack``) and check the workers."""
    from ssddbc.grid_search._dask import dask_session, workers_missing_path

    session = stack.enter_context(dask_session(spec))
    blind = workers_missing_path(session.client, str(fcd))
    if blind:
        raise _BadInput(
            f"--scheduler {spec}: {len(blind)} Dask worker(s) cannot read --feature_cache_dir "
            f"{fcd} ({', '.join(blind[:3])}{', ...' if len(blind) > 3 else ''}); the feature "
            "cache and its knncache stores must be on a filesystem every worker mounts at the "
            "same path"
        )
    how = "started for this run" if session.local else "connected"
    _print(
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


def _execute(
    cfg: RunConfig,
    data: dict[str, Any],
    run_dir: Path,
    args: argparse.Namespace,
    session: Any = None,
) -> int:
    quiet = args.quiet
    journal = ResultsJournal(run_dir / "results.csv")
    previous = journal.read()
    cells = [
        (s, k, dp) for s in cfg.superclasses for k in cfg.k_values for dp in cfg.density_values
    ]
    wanted = set(cells)
    done = {
        (r.group, r.k, r.density_percentile): r
        for r in previous
        if r.ok and (r.group, r.k, r.density_percentile) in wanted
    }
    # Start the journal again from the intact, successful rows: torn lines and failed
    # configurations of an earlier attempt are dropped (failed ones are retried).
    journal.rewrite(done[c] for c in cells if c in done)
    if previous:
        _print(f"resuming: {len(done)} of {len(cells)} configurations already done", quiet)

    params = AlgorithmParams(**cfg.params)
    started = time.monotonic()
    knn_stats: dict[str, dict[str, Any]] = {}
    tasks: list[ConfigTask] = []
    for name in cfg.superclasses:
        missing = [
            (k, dp) for k in cfg.k_values for dp in cfg.density_values if (name, k, dp) not in done
        ]
        if not missing:
            continue
        d, eval_mask = data[name]
        shared, stats = _prepare(
            fcd=Path(cfg.feature_cache_dir),
            name=name,
            data=d,
            eval_mask=eval_mask,
            k_max=max(cfg.k_values),
            lock=args.knn_lock,
        )
        knn_stats[name] = stats
        how = "searched" if shared.searched else "cache hit"
        _print(
            f"{name}: N={d.n}, d={d.features.shape[1]}, knn {how} (graph stored at "
            f"k={shared.ref.k}), {len(missing)} configurations to run",
            quiet,
        )
        source = str(d.source)
        tasks += [
            ConfigTask(
                shared=shared,
                k=k,
                density_percentile=dp,
                params=params,
                group=name,
                feature_source=source,
                eval_split=cfg.eval_split,
            )
            for k, dp in missing
        ]

    results: dict[tuple[str, int, int], ConfigResult] = dict(done)

    def on_result(r: ConfigResult) -> None:
        journal.append(r)
        results[(r.group, r.k, r.density_percentile)] = r

    if session is not None:
        workers = session.threads()
        executor = session.executor
        engine = f"dask {session.address}"
    else:
        workers = 1 if args.no_parallel else default_workers(len(tasks), args.n_jobs)
        executor = None
        engine = "serial" if workers == 1 else "local process pool"
    progress = ProgressReporter(len(tasks), "ssddbc-search", enabled=not quiet)
    status = EXIT_OK
    try:
        run_tasks(
            tasks, max_workers=workers, executor=executor, on_result=on_result, progress=progress
        )
    except KeyboardInterrupt:
        progress.close()
        print(
            f"\ninterrupted: {len(results)} of {len(cells)} configurations are saved in "
            f"{journal.path}; resume with: ssddbc-search --resume {run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except WorkerCrashedError as exc:
        progress.close()
        print(
            f"ssddbc-search: {exc}; resume with: ssddbc-search --resume {run_dir}", file=sys.stderr
        )
        return EXIT_FAILED
    finally:
        progress.close()

    ordered = [results[c] for c in cells if c in results]
    journal.rewrite(ordered)
    summary = _summarise(cfg, ordered, knn_stats, time.monotonic() - started, workers, engine)
    write_json(run_dir / "summary.json", summary)
    for name in cfg.superclasses:
        rs = [r for r in ordered if r.group == name]
        sel = summary["superclasses"][name]
        plot_heatmap(
            run_dir / f"heatmap_{name}.png",
            f"SS-DDBC label-only selection score: {name}",
            rs,
            cfg.k_values,
            cfg.density_values,
            _cell(sel.get("selected")),
            _cell(sel.get("oracle_best_by_test_accuracy")),
        )
    _print_summary(summary, run_dir, quiet)
    if summary["failed_configurations"]:
        status = EXIT_FAILED
    return status


def _cell(entry: dict[str, Any] | None) -> tuple[int, int] | None:
    if not entry:
        return None
    return int(entry["k"]), int(entry["density_percentile"])


def _prepare(
    *, fcd: Path, name: str, data: Any, eval_mask: Any, k_max: int, lock: str = "hard"
) -> tuple[SharedInputs, dict[str, Any]]:
    """Ensure the superclass's graph and shared arrays, in the main process, once."""
    store: Any = PersistentStore(fcd / name / "knn_cache", lock=lock)
    args = (data.features, data.targets, data.known_mask, data.labeled_mask, eval_mask)
    try:
        shared = prepare_inputs(store, *args, k_max=k_max)
        fallback_store = None
    except StoreWriteError as exc:
        # Policy: a store that cannot be written must not kill a long search.
        from knncache import EphemeralStore

        warnings.warn(
            f"cannot write the knncache store of {name!r} ({exc}); using a "
            "temporary store for this run",
            KnnCacheWarning,
            stacklevel=2,
        )
        fallback_store = EphemeralStore()
        store = fallback_store
        shared = prepare_inputs(store, *args, k_max=k_max)
    stats = {
        "searches": int(store.stats["searches"]),
        "cache_hits": int(store.stats["hits"]),
        "store": str(store.root),
        "fingerprint": shared.ref.fingerprint,
        "temporary_store": fallback_store is not None,
    }
    if fallback_store is not None:
        _KEEP_ALIVE.append(fallback_store)
    return shared, stats


# Temporary fallback stores must outlive the tasks that read them; they are closed at exit.
_KEEP_ALIVE: list[Any] = []


def _summarise(
    cfg: RunConfig,
    results: list[ConfigResult],
    knn_stats: dict[str, Any],
    elapsed: float,
    workers: int,
    engine: str,
) -> dict[str, Any]:
    per: dict[str, Any] = {}
    order = [(k, dp) for k in cfg.k_values for dp in cfg.density_values]
    for name in cfg.superclasses:
        rs = [r for r in results if r.group == name]
        ok = [r for r in rs if r.ok]
        entry: dict[str, Any] = {
            "configurations": len(order),
            "completed": len(ok),
            "failed": len(rs) - len(ok),
            "knn_fallback_configurations": sum(r.knn_fallback for r in rs),
        }
        sampled = max((r.silhouette_sample for r in ok), default=0)
        entry["silhouette"] = (
            f"sampled: mean over a seeded sample of {sampled} unlabelled points (N too large "
            "for exact pairwise distances)"
            if sampled
            else "exact: mean over all unlabelled points"
        )
        if ok:
            best = select_best(ok, order)
            entry["selected"] = _describe(best, "label-only score (-L1 + 3*silhouette)")
            oracle = min(
                ok, key=lambda r: (-_nan_low(r.all_acc), order.index((r.k, r.density_percentile)))
            )
            entry["oracle_best_by_test_accuracy"] = _describe(
                oracle, "ORACLE: uses ground truth of the evaluated samples; for reference only"
            )
        if name in knn_stats:
            entry["knn"] = knn_stats[name]
        entry["errors"] = {f"k={r.k},dp={r.density_percentile}": r.error for r in rs if not r.ok}
        per[name] = entry
    searches = sum(s["searches"] for s in knn_stats.values())
    hits = sum(s["cache_hits"] for s in knn_stats.values())
    return {
        "selection": "label-only score = -L1 + 3.0 * silhouette (no ground truth beyond the "
        "labelled samples)",
        "evaluated_on": cfg.eval_split,
        "k_values": cfg.k_values,
        "density_values": cfg.density_values,
        "superclasses": per,
        "failed_configurations": sum(e["failed"] for e in per.values()),
        "knn_fallback_configurations": sum(e["knn_fallback_configurations"] for e in per.values()),
        "this_invocation": {
            "knn_searches": searches,
            "knn_cache_hits": hits,
            "workers": workers,
            "executor": engine,
            "seconds": round(elapsed, 3),
        },
    }


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def _describe(r: ConfigResult, how: str) -> dict[str, Any]:
    return {
        "k": r.k,
        "density_percentile": r.density_percentile,
        "chosen_by": how,
        "score": r.score,
        "l1_loss": r.l1_loss,
        "silhouette": r.silhouette,
        "all_acc": r.all_acc,
        "old_acc": r.old_acc,
        "new_acc": r.new_acc,
        "n_clusters": r.n_clusters,
    }


def _fmt(x: float | None) -> str:
    return "   n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.4f}"


def _print_summary(summary: dict[str, Any], run_dir: Path, quiet: bool) -> None:
    if quiet:
        return
    lines = [
        "",
        f"{'superclass':<20} {'k':>3} {'dp':>3} {'score':>7} {'All':>6} {'Old':>6} "
        f"{'New':>6} {'clus':>4}   (selected by label-only score; accuracy v2 on "
        f"{summary['evaluated_on']} split)",
    ]
    for name, e in summary["superclasses"].items():
        s = e.get("selected")
        if s is None:
            lines.append(f"{name:<20} no successful configuration")
            continue
        lines.append(
            f"{name:<20} {s['k']:>3} {s['density_percentile']:>3} {s['score']:7.4f} "
            f"{_fmt(s['all_acc'])} {_fmt(s['old_acc'])} {_fmt(s['new_acc'])} "
            f"{s['n_clusters']:>4}"
        )
        if e["silhouette"].startswith("sampled"):
            lines.append(f"{'':<20} silhouette {e['silhouette']}")
        o = e["oracle_best_by_test_accuracy"]
        lines.append(
            f"{'  (oracle best)':<20} {o['k']:>3} {o['density_percentile']:>3} "
            f"{o['score']:7.4f} {_fmt(o['all_acc'])} {_fmt(o['old_acc'])} "
            f"{_fmt(o['new_acc'])} {o['n_clusters']:>4}"
        )
    inv = summary["this_invocation"]
    lines.append("")
    lines.append(
        f"knn: {inv['knn_searches']} neighbour search(es) run, {inv['knn_cache_hits']} "
        f"cache hit(s); {summary['failed_configurations']} configuration(s) failed; "
        f"{summary['knn_fallback_configurations']} recomputed the graph in a worker; "
        f"{inv['seconds']:.1f}s with {inv['workers']} worker(s)"
    )
    lines.append(
        f"results: {run_dir / 'results.csv'}  summary: {run_dir / 'summary.json'}  "
        f"heatmaps: {run_dir}/heatmap_*.png"
    )
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``ssddbc-search``."""
    try:
        code = run_batch(argv)
    finally:
        for store in _KEEP_ALIVE:
            store.close()
        _KEEP_ALIVE.clear()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
