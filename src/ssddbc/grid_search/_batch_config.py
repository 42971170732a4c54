"""One invocation of ``ssddbc-search`` as a frozen value: what to run and how.

:class:`BatchConfig` holds the run's recorded :class:`~ssddbc.grid_search._config.RunConfig`
(fresh from the flags, or read from ``--resume``'s ``config.json``) and the choices that never
change a row (where run folders go, workers, the Dask scheduler, the lock mode, output).
:meth:`BatchConfig.from_namespace` validates the flags, with the errors of the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from ssddbc._errors import SearchConfigError
from ssddbc.data import SUPERCLASSES, list_superclasses
from ssddbc.grid_search._config import RunConfig, environment
from ssddbc.grid_search._console import PROG, BadInput, warn_line
from ssddbc.grid_search._inputs import check_knn
from ssddbc.grid_search._original_flags import (
    GRID_DEFAULTS,
    check_original_flags,
    half_open,
    superclass_names,
)
from ssddbc.grid_search._parser import DEFAULT_DEMO_DIR, DEFAULT_OUTPUT_DIR, ENV_KNN_CACHE_DIR
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan
from ssddbc.grid_search._workers import resolve_n_jobs
from ssddbc.ssddbc._params import PARAMETERS, AlgorithmParams

__all__ = ["RUN_FLAGS", "BatchConfig", "knn_cache_dir", "store_root"]


@dataclass(frozen=True)
class BatchConfig:
    """What one ``ssddbc-search`` run does; :func:`~ssddbc.grid_search._batch.run` runs it.

    Attributes
    ----------
    run : RunConfig
        The recorded configuration (the grid, the inputs, the algorithm options). For
        ``demo`` with no superclasses named, its superclasses are filled in once the demo
        cache is built.
    resume : pathlib.Path or None
        The run folder to complete (``run`` was read from it), or None for a fresh run.
    output_dir : pathlib.Path
        Where a fresh run folder is created.
    workers : int or None
        Local worker processes (None with ``scheduler``).
    scheduler : str or None
        The Dask scheduler (``tcp://...`` or ``local:N``).
    knn_lock : {"hard", "soft", "none"}
        The knncache stores' lock mode.
    clear_knn_cache : bool
        Clear each superclass's knncache store before the run.
    quiet : bool
        No progress on stderr.
    plot_formats : tuple of str
        Heatmap file formats.
    model_path : str or None
        The original runner's ``--model_path`` (never used to extract features).
    demo : bool
        Build the built-in digits demo cache first.
    baselines : bool
        Run the k-means baselines at the end (``--no_baselines`` skips them). Not part of
        the run: they never change a row, so a resume chooses again (default on).
    command : tuple of str
        The command line recorded in ``config.json``.
    """

    run: RunConfig
    resume: Path | None = None
    output_dir: Path = DEFAULT_OUTPUT_DIR
    workers: int | None = 1
    scheduler: str | None = None
    knn_lock: str = "hard"
    clear_knn_cache: bool = False
    quiet: bool = False
    plot_formats: tuple[str, ...] = ("png",)
    model_path: str | None = None
    demo: bool = False
    baselines: bool = True
    command: tuple[str, ...] = (PROG,)

    @classmethod
    def from_namespace(
        cls, args: argparse.Namespace, plan: SearchPlan = DEFAULT_PLAN
    ) -> BatchConfig:
        """The invocation the parsed flags ask for, validated (nothing is written).

        Parameters
        ----------
        args : argparse.Namespace
            From :func:`~ssddbc.grid_search._parser.build_parser`.
        plan : SearchPlan
            The route thresholds of a fresh run (a resumed run keeps its recorded plan).

        Raises
        ------
        BadInput, SsddbcError
            A bad flag or input, with the command line's one-line message.
        """
        workers = _workers(args)
        check_original_flags(args)
        if args.resume:
            run = _resumed_config(args)
            resume: Path | None = Path(args.resume)
        else:
            run = _config_from_args(args, plan)
            resume = None
        return cls(
            run=run,
            resume=resume,
            output_dir=Path(args.output_dir),
            workers=workers,
            scheduler=args.scheduler,
            knn_lock=args.knn_lock,
            clear_knn_cache=bool(args.clear_knn_cache),
            quiet=bool(args.quiet),
            plot_formats=tuple(args.plot_format),
            model_path=args.model_path,
            demo=bool(args.demo) and resume is None,
            baselines=not getattr(args, "no_baselines", False),
            command=(PROG, *sys.argv[1:]),
        )


#: Flags that define the grid or the rows; --resume takes them from config.json instead.
RUN_FLAGS = (
    *GRID_DEFAULTS,
    "eval_split",
    "metric",
    "knn_method",
    "knn_params",
    *(p.name for p in PARAMETERS),
    "superclass_file",
)


def _workers(args: argparse.Namespace) -> int | None:
    """The local worker count asked for (None with --scheduler), validated."""
    if args.scheduler is not None:
        if args.n_jobs is not None or args.no_parallel:
            given = "--n_jobs" if args.n_jobs is not None else "--no_parallel"
            raise BadInput(
                f"--scheduler conflicts with {given}: the Dask cluster's workers run the "
                "configurations (use --scheduler local:N for N local workers)"
            )
        try:
            # distributed: optional, imported only with --scheduler
            from ssddbc.grid_search._dask import parse_scheduler
        except ImportError as exc:
            raise BadInput(
                f"--scheduler needs the optional 'distributed' package ({exc}): "
                "pip install 'knncache[dask]'"
            ) from None
        parse_scheduler(args.scheduler)
        return None
    if args.no_parallel:
        return 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        workers = resolve_n_jobs(args.n_jobs, name="--n_jobs")
    for w in caught:
        warn_line(str(w.message))
    return workers


def _config_from_args(args: argparse.Namespace, plan: SearchPlan) -> RunConfig:
    """A fresh run's configuration from the flags (nothing is read but the folder list)."""
    params = AlgorithmParams.from_namespace(args)
    if args.knn_params is not None and args.knn_method in (None, "exact"):
        raise BadInput("--knn_params applies only with --knn_method hnsw or ivf")
    try:
        knn_method, knn_params = check_knn(args.knn_method or "exact", args.knn_params)
    except SearchConfigError as exc:
        raise BadInput(f"--{exc.option}: {exc.message}") from None
    d = {name: getattr(args, name) for name in GRID_DEFAULTS}
    d = {name: GRID_DEFAULTS[name] if v is None else v for name, v in d.items()}
    ks = half_open(d["k_min"], d["k_max"], 1, "--k_min/--k_max")
    dps = half_open(
        d["density_min"],
        d["density_max"],
        d["density_step"],
        "--density_min/--density_max/--density_step",
    )
    _check_ranges(d, ks, dps)
    if args.demo:
        fcd = DEFAULT_DEMO_DIR
    else:
        fcd = Path(args.feature_cache_dir)
        if not fcd.is_dir():
            raise BadInput(f"--feature_cache_dir {fcd}: no such folder")
    given = superclass_names(args)
    if args.count_all:
        names = list(SUPERCLASSES)
    elif given is not None:
        names = given
    elif args.demo:
        names = []  # the demo cache: filled in once it is built
    else:
        names = list_superclasses(fcd)
        if not names:
            raise BadInput(f"{fcd}: no <superclass>/features.npz (or .pkl) found")
    return RunConfig(
        feature_cache_dir=str(fcd.resolve()),
        superclasses=names,
        k_values=ks,
        density_values=dps,
        params=params,
        plan=plan,
        eval_split=args.eval_split or "test",
        allow_pickle=bool(args.allow_pickle),
        metric=args.metric or "euclidean",
        knn_cache_dir=knn_cache_dir(args),
        knn_max_bytes=args.knn_max_bytes,
        environment=environment(),
        knn_method=knn_method,
        knn_params=knn_params,
    )


def _check_ranges(d: dict[str, int], ks: list[int], dps: list[int]) -> None:
    """k >= 1 and percentiles in 0..100, named by their flags (one short line each)."""
    if ks[0] < 1:
        raise BadInput(f"--k_min {d['k_min']}: k must be >= 1 (allowed: --k_min >= 1)")
    if not 0 <= dps[0] <= 100:
        raise BadInput(
            f"--density_min {d['density_min']}: density percentiles lie in 0..100 "
            "(allowed: 0 <= --density_min <= 100)"
        )
    if dps[-1] > 100:
        raise BadInput(
            f"--density_max {d['density_max']}: density percentiles lie in 0..100 (allowed: "
            "--density_max <= 101, the upper bound is excluded)"
        )


def knn_cache_dir(args: argparse.Namespace) -> str | None:
    """--knn_cache_dir, else $SSDDBC_KNN_CACHE_DIR, as an absolute path (None: neither)."""
    given = args.knn_cache_dir or os.environ.get(ENV_KNN_CACHE_DIR) or None
    return None if given is None else str(Path(given).resolve())


def store_root(cfg: RunConfig, name: str) -> Path:
    """Where the knncache store of superclass ``name`` lives."""
    if cfg.knn_cache_dir is not None:
        return Path(cfg.knn_cache_dir) / name
    return Path(cfg.feature_cache_dir) / name / "knn_cache"


def _resumed_config(args: argparse.Namespace) -> RunConfig:
    given = [f"--{f}" for f in RUN_FLAGS if getattr(args, f, None) is not None]
    if given or args.superclasses or args.count_all:
        raise BadInput(
            "--resume takes the grid and the superclasses from RUN_DIR/config.json; "
            f"drop {', '.join(given) or 'the superclass flags'}"
        )
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise BadInput(f"--resume {run_dir}: no such run folder")
    cfg = RunConfig.read(run_dir)
    _check_recorded_cache(run_dir, cfg.feature_cache_dir, args)
    # Unpickling runs code: only this command line may allow it, never the run folder.
    cfg = replace(cfg, allow_pickle=bool(args.allow_pickle))
    # Where the stores live never changes a row: a resumed run may move them.
    placement = knn_cache_dir(args)
    if placement is not None:
        cfg = replace(cfg, knn_cache_dir=placement)
    if args.knn_max_bytes is not None:
        cfg = replace(cfg, knn_max_bytes=args.knn_max_bytes)
    return cfg


def _check_recorded_cache(run_dir: Path, recorded: str, args: argparse.Namespace) -> None:
    """The feature cache a resume reads: the recorded folder, checked before anything is read.

    A run folder may have been edited by someone else, so what it records decides nothing
    about running code: the folder must be the real, absolute path recorded at the start (no
    symbolic link on the way), ``--feature_cache_dir``, when given, must name that same
    folder, and ``--allow_pickle`` needs it given (the command line names the folder whose
    ``features.pkl`` may be unpickled).
    """
    path = Path(recorded)
    if not path.is_absolute() or os.path.realpath(path) != str(path):
        why = "relative" if not path.is_absolute() else "reached through a symbolic link"
        raise BadInput(
            f"--resume {run_dir}: the recorded feature cache {recorded!r} is {why} (a run "
            "records the real path of its feature cache); refusing to read through it"
        )
    if not path.is_dir():
        raise BadInput(f"--resume {run_dir}: the recorded feature cache {recorded!r} is no folder")
    if args.feature_cache_dir is not None:
        named = os.path.realpath(args.feature_cache_dir)
        if named != str(path):
            raise BadInput(
                f"--feature_cache_dir {args.feature_cache_dir}: {run_dir} recorded the feature "
                f"cache {recorded!r}; a resume reads the folder the run started with"
            )
    elif args.allow_pickle:
        raise BadInput(
            f"--resume with --allow_pickle: name the feature cache whose features.pkl may be "
            f"unpickled with --feature_cache_dir (the run folder records {recorded!r})"
        )
