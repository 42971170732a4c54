"""``python -m ssddbc.testing.main``: the original's single-configuration command line.

Every flag of the original's ``ssddbc/testing/main.py`` is accepted with its meaning, plus
``--feature_cache_dir`` (required) and ``--allow_pickle``; features always come from the
feature cache. ``--dense_method`` and ``--assign_model`` default to the algorithm's table
(the original's defaults made it raise). Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import numpy as np

from ssddbc._errors import SsddbcError
from ssddbc.compat.kmeans import test_kmeans_baseline
from ssddbc.compat.test_superclass import test_adaptive_clustering_on_superclass
from ssddbc.ssddbc._params import PARAMETERS, AlgorithmParams

__all__ = [
    "ORIGINAL_FLAGS",
    "add_original_arguments",
    "main",
    "parse_l2_component_weights",
    "parse_l2_components",
    "run",
    "str2bool",
]


def str2bool(value: str) -> bool:
    """The original's boolean flag values: yes/true/t/y/1 and no/false/f/n/0 (any case)."""
    v = value.lower()
    if v in ("yes", "true", "t", "y", "1"):
        return True
    if v in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"boolean value expected, got {value!r}")


def parse_l2_components(value: str | None) -> list[str] | None:
    """``"separation silhouette"`` or ``"separation,silhouette"`` -> a list (None stays)."""
    if value is None:
        return None
    return [part for part in value.replace(",", " ").split() if part]


def parse_l2_component_weights(value: str | None) -> dict[str, float] | None:
    """A JSON object or ``"name=weight,name=weight"`` -> a dict (None stays).

    Raises
    ------
    argparse.ArgumentTypeError
        An entry without ``=`` or a weight that is not a number.
    """
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    try:
        if isinstance(parsed, dict):
            return {str(k): float(v) for k, v in parsed.items()}
        weights: dict[str, float] = {}
        for chunk in value.split(","):
            chunk = chunk.strip()
            if not chunk:
                continue
            if "=" not in chunk:
                raise argparse.ArgumentTypeError(f"expected name=weight, got {chunk!r}")
            key, val = chunk.split("=", 1)
            weights[key.strip()] = float(val.strip())
        return weights
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"weights must be numbers, got {value!r}") from None


#: The algorithm's defaults and allowed values, from the one table (ssddbc.ssddbc._params).
_DEFAULTS = AlgorithmParams()
_CHOICES = {spec.name: list(spec.choices or ()) for spec in PARAMETERS}

#: dest -> (flag, add_argument keyword arguments) of the original's command line, in its
#: order. ``--k``, ``--density_percentile``, ``--superclass_name`` and the algorithm flags
#: shared with ``python -m ssddbc.testing.test_superclass`` are part of it.
ORIGINAL_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "model_path": (
        "--model_path",
        {
            "default": None,
            "help": "accepted; features come from the feature cache, the model is not used",
        },
    ),
    "superclass_name": ("--superclass_name", {"default": "trees"}),
    "use_train_and_test": ("--use_train_and_test", {"type": str2bool, "default": True}),
    "l2": (
        "--l2",
        {
            "type": str2bool,
            "default": True,
            "help": "L2-normalised cache (False: the features_nol2 cache beside it)",
        },
    ),
    "fast_mode": ("--fast_mode", {"type": str2bool, "default": False}),
    "k": ("--k", {"type": int, "default": 10}),
    "density_percentile": ("--density_percentile", {"type": int, "default": 75}),
    "dense_method": (
        "--dense_method",
        {"type": int, "default": _DEFAULTS.dense_method, "choices": _CHOICES["dense_method"]},
    ),
    "co_mode": (
        "--co_mode",
        {"type": int, "default": _DEFAULTS.co_mode, "choices": _CHOICES["co_mode"]},
    ),
    "co_manual": ("--co_manual", {"type": float, "default": _DEFAULTS.co_manual}),
    "eval_dense": ("--eval_dense", {"type": str2bool, "default": False}),
    "assign_model": (
        "--assign_model",
        {"type": int, "default": _DEFAULTS.assign_model, "choices": _CHOICES["assign_model"]},
    ),
    "voting_k": ("--voting_k", {"type": int, "default": _DEFAULTS.voting_k}),
    "eval_version": ("--eval_version", {"default": "v2", "choices": ["v1", "v2"]}),
    "run_kmeans_baseline": ("--run_kmeans_baseline", {"type": str2bool, "default": False}),
    "kmeans_merge": ("--kmeans_merge", {"type": str2bool, "default": False}),
    "detail_dense": ("--detail_dense", {"type": str2bool, "default": False}),
    "label_guide": ("--label_guide", {"type": str2bool, "default": False}),
    "analyze_errors": ("--analyze_errors", {"type": str2bool, "default": False}),
    "use_cluster_quality": ("--use_cluster_quality", {"type": str2bool, "default": False}),
    "cluster_distance_method": (
        "--cluster_distance_method",
        {
            "type": int,
            "default": 1,
            "choices": [1, 2, 3],
            "help": "1 nearest_k, 2 all_pairs, 3 prototype",
        },
    ),
    "l1_type": (
        "--l1_type",
        {"default": "cross_entropy", "choices": ["accuracy", "cross_entropy"]},
    ),
    "separation_weight": ("--separation_weight", {"type": float, "default": 1.0}),
    "penalty_weight": ("--penalty_weight", {"type": float, "default": 1.0}),
    "l2_components": (
        "--l2_components",
        {"default": None, "help": "e.g. 'separation silhouette'"},
    ),
    "l2_component_weights": (
        "--l2_component_weights",
        {"default": None, "help": "JSON or 'name=w,name=w'"},
    ),
    "grid_search": ("--grid_search", {"type": str2bool, "default": False}),
    "k_min": ("--k_min", {"type": int, "default": 3}),
    "k_max": ("--k_max", {"type": int, "default": 21}),
    "dp_min": ("--dp_min", {"type": int, "default": 50}),
    "dp_max": ("--dp_max", {"type": int, "default": 100}),
    "dp_step": ("--dp_step", {"type": int, "default": 5}),
}


