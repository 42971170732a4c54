"""The ``ssddbc-search`` argument parser: every flag, its type and its help."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import knncache
import ssddbc
from ssddbc._errors import SearchConfigError
from ssddbc._metric import METRICS
from ssddbc.grid_search._console import EXIT_BAD_INPUT, PROG
from ssddbc.grid_search._inputs import KNN_METHODS
from ssddbc.grid_search._original_flags import GRID_DEFAULTS, add_original_flags
from ssddbc.grid_search._plots import parse_plot_formats
from ssddbc.ssddbc._params import add_algorithm_arguments

__all__ = [
    "DEFAULT_DEMO_DIR",
    "DEFAULT_OUTPUT_DIR",
    "ENV_KNN_CACHE_DIR",
    "build_parser",
    "check_mode",
]

#: Where the built-in demo feature cache is built when no --feature_cache_dir is given.
DEFAULT_DEMO_DIR = Path("ssddbc_demo") / "feature_cache"
#: Where run folders go by default.
DEFAULT_OUTPUT_DIR = Path("ssddbc_runs")
#: Environment variable read when --knn_cache_dir is not given.
ENV_KNN_CACHE_DIR = "SSDDBC_KNN_CACHE_DIR"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2, and every
    ``--flag_name`` is also accepted as ``--flag-name``.

    The dashed spellings are not registered (so ``--help`` lists each flag once): before
    parsing, a token ``--a-b[=value]`` that is no flag itself but whose underscore spelling
    ``--a_b`` is, is read as that flag. This covers every flag added to the parser, by
    anyone, with no per-flag code.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._underscored(argv), namespace)

    def _underscored(self, argv: list[str]) -> list[str]:
        known = self._option_string_actions
        out: list[str] = []
        for i, token in enumerate(argv):
            if token == "--":  # everything after it is positional
                return out + argv[i:]
            flag, eq, value = token.partition("=")
            if flag.startswith("--") and "-" in flag[2:] and flag not in known:
                alias = "--" + flag[2:].replace("-", "_")
                if alias in known:
                    token = alias + eq + value
            out.append(token)
        return out


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only for a real default; flags whose default is None (given or
    not matters, e.g. to ``--resume``) state theirs in their own help text."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "(default:" in text:
            return text
        return super()._get_help_string(action) or text


def build_parser() -> argparse.ArgumentParser:
    """The ``ssddbc-search`` argument parser."""
    p = _Parser(
        prog=PROG,
        description=(
            "Grid search of SS-DDBC's k and density percentile over per-superclass feature "
            "caches, selecting by the label-only score (-L1 + 3*silhouette). Ranges are "
            "half-open, as in the original runner: --k_max and --density_max are excluded "
            "(the defaults search k 3..20 x density 40..90 step 5 = 198 configurations). "
            "Every flag of the original runner is accepted. Give --feature_cache_dir DIR, or "
            f"--demo for the built-in digits demo (built in ./{DEFAULT_DEMO_DIR})."
        ),
        epilog="Every --flag_name is also accepted as --flag-name.",
        formatter_class=_HelpFormatter,
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
        help="comma-separated superclass names; a name given twice is searched once, with a "
        "warning (default: every superclass found)",
    )
    g.add_argument(
        "--count_all",
        action="store_true",
        help="search all 15 CIFAR-100 superclasses of the original research",
    )
    d = GRID_DEFAULTS
    p.add_argument(
        "--k_min", type=int, default=None, help=f"smallest k, included (default: {d['k_min']})"
    )
    p.add_argument(
        "--k_max",
        type=int,
        default=None,
        help=f"upper bound of k, EXCLUDED (half-open, as the original; default: {d['k_max']}); "
        "one neighbour search at the largest k serves all",
    )
    p.add_argument(
        "--density_min",
        type=int,
        default=None,
        help=f"smallest density percentile, included (default: {d['density_min']})",
    )
    p.add_argument(
        "--density_max",
        type=int,
        default=None,
        help=f"upper bound of the density percentile, EXCLUDED (half-open, as the original; "
        f"default: {d['density_max']})",
    )
    p.add_argument(
        "--density_step",
        type=int,
        default=None,
        help=f"percentile step (default: {d['density_step']})",
    )
    p.add_argument(
        "--n_jobs",
        "--max_workers",
        dest="n_jobs",
        type=int,
        default=None,
        help="worker processes, as in joblib: -1 every usable core, -2 all but one; 1 runs "
        "serially; more than the usable cores is capped with a warning (default: -1)",
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
        "superclass; workers only read the knncache stores (under --feature_cache_dir, or "
        "--knn_cache_dir), "
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
        "--knn_method",
        choices=KNN_METHODS,
        default=None,
        help="the neighbour-graph engine: exact (the default; the original's partitions) or "
        "an approximate faiss index, hnsw or ivf (faster at large N; the partitions may "
        "differ from the exact search, and the outputs say so with the measured recall) "
        "[exact]",
    )
    p.add_argument(
        "--knn_params",
        type=_knn_params,
        default=None,
        metavar="KEY=VALUE,...",
        help="the approximate engine's parameters, e.g. M=32,efSearch=128 (hnsw: M, "
        "efConstruction, efSearch; ivf: nlist, nprobe); defaults: knncache.ENGINE_DEFAULTS",
    )
    p.add_argument(
        "--output_dir", default=str(DEFAULT_OUTPUT_DIR), help="where run folders are created"
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="complete the missing configurations of an earlier run folder "
        "(its config.json defines the grid; refused if any input changed since). Nothing "
        "in the run folder allows unpickling: give --allow_pickle again, with "
        "--feature_cache_dir naming the recorded feature cache",
    )
    p.add_argument(
        "--clear_knn_cache",
        action="store_true",
        help="remove the entries of each superclass's knncache store (<feature_cache_dir>/"
        "<superclass>/knn_cache/, or DIR/<superclass>/ with --knn_cache_dir) before the "
        "run, through the store: nothing that is not an entry is removed, and a folder "
        "holding a feature cache is refused",
    )
    p.add_argument(
        "--eval",
        dest="eval_split",
        choices=("test", "unlabelled"),
        default=None,
        help="samples the reported accuracies use: the test split (indices >= "
        "train size, the original protocol) or the unlabelled samples (the API's default); "
        "the summary's oracle field names it: oracle_best_by_<split>_accuracy "
        "(default: test)",
    )
    p.add_argument(
        "--allow_pickle",
        action="store_true",
        help="also read the original features.pkl files (unpickling runs code: "
        "only for your own files; convert them with python -m "
        "ssddbc.data.convert). Applies to this invocation only: a --resume needs it again",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (stderr); the run folder and the results table still go to stdout",
    )
    p.add_argument(
        "--plot_format",
        type=_plot_formats,
        default="png",
        metavar="png,pdf,svg",
        help="heatmap file format(s), comma-separated; not part of the run (a resume may differ)",
    )
    p.add_argument(
        "--no_baselines",
        action="store_true",
        help="skip the baselines run at the end (k-means and semi-supervised k-means with "
        "the true number of classes, on the same samples and split, reported beside the "
        "selection in the table and summary.json); not part of the run (a resume may differ)",
    )
    add_algorithm_arguments(p)
    add_original_flags(p)
    _add_cli_conventions(p)
    return p


def _plot_formats(text: str) -> tuple[str, ...]:
    try:
        return parse_plot_formats(text)
    except SearchConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _knn_params(text: str) -> dict[str, Any]:
    """``KEY=VALUE,...`` to a dict (integer values as int); names are checked later."""
    out: dict[str, Any] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE,..., got {text!r}")
        if name in out:
            raise argparse.ArgumentTypeError(f"{name!r} given twice in {text!r}")
        out[name] = int(value) if value.lstrip("+-").isdigit() else value
    return out


def _add_cli_conventions(p: argparse.ArgumentParser) -> None:
    """The demo, metric, store placement, --show and --version flags."""
    p.add_argument(
        "--demo",
        action="store_true",
        help=f"search the built-in digits demo cache (built in ./{DEFAULT_DEMO_DIR}); without "
        "it, --feature_cache_dir (or --resume / --show) is required",
    )
    p.add_argument(
        "--metric",
        choices=METRICS,
        default=None,
        help="cosine runs SS-DDBC on the L2-normalised features (Euclidean distances of the "
        "unit rows); part of the knn cache key and of the run (default: euclidean)",
    )
    p.add_argument(
        "--knn_cache_dir",
        default=None,
        metavar="DIR",
        help="put the knncache stores in DIR/<superclass>/ instead of "
        "<feature_cache_dir>/<superclass>/knn_cache/ (for a read-only or shared feature "
        f"cache; default: ${ENV_KNN_CACHE_DIR} when set)",
    )
    p.add_argument(
        "--knn_max_bytes",
        type=_byte_size,
        default=None,
        metavar="SIZE",
        help="cap each store at SIZE (bytes, or 500M, 2G, ...): least-recently-used entries "
        "are evicted, never one this run uses (default: no limit)",
    )
    p.add_argument(
        "--show",
        default=None,
        metavar="RUN_DIR",
        help="print the results table of a finished or interrupted run folder and exit "
        "(exit status 0 when every configuration is done and succeeded, else 1)",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        default=None,
        metavar="RUN_DIR",
        help="print per superclass the mean ± std of the selected and oracle accuracies over "
        "these finished run folders and the config.json fields that differ, and exit (add "
        "--json for JSON); an unreadable run folder is refused (exit status 2)",
    )
    p.add_argument("--version", action="version", version=_versions())


def _versions() -> str:
    return f"{PROG} (ssddbc {ssddbc.__version__}, knncache {knncache.__version__})"


_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _byte_size(text: str) -> int:
    """argparse ``type=`` of ``--knn_max_bytes``: ``123``, ``500M``, ``2G``, ``1.5GiB``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: a byte count or a number with K, M, G or T (500M, 2G)"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def check_mode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What to run must be said: a feature cache, --demo, --resume or --show (else exit 2)."""
    modes = [
        flag
        for flag, given in (
            # With --resume, --feature_cache_dir only confirms the recorded folder.
            ("--feature_cache_dir", args.feature_cache_dir is not None and not args.resume),
            ("--demo", args.demo),
            ("--resume", args.resume is not None),
            ("--show", args.show is not None),
            ("--compare", args.compare is not None),
        )
        if given
    ]
    if not modes:
        parser.error(
            "give --feature_cache_dir DIR (your feature cache), or --demo for the built-in "
            "digits demo (or --resume RUN_DIR / --show RUN_DIR)"
        )
    if len(modes) > 1:
        parser.error(f"{' and '.join(modes)} cannot be combined")
