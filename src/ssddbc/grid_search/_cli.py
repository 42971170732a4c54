"""``ssddbc-search``: from argv to a finished run folder.

The flow, one function per step, each in the module named after it:

1. :func:`build_parser` / :func:`_config_from_args` — argv to a :class:`RunConfig`
   (``--resume`` reads it from ``config.json`` instead); every flag is validated here.
2. :func:`_load_inputs` — every superclass loaded and checked, the run identity computed
   (:mod:`._config`); a resumed run whose inputs changed is refused.
3. :func:`_open_run_folder` — a fresh run folder (exclusive) or the resumed one, its journal
   read (:mod:`._journal`); only then is anything deleted (``--clear_knn_cache``).
4. :func:`_execute` — shared inputs per superclass (:mod:`._inputs`), tasks (:mod:`._tasks`),
   the delivery loop on an engine (:mod:`._execution`, :mod:`._workers`), each result
   journaled as it arrives.
5. :func:`_finish` — journal rewritten in grid order, ``summary.json`` (:mod:`._summary`),
   heatmaps (:mod:`._plots`).

Exit status: 0 every configuration succeeded; 1 some configuration failed, or an I/O error
(disk full) stopped the run (resumable); 2 bad input or environment, found before any work;
130 / 143 interrupted by SIGINT / SIGTERM (the journal holds every finished configuration and
the message says how to resume).

Adding a flag: add it in :func:`build_parser`; an algorithm option goes in the table of
:mod:`ssddbc.ssddbc._params` instead and appears here by itself. A flag that changes the rows
must reach :class:`RunConfig` (and so the identity). The original batch runner's flags that
have no counterpart of their own are in :func:`_add_original_flags`; its ranges are half-open
(:func:`_half_open`), and the resolved grid is printed first (:func:`format_grid`).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import signal
import stat
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from knncache import KnnCacheError, PersistentStore, fingerprint
from ssddbc._errors import RunFolderError, SearchConfigError, SsddbcError
from ssddbc.grid_search._config import RunConfig, compute_identity, describe, difference
from ssddbc.grid_search._execution import (
    Engine,
    ExternalExecutor,
    ProgressReporter,
    WorkerCrashedError,
    make_engine,
    run_tasks,
)
from ssddbc.grid_search._files import new_run_dir, sweep_temporaries, write_json
from ssddbc.grid_search._inputs import Prepared, hold, prepare_inputs, prepare_with_fallback
from ssddbc.grid_search._journal import ResultsJournal
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan
from ssddbc.grid_search._plots import parse_plot_formats, plot_heatmap
from ssddbc.grid_search._report import format_text_report, write_text_report
from ssddbc.grid_search._signals import Interrupted, interruptible
from ssddbc.grid_search._summary import format_summary, summarise
from ssddbc.grid_search._tasks import ConfigResult, ConfigTask, clear_resources
from ssddbc.grid_search._validate import validate_grid
from ssddbc.grid_search._workers import resolve_n_jobs
from ssddbc.ssddbc._params import PARAMETERS, AlgorithmParams, add_algorithm_arguments

__all__ = [
    "DEFAULT_DEMO_DIR",
    "DEFAULT_OUTPUT_DIR",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "build_parser",
    "format_grid",
    "parse_superclasses",
    "run_batch",
]

PROG = "ssddbc-search"
#: Where the built-in demo feature cache is built when no --feature_cache_dir is given.
DEFAULT_DEMO_DIR = Path("ssddbc_demo") / "feature_cache"
#: Where run folders go by default.
DEFAULT_OUTPUT_DIR = Path("ssddbc_runs")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

#: Grid defaults, the original runner's: half-open ranges, k in [3, 21) and density
#: percentiles in [40, 95) step 5, i.e. k 3..20 x 40..90 = 198 configurations.
GRID_DEFAULTS = {"k_min": 3, "k_max": 21, "density_min": 40, "density_max": 95, "density_step": 5}

#: The L2 components the original runner required (its only supported set).
ORIGINAL_L2_COMPONENTS = frozenset({"separation", "silhouette"})


class BadInput(Exception):
    """An input or environment problem found before any work: one line, exit status 2."""


class _IOFailure(Exception):
    """Writing the run folder failed mid-run (disk full, file-size limit): exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ssddbc-search`` argument parser."""
    p = _Parser(
        prog=PROG,
        description=(
            "Grid search of SS-DDBC's k and density percentile over per-superclass feature "
            "caches, selecting by the label-only score (-L1 + 3*silhouette). Ranges are "
            "half-open, as in the original runner: --k_max and --density_max are excluded "
            "(the defaults search k 3..20 x density 40..90 step 5 = 198 configurations). "
            "Every flag of the original runner is accepted. Without --feature_cache_dir, the "
            f"built-in digits demo cache is built in ./{DEFAULT_DEMO_DIR} and searched."
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
    d = GRID_DEFAULTS
    p.add_argument("--k_min", type=int, default=None, help=f"smallest k, included [{d['k_min']}]")
    p.add_argument(
        "--k_max",
        type=int,
        default=None,
        help=f"upper bound of k, EXCLUDED (half-open, as the original) [{d['k_max']}]",
    )
    p.add_argument(
        "--density_min",
        type=int,
        default=None,
        help=f"smallest density percentile, included [{d['density_min']}]",
    )
    p.add_argument(
        "--density_max",
        type=int,
        default=None,
        help=f"upper bound of the density percentile, EXCLUDED (half-open, as the original) "
        f"[{d['density_max']}]",
    )
    p.add_argument(
        "--density_step", type=int, default=None, help=f"percentile step [{d['density_step']}]"
    )
    p.add_argument(
        "--n_jobs",
        "--max_workers",
        dest="n_jobs",
        type=int,
        default=None,
        help="worker processes, as in joblib: -1 every usable core (the default), -2 all but "
        "one; 1 runs serially; more than the usable cores is capped with a warning",
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
        "(its config.json defines the grid; refused if any input changed since)",
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
        "--allow_pickle",
        action="store_true",
        help="also read the original features.pkl files (unpickling runs code: "
        "only for your own files; convert them with python -m "
        "ssddbc.data.convert)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--plot_format",
        type=_plot_formats,
        default="png",
        metavar="png,pdf,svg",
        help="heatmap file format(s), comma-separated; not part of the run (a resume may differ)",
    )
    add_algorithm_arguments(p)
    _add_original_flags(p)
    return p


def _plot_formats(text: str) -> tuple[str, ...]:
    try:
        return parse_plot_formats(text)
    except SearchConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _add_original_flags(p: argparse.ArgumentParser) -> None:
    """The original batch runner's flags that have no counterpart above, with its meaning.

    (``--max_workers``, ``--no_parallel``, ``--count_all``, ``--dense_method``, ``--co_mode``
    and ``--assign_model`` are flags of their own above.) What the original fixed is accepted
    at the value it fixed; another value is a one-line error, exit status 2.
    """
    g = p.add_argument_group("flags of the original batch runner")
    g.add_argument(
        "--model_path",
        default=None,
        help="accepted for the original's command lines: features are read from the feature "
        "cache, never extracted from a model here (reported unused; a superclass without a "
        "cache is an error naming it)",
    )
    g.add_argument(
        "--superclass_file",
        default=None,
        metavar="FILE",
        help="superclass names, one per line; blank lines and lines starting with # are "
        "skipped (as the original; conflicts with --superclasses and --count_all)",
    )
    g.add_argument(
        "--use_cluster_quality",
        action="store_true",
        help="accepted: the selection score always has the form the original required with "
        "it (L1 plus the separation/silhouette quality terms, -L1 + 3*silhouette)",
    )
    g.add_argument(
        "--cluster_distance_method",
        type=int,
        default=None,
        help="accepted with the original's only value, 3 (prototype distance)",
    )
    g.add_argument(
        "--l2_components",
        default=None,
        help='accepted with the original\'s only value, "separation silhouette" (space- or '
        "comma-separated, any order)",
    )


#: Flags that define the grid or the rows; --resume takes them from config.json instead.
_RUN_FLAGS = (
    *GRID_DEFAULTS,
    "eval_split",
    *(p.name for p in PARAMETERS),
    "superclass_file",
)


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, flush=True)


def _warn_line(msg: str) -> None:
    print(f"{PROG}: warning: {msg}", file=sys.stderr, flush=True)


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


# ---- 1. argv -> run configuration -------------------------------------------------------


def _half_open(lo: int, hi: int, step: int, flag: str) -> list[int]:
    """``range(lo, hi, step)`` as the original runner built it; empty is an error."""
    if step < 1:
        raise SearchConfigError(flag, f"step must be >= 1, got {step}")
    values = list(range(lo, hi, step))
    if not values:
        raise SearchConfigError(
            flag,
            f"empty range [{lo}, {hi}): the upper bound is excluded (half-open, as the "
            f"original runner), so searching only {lo} needs an upper bound of {lo + 1}",
        )
    return values


def _span(values: Sequence[int]) -> str:
    """``3..20``, ``40..90 step 5``, ``12`` or an explicit list when the step varies."""
    if len(values) == 1:
        return str(values[0])
    steps = {b - a for a, b in itertools.pairwise(values)}
    if len(steps) == 1 and (step := steps.pop()) > 0:
        return f"{values[0]}..{values[-1]}" + (f" step {step}" if step != 1 else "")
    return ",".join(map(str, values))


def format_grid(k_values: Sequence[int], density_values: Sequence[int], n_sets: int = 1) -> str:
    """The resolved grid, e.g. ``k 3..20 (18) × density 40..90 step 5 (11) = 198 configurations``.

    With ``n_sets`` > 1 superclasses the line adds the count per superclass and in all.
    """
    per = len(k_values) * len(density_values)
    text = (
        f"k {_span(k_values)} ({len(k_values)}) × density {_span(density_values)} "
        f"({len(density_values)}) = {per} configurations"
    )
    if n_sets > 1:
        text += f" per superclass, {per * n_sets} for {n_sets} superclasses"
    return text


def _check_original_flags(args: argparse.Namespace) -> None:
    """The original runner's fixed-behaviour flags: its one value, or a one-line error."""
    if args.cluster_distance_method not in (None, 3):
        raise BadInput(
            f"--cluster_distance_method {args.cluster_distance_method}: only 3 (prototype "
            "distance) is supported, as in the original batch runner"
        )
    if args.l2_components is not None:
        parts = [c for c in args.l2_components.replace(",", " ").split() if c]
        if set(parts) != ORIGINAL_L2_COMPONENTS or len(parts) != len(set(parts)):
            raise BadInput(
                f'--l2_components {args.l2_components!r}: only "separation silhouette" is '
                "supported, as in the original batch runner"
            )


