"""Console entry points of ``ssddbc``: check the ``[ssddbc]`` extra before importing the command.

``ssddbc-search`` is installed with the distribution even without the extra; run then, the
command itself would die deep in an import with a ``ModuleNotFoundError``. This shim looks the
extra's modules up first (without importing them) and, if one is missing, prints one line that
says what to install and exits with status 2, the status of every other bad-input error.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

#: Import names of the ``[ssddbc]`` extra's dependencies (see ``pyproject.toml``).
EXTRA_MODULES: tuple[str, ...] = ("sklearn", "scipy", "matplotlib", "tqdm", "threadpoolctl")

INSTALL_HINT = "pip install 'knncache[ssddbc]'"


def missing_extra_modules() -> list[str]:
    """The modules of the ``[ssddbc]`` extra that cannot be found, in declaration order.

    Returns
    -------
    list of str
        Import names of the missing modules; empty when the extra is installed.
    """
    missing = []
    for name in EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or half-removed install counts as missing
            found = False
        if not found:
            missing.append(name)
    return missing


def search_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``ssddbc-search``: run the batch grid search if its extra is installed.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``), passed on unchanged.

    Raises
    ------
    SystemExit
        With status 2 and a one-line message naming ``pip install 'knncache[ssddbc]'`` when the
        ``[ssddbc]`` extra is missing; otherwise with the search's own exit status.
    """
    missing = missing_extra_modules()
    if missing:
        print(
            f"ssddbc-search: missing {', '.join(missing)} (the [ssddbc] extra); "
            f"install it with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    # [ssddbc] extra: the command imports it, so it is imported only once found present
    from ssddbc.grid_search.batch_runner import main

    main(argv)
