"""Offline SS-DDBC grid search over per-superclass feature caches (``ssddbc-search``).

For every superclass ``S`` of a feature cache, the neighbour graph lives in a persistent
knncache store at ``<feature_cache_dir>/S/knn_cache/``, keyed by the features' fingerprint:
a second run over unchanged features runs no neighbour search at all, and changed features
are detected and recomputed without any flag. Every configuration is journaled to
``results.csv`` as it finishes; ``--resume RUN_DIR`` completes only what is missing, and
refuses if any input changed since the run started.

Run ``ssddbc-search --help`` for the flags. With no ``--feature_cache_dir`` it builds the
built-in digits demo cache and searches it. ``--scheduler`` runs the configurations on a Dask
cluster instead of a local process pool (optional extra ``knncache[dask]``; ``distributed`` is
imported only then).

This module is the console script's entry point; the flow lives in
:mod:`ssddbc.grid_search._cli` (argv → run configuration → plan → shared inputs → tasks →
workers → journal → summary and plots).
"""

from __future__ import annotations

from collections.abc import Sequence

from ssddbc.grid_search._cli import (
    DEFAULT_DEMO_DIR,
    DEFAULT_OUTPUT_DIR,
    EXIT_BAD_INPUT,
    build_parser,
    run_batch,
)

__all__ = [
    "DEFAULT_DEMO_DIR",
    "DEFAULT_OUTPUT_DIR",
    "EXIT_BAD_INPUT",
    "build_parser",
    "main",
    "run_batch",
]


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``ssddbc-search``: run and exit with its status."""
    raise SystemExit(run_batch(argv))


if __name__ == "__main__":
    main()
