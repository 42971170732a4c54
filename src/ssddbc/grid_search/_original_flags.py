"""The original research runner's command line: its grid defaults, flags and lists.

Its ranges are half-open (:func:`half_open`); the flags whose behaviour it fixed are accepted
at the value it fixed, another value is a one-line error (:func:`check_original_flags`).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from ssddbc._errors import SearchConfigError
from ssddbc.data.feature_cache import NPZ_NAME, PKL_NAME
from ssddbc.grid_search._config import RunConfig
from ssddbc.grid_search._console import BadInput, warn_line

__all__ = [
    "GRID_DEFAULTS",
    "ORIGINAL_L2_COMPONENTS",
    "SUPERCLASS_FILE_MAX_BYTES",
    "add_original_flags",
    "check_model_path",
    "check_original_flags",
    "half_open",
    "parse_superclasses",
    "superclass_names",
]

#: Grid defaults, the original runner's: half-open ranges, k in [3, 21) and density
#: percentiles in [40, 95) step 5, i.e. k 3..20 x 40..90 = 198 configurations.
GRID_DEFAULTS = {"k_min": 3, "k_max": 21, "density_min": 40, "density_max": 95, "density_step": 5}

#: The L2 components the original runner required (its only supported set).
ORIGINAL_L2_COMPONENTS = frozenset({"separation", "silhouette"})


def add_original_flags(p: argparse.ArgumentParser) -> None:
    """Add the original batch runner's flags that have no counterpart of their own.

    (``--max_workers``, ``--no_parallel``, ``--count_all``, ``--dense_method``, ``--co_mode``
    and ``--assign_model`` are flags of the parser itself.) What the original fixed is accepted
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
        "skipped (as the original; conflicts with --superclasses and --count_all). A regular "
        "file of at most 1 MiB; a name given twice is searched once, with a warning",
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


def half_open(lo: int, hi: int, step: int, flag: str) -> list[int]:
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


def check_original_flags(args: argparse.Namespace) -> None:
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


def superclass_names(args: argparse.Namespace) -> list[str] | None:
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
        return _once(names, "--superclass_file")
    if args.superclasses:
        names = parse_superclasses([], args.superclasses, None)
        if not names:
            raise SearchConfigError("--superclasses", f"no names in {args.superclasses!r}")
        return _once(names, "--superclasses")
    return None


def _once(names: list[str], flag: str) -> list[str]:
    """Each name once, in first-seen order; a name given twice is said in a warning line."""
    unique = list(dict.fromkeys(names))
    if len(unique) < len(names):
        twice = [n for n in unique if names.count(n) > 1]
        warn_line(f"{flag}: {', '.join(map(repr, twice))} given more than once; searched once")
    return unique


#: The largest --superclass_file read (1 MiB: tens of thousands of names).
SUPERCLASS_FILE_MAX_BYTES = 2**20


def _read_listing(file_path: str) -> str:
    """The text of a superclass list: a regular file of at most 1 MiB, UTF-8.

    Opened without blocking (a FIFO would wait for a writer), then checked for what it is:
    a device (``/dev/zero``), FIFO or folder is refused, and so is a file too large to be a
    list of names, before it is read.
    """
    fd = os.open(file_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SearchConfigError(
                "--superclass_file",
                f"{file_path!r} is not a regular file (a device, FIFO or folder); expected a "
                "text file of superclass names",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= SUPERCLASS_FILE_MAX_BYTES:
            chunk = os.read(fd, SUPERCLASS_FILE_MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > SUPERCLASS_FILE_MAX_BYTES:
            raise SearchConfigError(
                "--superclass_file",
                f"{file_path!r} is larger than {SUPERCLASS_FILE_MAX_BYTES} bytes; expected a "
                "text file of superclass names",
            )
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8")


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
    SearchConfigError
        ``file_path`` is not a regular file (a device, FIFO or folder) or is larger than
        :data:`SUPERCLASS_FILE_MAX_BYTES`.
    """
    if override:
        return [item.strip() for item in override.split(",") if item.strip()]
    if file_path:
        path = Path(file_path)
        if not path.exists():
            raise FileNotFoundError(f"superclass list file not found: {file_path}")
        return [
            line.strip()
            for line in _read_listing(file_path).splitlines()
            if line.strip() and not line.startswith("#")
        ]
    return list(defaults)


def check_model_path(model_path: str | None, cfg: RunConfig, quiet: bool) -> None:
    """--model_path: unused when every feature cache exists, else an error naming the one."""
    if model_path is None:
        return
    fcd = Path(cfg.feature_cache_dir)
    for name in cfg.superclasses:
        folder = fcd / name
        if not ((folder / NPZ_NAME).is_file() or (folder / PKL_NAME).is_file()):
            raise BadInput(
                f"--model_path {model_path}: no feature cache {folder / NPZ_NAME} (or "
                f"{PKL_NAME}); features are not extracted from a model here: write the "
                "cache first (ssddbc.data.write_superclass)"
            )
    if not quiet:
        print(
            f"note: --model_path {model_path} is not used: features are read from the "
            f"feature cache {fcd}",
            file=sys.stderr,
            flush=True,
        )
