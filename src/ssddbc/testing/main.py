"""``python -m ssddbc.testing.main`` (the original's path): see :mod:`ssddbc.compat.testing_cli`."""

from __future__ import annotations

import sys

from ssddbc.compat.testing_cli import (
    ORIGINAL_FLAGS,
    CallableModule,
    add_original_arguments,
    build_parser,
    main,
    parse_l2_component_weights,
    parse_l2_components,
    run,
    str2bool,
)

__all__ = [
    "ORIGINAL_FLAGS",
    "add_original_arguments",
    "build_parser",
    "main",
    "parse_l2_component_weights",
    "parse_l2_components",
    "run",
    "str2bool",
]

# The package attribute ``ssddbc.testing.main`` is this module: calling it runs ``main``.
sys.modules[__name__].__class__ = CallableModule

if __name__ == "__main__":
    raise SystemExit(main())