def _superclass_names(args: argparse.Namespace) -> list[str] | None:
    """Names given by --superclasses or --superclass_file (None: neither was given)."""
    if args.superclass_file is not None:
        if args.superclasses or args.count_all:
            given = "--superclasses" if args.superclasses else "--count_all"
            raise BadInput(f"--superclass_file conflicts with {given}: give one of them")
        try:
            names = parse_superclasses([], None, args.superclass_file)
        except FileNotFoundError:
            raise BadInput(f"--superclass_file {args.superclass_file}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(
                f"--superclass_file {args.superclass_file}: unreadable ({exc})"
            ) from None
        if not names:
            raise SearchConfigError("--superclass_file", f"no names in {args.superclass_file!r}")
        return names
    if args.superclasses:
        names = parse_superclasses([], args.superclasses, None)
        if not names:
            raise SearchConfigError("--superclasses", f"no names in {args.superclasses!r}")
        return names
    return None


def parse_superclasses(
    defaults: list[str], override: str | None, file_path: str | None
) -> list[str]:
    """The original runner's superclass list: ``override``, else ``file_path``, else defaults.

    Parameters
    ----------
    defaults : list of str
        Returned when neither of the others is given.
    override : str or None
        Comma-separated names (``--superclasses``); blanks around names are dropped.
    file_path : str or None
        A UTF-8 text file, one name per line (``--superclass_file``): each line stripped,
        blank lines and lines starting with ``#`` (in the first column) skipped, as the
        original read it.

    Returns
    -------
    list of str

    Raises
    ------
    FileNotFoundError
        ``file_path`` does not exist (as in the original).
    """
    if override:
        return [item.strip() for item in override.split(",") if item.strip()]
    if file_path:
        path = Path(file_path)
        if not path.exists():
            raise FileNotFoundError(f"superclass list file not found: {file_path}")
        return [
            line.strip()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
    return list(defaults)


def _check_model_path(args: argparse.Namespace, cfg: RunConfig, quiet: bool) -> None:
    """--model_path: unused when every feature cache exists, else an error naming the one."""
    from ssddbc.data.feature_cache import NPZ_NAME, PKL_NAME

    if args.model_path is None:
        return
    fcd = Path(cfg.feature_cache_dir)
    for name in cfg.superclasses:
        folder = fcd / name
        if not ((folder / NPZ_NAME).is_file() or (folder / PKL_NAME).is_file()):
            raise BadInput(
                f"--model_path {args.model_path}: no feature cache {folder / NPZ_NAME} (or "
                f"{PKL_NAME}); features are not extracted from a model here: write the "
                "cache first (ssddbc.data.write_superclass)"
            )
    if not quiet:
        print(
            f"note: --model_path {args.model_path} is not used: features are read from the "
            f"feature cache {fcd}",
            file=sys.stderr,
            flush=True,
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
        _warn_line(str(w.message))
    return workers


def _config_from_args(args: argparse.Namespace, plan: SearchPlan) -> RunConfig:
    """A fresh run's configuration from the flags (nothing is read but the folder list)."""
    from ssddbc.data import SUPERCLASSES, list_superclasses

    params = AlgorithmParams.from_namespace(args)
    d = {name: getattr(args, name) for name in GRID_DEFAULTS}
    d = {name: GRID_DEFAULTS[name] if v is None else v for name, v in d.items()}
    ks = _half_open(d["k_min"], d["k_max"], 1, "--k_min/--k_max")
    dps = _half_open(
        d["density_min"],
        d["density_max"],
        d["density_step"],
        "--density_min/--density_max/--density_step",
    )
    if args.feature_cache_dir is None:
        fcd = DEFAULT_DEMO_DIR
    else:
        fcd = Path(args.feature_cache_dir)
        if not fcd.is_dir():
            raise BadInput(f"--feature_cache_dir {fcd}: no such folder")
    given = _superclass_names(args)
    if args.count_all:
        names = list(SUPERCLASSES)
    elif given is not None:
        names = given
    elif args.feature_cache_dir is None:
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
    )


def _resumed_config(args: argparse.Namespace) -> RunConfig:
    given = [f"--{f}" for f in _RUN_FLAGS if getattr(args, f, None) is not None]
    if given or args.feature_cache_dir or args.superclasses or args.count_all:
        raise BadInput(
            "--resume takes the grid and the superclasses from RUN_DIR/config.json; "
            f"drop {', '.join(given) or 'the superclass/feature-cache flags'}"
        )
    run_dir = Path(args.resume)
    if not run_dir.is_dir():
        raise BadInput(f"--resume {run_dir}: no such run folder")
    return RunConfig.read(run_dir)


# ---- 2. inputs and identity -------------------------------------------------------------


def _load_inputs(cfg: RunConfig) -> dict[str, tuple[Any, Any, str]]:
    """Load and check every superclass before any work; errors name the file.

    Returns ``{name: (SuperclassData, eval_mask, features_fingerprint)}``; the fingerprint
    is computed here once per run and reused for the identity and the summary.
    """
    from ssddbc.data import load_superclass
    from ssddbc.evaluation import evaluation_mask

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
        data[name] = (d, mask, fingerprint(d.features))
    validate_grid(cfg.k_values, cfg.density_values, n_samples=[d.n for d, _, _ in data.values()])
    return data


def _check_identity(cfg: RunConfig, data: dict[str, tuple[Any, Any, str]], run_dir: Path) -> None:
    current = compute_identity(cfg, data)
    component = difference(cfg.identity, current)
    if component is not None:
        raise BadInput(
            f"--resume {run_dir}: {describe(component)} changed since the run started "
            f"({component}); its rows would mix with the earlier ones; start a new run"
        )


def _clear_targets(cfg: RunConfig) -> list[Path]:
    """The knn_cache folders --clear_knn_cache will delete, each checked first."""
    out = []
    for name in cfg.superclasses:
        target = Path(cfg.feature_cache_dir) / name / "knn_cache"
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
        out.append(target)
    return out


# ---- the run ----------------------------------------------------------------------------


def run_batch(argv: Sequence[str] | None = None, *, plan: SearchPlan | None = None) -> int:
    """Run the batch search; return the exit status (see the module docstring).

    Parameters
    ----------
    argv : sequence of str or None
        The flags (``sys.argv[1:]`` when None).
    plan : SearchPlan or None
        The route thresholds for a fresh run (default :data:`DEFAULT_PLAN`); a resumed run
        uses the one in its ``config.json``.
    """
    args = build_parser().parse_args(argv)
    state = _State()
    try:
        with interruptible():
            return _run(args, plan or DEFAULT_PLAN, state)
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


def _run(args: argparse.Namespace, plan: SearchPlan, state: _State) -> int:
    quiet = args.quiet
    with contextlib.ExitStack() as scope:
        try:
            workers = _workers(args)
            _check_original_flags(args)
            if args.resume:
                cfg = _resumed_config(args)
                run_dir: Path | None = Path(args.resume)
            else:
                cfg = _config_from_args(args, plan)
                run_dir = None
                if args.feature_cache_dir is None:
                    from ssddbc.data import build_digits_feature_cache

                    built = build_digits_feature_cache(DEFAULT_DEMO_DIR)
                    _say(
                        f"demo: built-in digits feature cache in {DEFAULT_DEMO_DIR.resolve()} "
                        f"(superclasses: {', '.join(built)})",
                        quiet,
                    )
                    if not cfg.superclasses:
                        cfg = replace(cfg, superclasses=built)
            _check_model_path(args, cfg, quiet)
            data = _load_inputs(cfg)
            _say(f"grid: {format_grid(cfg.k_values, cfg.density_values, len(data))}", quiet)
            if run_dir is not None:
                _check_identity(cfg, data, run_dir)
            else:
                cfg = replace(cfg, identity=compute_identity(cfg, data))
            clear = _clear_targets(cfg) if args.clear_knn_cache else []
            session = None
            if args.scheduler is not None:
                session = _connect(scope, args.scheduler, Path(cfg.feature_cache_dir), quiet)
            journal, done = _open_run_folder(cfg, run_dir, Path(args.output_dir), state, quiet)
        except (SsddbcError, KnnCacheError, BadInput) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        assert state.run_dir is not None
        try:
            for target in clear:
                shutil.rmtree(target)
                _say(f"cleared {target}", quiet)
            _say(f"run folder: {state.run_dir.resolve()}", quiet)
            return _execute(cfg, data, journal, done, args, workers, session, state)
        except (OSError, _IOFailure) as exc:
            cause = exc.__cause__ if isinstance(exc, _IOFailure) else exc
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


def _connect(scope: contextlib.ExitStack, spec: str, fcd: Path, quiet: bool) -> Any:
    """Open the Dask session for the run (closed by ``scope``) and check the workers."""
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
            f"--scheduler {spec}: {len(blind)} Dask worker(s) cannot read --feature_cache_dir "
            f"{fcd} ({', '.join(blind[:3])}{', ...' if len(blind) > 3 else ''}); the feature "
            "cache and its knncache stores must be on a filesystem every worker mounts at the "
            "same path"
        )
    how = "started for this run" if session.local else "connected"
    _say(
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


# ---- 3. run folder and journal ----------------------------------------------------------


def _open_run_folder(
    cfg: RunConfig, run_dir: Path | None, output_dir: Path, state: _State, quiet: bool
) -> tuple[ResultsJournal, dict[tuple[str, int, int], ConfigResult]]:
    """Create the run folder (fresh run) or check the resumed one; read the journal."""
    if run_dir is None:
        run_dir = new_run_dir(output_dir, len(cfg.superclasses))
        try:
            # At once: a run folder is resumable from the moment it exists.
            write_json(run_dir / "config.json", cfg.to_json([PROG, *sys.argv[1:]]))
        except OSError as exc:
            raise RunFolderError(str(run_dir), f"cannot write ({exc.strerror or exc})") from None
    else:
        sweep_temporaries(run_dir)
        state.knn = _previous_knn(run_dir)
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
        _say(f"resuming: {len(done)} of {len(wanted)} configurations already done", quiet)
    state.total = len(wanted)
    state.saved = len(done)
    state.started = True
    return journal, done


def _previous_knn(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The knn blocks of an earlier summary.json (kept for superclasses not prepared again)."""
    import json

    try:
        raw = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        return {
            name: entry["knn"]
            for name, entry in raw["superclasses"].items()
            if isinstance(entry, dict) and isinstance(entry.get("knn"), dict)
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


# ---- 4. execute -------------------------------------------------------------------------


def _execute(
    cfg: RunConfig,
    data: dict[str, tuple[Any, Any, str]],
    journal: ResultsJournal,
    done: dict[tuple[str, int, int], ConfigResult],
    args: argparse.Namespace,
    workers: int | None,
    session: Any,
    state: _State,
) -> int:
    quiet = args.quiet
    started = time.monotonic()
    k_max = max(cfg.k_values)
    knn: dict[str, dict[str, Any]] = dict(state.knn)
    searches = hits = 0
    results: dict[tuple[str, int, int], ConfigResult] = dict(done)
    # The run scope: every store entry the tasks read is held from here until the run ends,
    # and this process's memory maps of them are dropped when it does.
    with contextlib.ExitStack() as run_scope:
        run_scope.callback(clear_resources)
        tasks: list[ConfigTask] = []
        for name in cfg.superclasses:
            missing = [
                (k, dp)
                for k in cfg.k_values
                for dp in cfg.density_values
                if (name, k, dp) not in done
            ]
            if not missing:
                continue
            d, eval_mask, fp = data[name]
            prepared = _prepare(run_scope, cfg, name, d, eval_mask, k_max, args.knn_lock)
            searches += prepared.searches
            hits += prepared.hits
            knn[name] = {
                "searches": prepared.searches,
                "cache_hits": prepared.hits,
                "store": str(prepared.store.root),
                "fingerprint": fp,
                "temporary_store": prepared.temporary,
            }
            shared = prepared.shared
            how = "searched" if shared.searched else "cache hit"
            _say(
                f"{name}: N={d.n}, d={d.features.shape[1]}, knn {how} (graph stored at "
                f"k={shared.ref.k}), {len(missing)} configurations to run",
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
                raise _IOFailure() from exc
            results[r.cell] = r
            state.saved += 1

        progress = ProgressReporter(len(tasks), PROG, enabled=not quiet)
        try:
            with engine:
                run_tasks(
                    tasks,
                    engine=engine,
                    on_result=on_result,
                    progress=progress,
                    on_event=_warn_line,
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
    return _finish(
        cfg, journal, results, knn, invocation, quiet, args.plot_format, model_path=args.model_path
    )


def _prepare(
    run_scope: contextlib.ExitStack,
    cfg: RunConfig,
    name: str,
    d: Any,
    eval_mask: Any,
    k_max: int,
    lock: str,
) -> Prepared:
    """Shared inputs of one superclass, in its persistent store (or the fallback)."""
    store = PersistentStore(Path(cfg.feature_cache_dir) / name / "knn_cache", lock=lock)
    prepared = prepare_with_fallback(
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
        ),
        what=f"the knncache store of {name!r}",
    )
    hold(run_scope, prepared)
    return prepared


# ---- 5. finish --------------------------------------------------------------------------


def _finish(
    cfg: RunConfig,
    journal: ResultsJournal,
    results: dict[tuple[str, int, int], ConfigResult],
    knn: dict[str, dict[str, Any]],
    invocation: dict[str, Any],
    quiet: bool,
    plot_formats: Sequence[str] = ("png",),
    *,
    model_path: str | None = None,
) -> int:
    ordered = [results[c] for c in cfg.cells() if c in results]
    try:
        journal.rewrite(ordered)
    except OSError as exc:
        raise _IOFailure() from exc
    summary = summarise(
        superclasses=cfg.superclasses,
        k_values=cfg.k_values,
        density_values=cfg.density_values,
        eval_split=cfg.eval_split,
        results=ordered,
        knn=knn,
        invocation=invocation,
    )
    run_dir = journal.path.parent
    summary["heatmaps"] = [f"heatmap_{n}.{f}" for n in cfg.superclasses for f in plot_formats]
    try:
        write_json(run_dir / "summary.json", summary)
        for name in cfg.superclasses:
            sel = summary["superclasses"][name]
            plot_heatmap(
                run_dir / f"heatmap_{name}",
                f"SS-DDBC grid search: {name}",
                [r for r in ordered if r.group == name],
                cfg.k_values,
                cfg.density_values,
                _cell(sel.get("selected")),
                _cell(sel.get("oracle_best_by_test_accuracy")),
                eval_split=cfg.eval_split,
                formats=plot_formats,
            )
            _write_report(run_dir, cfg, name, ordered, sel, invocation, model_path)
    except OSError as exc:
        raise _IOFailure() from exc
    if not quiet:
        print(format_summary(summary, run_dir), flush=True)
    return EXIT_FAILED if summary["failed_configurations"] else EXIT_OK


def _write_report(
    run_dir: Path,
    cfg: RunConfig,
    name: str,
    ordered: list[ConfigResult],
    sel: dict[str, Any],
    invocation: dict[str, Any],
    model_path: str | None,
) -> None:
    """``<run>/<name>/<name>.txt``: the original runner's report, for its tools."""
    rows = [r for r in ordered if r.group == name]
    text = format_text_report(
        name,
        {(r.k, r.density_percentile): r.metrics() for r in rows if r.ok},
        k_values=cfg.k_values,
        density_values=cfg.density_values,
        model_path=model_path,
        feature_cache_dir=cfg.feature_cache_dir,
        workers=int(invocation["workers"]),
        seconds=float(invocation["seconds"]),
        selected=_cell(sel.get("selected")),
        failed=[(r.k, r.density_percentile) for r in rows if not r.ok],
    )
    write_text_report(run_dir / name / f"{name}.txt", text)


def _cell(entry: dict[str, Any] | None) -> tuple[int, int] | None:
    if not entry:
        return None
    return int(entry["k"]), int(entry["density_percentile"])
