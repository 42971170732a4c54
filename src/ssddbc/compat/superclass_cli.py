"""``python -m ssddbc.testing.test_superclass``: one configuration and the baselines.

Runs :func:`ssddbc.compat.superclass.run_test_superclass`. Every flag of the original's
``python -m ssddbc.testing.main`` is accepted too; given any of them besides the shared
algorithm flags, it runs as that command. Exit status: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssddbc._errors import SsddbcError
from ssddbc.compat.superclass import EVAL_DESCRIPTION, run_test_superclass
from ssddbc.compat.testing_cli import (
    ORIGINAL_FLAGS,
    OneLineErrorParser,
    add_original_arguments,
    parse_l2_component_weights,
    run,
)
from ssddbc.ssddbc._params import AlgorithmParams, add_algorithm_arguments

__all__ = ["main"]


def _number(text: str) -> float:
    """A percentile as typed: ``40`` stays the int 40 (as the original's grid has it)."""
    value = float(text)
    return int(value) if value.is_integer() else value


#: Flags this command and the original's testing/main.py share (same meaning).
_SHARED_FLAGS = (
    "k",
    "density_percentile",
    "dense_method",
    "co_mode",
    "co_manual",
    "assign_model",
    "voting_k",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input).

    Every flag of ``python -m ssddbc.testing.main`` is accepted; with any of them besides the
    shared algorithm flags, the command runs as that one (the original's report and result).
    """
    parser = OneLineErrorParser(
        prog="python -m ssddbc.testing.test_superclass",
        description="Run one SS-DDBC configuration and the k-means / semi-supervised k-means "
        "baselines on one superclass of a feature cache; print All/Old/New accuracy (v2).",
    )
    parser.add_argument("--feature_cache_dir", required=True, help="feature cache root")
    parser.add_argument("--superclass", "--superclass_name", required=True, dest="superclass")
    parser.add_argument("--k", type=int, default=10, help="neighbours (default 10)")
    parser.add_argument("--density_percentile", type=_number, default=75, help="0-100 (default 75)")
    parser.add_argument(
        "--eval_mode",
        choices=sorted(EVAL_DESCRIPTION),
        default="test",
        help="samples scored: test part (default, as the original), unlabelled, all",
    )
    add_algorithm_arguments(parser)
    parser.add_argument("--n_clusters", type=int, default=None, help="baselines' clusters")
    parser.add_argument("--seed", type=int, default=0, help="baselines' seed")
    parser.add_argument(
        "--allow_pickle",
        action="store_true",
        help="unpickle features.pkl without restriction (runs code from the file: only "
        "your own files; by default only arrays and plain containers are read)",
    )
    parser.add_argument("--no_baselines", action="store_true", help="skip the baselines")
    add_original_arguments(parser, skip=(*_SHARED_FLAGS, "superclass_name"), suppress=True)
    args = parser.parse_args(argv)
    own = {*_SHARED_FLAGS, "superclass_name"}
    given = {d: getattr(args, d) for d in ORIGINAL_FLAGS if d not in own and d in vars(args)}
    if given:
        # Any flag of the original's testing/main.py: run as that command.
        ns = argparse.Namespace(**{d: kw.get("default") for d, (_, kw) in ORIGINAL_FLAGS.items()})
        vars(ns).update(given)
        try:
            # The shared algorithm flags default to None ("not given"); the one table fills in.
            shared = AlgorithmParams.from_namespace(args)
        except SsddbcError as exc:
            parser.error(str(exc))
        vars(ns).update({"k": args.k, "density_percentile": args.density_percentile})
        vars(ns).update({d: getattr(shared, d) for d in _SHARED_FLAGS[2:]})
        ns.superclass_name = args.superclass
        ns.feature_cache_dir = args.feature_cache_dir
        ns.allow_pickle = args.allow_pickle
        try:
            parse_l2_component_weights(ns.l2_component_weights)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument --l2_component_weights: {exc}")
        try:
            run(ns)
        except SsddbcError as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        params = AlgorithmParams.from_namespace(args)
        run_test_superclass(
            args.feature_cache_dir,
            args.superclass,
            k=args.k,
            density_percentile=args.density_percentile,
            eval_mode=args.eval_mode,
            **params.as_kwargs(),
            n_clusters=args.n_clusters,
            seed=args.seed,
            allow_pickle=args.allow_pickle,
            baselines=not args.no_baselines,
        )
    except SsddbcError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
