"""``ssddbc-search``: from argv to a finished run folder.

The flow, one step per module: the flags are parsed (:mod:`._parser`, the original runner's
own flags in :mod:`._original_flags`) and validated into a frozen
:class:`~ssddbc.grid_search._batch_config.BatchConfig` (``--resume`` reads the run's
configuration from its ``config.json``); :func:`~ssddbc.grid_search._batch.run` runs it
(inputs, run folder, tasks, journal); :mod:`._batch_report` writes the summary, heatmaps
and reports, and re-prints a run folder with ``--show``; ``--compare RUN [RUN ...]``
is handed to :func:`ssddbc.grid_search.compare.main` before any of this.

Exit status: 0 every configuration succeeded; 1 some configuration failed, or an I/O error
(disk full) stopped the run (resumable); 2 bad input or environment, found before any work;
130 / 143 interrupted by SIGINT / SIGTERM (the journal holds every finished configuration and
the message says how to resume).

Adding a flag: add it in :func:`~ssddbc.grid_search._parser.build_parser`; an algorithm
option goes in the table of :mod:`ssddbc.ssddbc._params` instead and appears by itself. A
flag that changes the rows must reach :class:`~ssddbc.grid_search._config.RunConfig` (and so
the identity) through :meth:`BatchConfig.from_namespace`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ssddbc.grid_search._batch import run, run_validated
from ssddbc.grid_search._batch_config import BatchConfig
from ssddbc.grid_search._batch_report import show_run
from ssddbc.grid_search._parser import build_parser, check_mode
from ssddbc.grid_search._plan import DEFAULT_PLAN, SearchPlan
from ssddbc.grid_search.compare import main as compare_main

__all__ = ["run_batch"]


def run_batch(
    argv: Sequence[str] | BatchConfig | None = None, *, plan: SearchPlan | None = None
) -> int:
    """Run the batch search; return the exit status (see the module docstring).

    Parameters
    ----------
    argv : sequence of str, BatchConfig or None
        The flags (``sys.argv[1:]`` when None), or an already built configuration, run as
        it is (no argv involved).
    plan : SearchPlan or None
        The route thresholds of a fresh run given by flags (default :data:`DEFAULT_PLAN`);
        a resumed run uses the one in its ``config.json``, a :class:`BatchConfig` its own.
    """
    if isinstance(argv, BatchConfig):
        return run(argv)
    tokens = list(sys.argv[1:] if argv is None else argv)
    if any(t == "--compare" or t.startswith("--compare=") for t in tokens):
        # Its own small parser: --compare takes run folders and --json, no search flag.
        return compare_main(
            [
                t.partition("=")[2] if t.startswith("--compare=") else t
                for t in tokens
                if t != "--compare"
            ]
        )
    parser = build_parser()
    args = parser.parse_args(argv)
    check_mode(parser, args)
    if args.show is not None:
        return show_run(Path(args.show))
    return run_validated(lambda: BatchConfig.from_namespace(args, plan or DEFAULT_PLAN))