def add_original_arguments(
    parser: argparse.ArgumentParser, *, skip: Sequence[str] = (), suppress: bool = False
) -> None:
    """Add :data:`ORIGINAL_FLAGS` to ``parser`` (except the dests in ``skip``).

    With ``suppress`` the flags get no default (``argparse.SUPPRESS``): a dest is then present
    in the namespace only when the flag was given.
    """
    for dest, (flag, kwargs) in ORIGINAL_FLAGS.items():
        if dest in skip:
            continue
        kw = dict(kwargs)
        if suppress:
            kw["default"] = argparse.SUPPRESS
        parser.add_argument(flag, dest=dest, **kw)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(prog: str = "python -m ssddbc.testing.main") -> argparse.ArgumentParser:
    """The original's flags plus ``--feature_cache_dir`` and ``--allow_pickle``."""
    parser = OneLineErrorParser(
        prog=prog,
        description="Run SS-DDBC with one configuration on one superclass of a feature cache "
        "(the original research code's testing/main.py command line).",
    )
    parser.add_argument("--feature_cache_dir", required=True, help="feature cache root")
    parser.add_argument(
        "--allow_pickle",
        action="store_true",
        help="unpickle features.pkl without restriction (only your own files)",
    )
    add_original_arguments(parser)
    return parser


def _print_comparison(ssddbc: dict[str, Any], kmeans: dict[str, Any], file: IO[str]) -> None:
    print(f"{'metric':<10} {'SS-DDBC':>10} {'k-means':>10} {'diff':>10}", file=file)
    for key, name in (("all_acc", "All ACC"), ("old_acc", "Old ACC"), ("new_acc", "New ACC")):
        a, b = float(ssddbc[key]), float(kmeans[key])
        print(f"{name:<10} {a:>10.4f} {b:>10.4f} {a - b:>+10.4f}", file=file)
    print(f"{'clusters':<10} {ssddbc['n_clusters']:>10} {kmeans['n_clusters']:>10}", file=file)


def run(args: argparse.Namespace, file: IO[str] | None = None) -> dict[str, Any] | None:
    """Run what the parsed original flags ask for; return the result dict (None for
    ``--grid_search True``)."""
    out = sys.stdout if file is None else file
    if args.grid_search:
        print(
            "grid search lives in the batch runner: ssddbc-search "
            "(python -m ssddbc.grid_search.batch_runner) --feature_cache_dir "
            f"{args.feature_cache_dir} --superclasses {args.superclass_name}",
            file=out,
        )
        return None
    results = test_adaptive_clustering_on_superclass(
        args.superclass_name,
        args.model_path,
        use_train_and_test=args.use_train_and_test,
        k=args.k,
        density_percentile=args.density_percentile,
        random_state=0,
        eval_version=args.eval_version,
        run_kmeans_baseline=args.run_kmeans_baseline,
        use_l2=args.l2,
        feature_cache_dir=args.feature_cache_dir,
        eval_dense=args.eval_dense,
        fast_mode=args.fast_mode,
        dense_method=args.dense_method,
        assign_model=args.assign_model,
        voting_k=args.voting_k,
        co_mode=args.co_mode,
        co_manual=args.co_manual,
        detail_dense=args.detail_dense,
        label_guide=args.label_guide,
        use_cluster_quality=args.use_cluster_quality,
        cluster_distance_method=args.cluster_distance_method,
        l1_type=args.l1_type,
        separation_weight=args.separation_weight,
        penalty_weight=args.penalty_weight,
        l2_components=parse_l2_components(args.l2_components),
        l2_component_weights=parse_l2_component_weights(args.l2_component_weights),
        allow_pickle=args.allow_pickle,
        file=out,
    )
    if args.run_kmeans_baseline:
        test_targets = results["test_targets"]
        kmeans = test_kmeans_baseline(
            results["test_features"],
            test_targets,
            results["test_known_mask"],
            n_clusters=int(np.unique(test_targets).size),
            random_state=0,
            eval_version=args.eval_version,
            kmeans_merge=args.kmeans_merge,
            train_features=results.get("train_features"),
            train_targets=results.get("train_targets"),
            train_known_mask=results.get("train_known_mask"),
        )
        results["kmeans"] = kmeans
        _print_comparison(results, kmeans, out)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        parse_l2_component_weights(args.l2_component_weights)  # a usage error, before work
    except argparse.ArgumentTypeError as exc:
        parser.error(f"argument --l2_component_weights: {exc}")
    try:
        run(args)
    except SsddbcError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


class CallableModule(types.ModuleType):
    """A module that calls its own ``main`` when called: ``ssddbc.testing.main(argv)``.

    The original's ``ssddbc.testing`` bound ``main`` to the function; importing the
    submodule ``ssddbc.testing.main`` binds the same package attribute to the module. The
    stub module takes this class, so ``from ssddbc.testing import main; main()`` runs the
    command whichever was imported first, and ``main.main`` and ``python -m`` keep working.
    """

    def __call__(self, argv: Sequence[str] | None = None) -> int:
        """Run the module's ``main(argv)``.

        Parameters
        ----------
        argv : sequence of str or None
            The command-line arguments (default ``sys.argv[1:]``).

        Returns
        -------
        int
            The exit status, as :func:`main` returns it.
        """
        command: Any = self.main
        status: int = command(argv)
        return status
