"""``python -m ssddbc.data.make_cache``: a feature cache from your own ``.npy`` / ``.npz`` arrays.

Writes ``<feature_cache_dir>/<name>/features.npz`` in the cache format of
:mod:`ssddbc.data.feature_cache` (through its own :func:`write_superclass`), ready for
``ssddbc-search --feature_cache_dir <feature_cache_dir> --superclasses <name>``::

    python -m ssddbc.data.make_cache CACHE_DIR --name NAME --features F.npy --targets T.npy
        (--known_mask K.npy [--labeled_mask L.npy] | --known_classes 0,1,2)
        [--labeled_fraction 0.8] [--seed 0]
        [--train_mask M.npy | --train_size N | --test_size N_OR_FRACTION]
        [--l2_normalize] [--overwrite]

An array is given as ``FILE.npy``, ``FILE.npz:KEY`` or ``FILE.npz`` (then the key is the
option's name, e.g. ``features``, or the file's only array). Files are read with
``allow_pickle=False``.

The recipe, with one ``numpy.random.default_rng(seed)`` stream used in this order (the one
that built the golden digits split, :func:`ssddbc.data.digits.load_digits_superclass`):

1. the train/test split: ``--train_mask`` (rows moved so that train comes first, each part in
   input order), ``--train_size N`` (the first N rows are the training split, nothing
   moves), or ``--test_size`` (a random split: an int is a count, a fraction in (0, 1) gives
   ``floor(fraction * n)`` test rows, drawn from one permutation); none of them: every row is
   a training row (evaluate with ``--eval unlabelled`` then);
2. known classes: ``--known_mask``, or ``--known_classes`` (class ids of ``targets``);
3. labelled samples: ``--labeled_mask``, or ``int(labeled_fraction * count)`` of the
   known-class *training* samples, drawn uniformly without replacement (default fraction 0.8,
   as in the original research).

Everything is validated before anything is written (the same checks every cache gets when
read); bad input is one line on stderr and exit status 2, with nothing written. An existing
``features.npz`` with other content is replaced only with ``--overwrite``. On success the
command prints what it wrote.
"""

from __future__ import annotations

import argparse
import math
import numbers
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ssddbc._errors import FeatureCacheError, InvalidInputError, SsddbcError
from ssddbc._metric import l2_normalize as _l2_normalize
from ssddbc._validation import as_features, as_mask, as_targets
from ssddbc.data.feature_cache import (
    NPZ_NAME,
    SuperclassData,
    check_name,
    npy_load_errors,
    npz_arrays,
    same_npz,
    write_superclass,
)
from ssddbc.data.splits import make_gcd_split, train_test_permutation

__all__ = ["DEFAULT_LABELED_FRACTION", "build_superclass", "main", "make_feature_cache"]

#: Share of known-class training samples labelled when no ``labeled_mask`` is given.
DEFAULT_LABELED_FRACTION = 0.8
# Rows whose norm is within this of 1 count as L2-normalised (reported, not enforced).
_UNIT_TOL = 1e-3


def _n_test(test_size: Any, n: int) -> int:
    if isinstance(test_size, bool):
        raise InvalidInputError("test_size", f"expected a count or a fraction, got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        if not 0 <= int(test_size) <= n:
            raise InvalidInputError("test_size", f"expected a count in [0, {n}], got {test_size}")
        return int(test_size)
    if isinstance(test_size, numbers.Real) and 0.0 < float(test_size) < 1.0:
        return math.floor(float(test_size) * n)
    raise InvalidInputError(
        "test_size", f"expected a count in [0, {n}] or a fraction in (0, 1), got {test_size!r}"
    )


def build_superclass(
    name: str,
    features: Any,
    targets: Any,
    *,
    known_mask: Any = None,
    labeled_mask: Any = None,
    known_classes: Iterable[int] | None = None,
    labeled_fraction: float | None = None,
    seed: int = 0,
    train_mask: Any = None,
    train_size: int | None = None,
    test_size: float | None = None,
    l2_normalize: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> SuperclassData:
    """One validated superclass of a feature cache, from plain arrays.

    The recipe (split, known classes, labelled samples, one seeded stream) is the module's:
    see :mod:`ssddbc.data.make_cache`.

    Parameters
    ----------
    name : str
        Superclass (folder) name: letters, digits, ``_ . -``.
    features : array_like of shape (n, d)
        Finite real features (stored as float32).
    targets : array_like of shape (n,)
        Integer class ids.
    known_mask, known_classes
        Exactly one: a boolean (or 0/1) mask of the known-class samples, or the known class
        ids.
    labeled_mask : array_like of shape (n,), optional
        The samples whose label may be used (a subset of the known ones). Without it,
        ``labeled_fraction`` of the known-class training samples are drawn.
    labeled_fraction : float, optional
        In ``[0, 1]``; default 0.8. Not allowed together with ``labeled_mask``.
    seed : int
        Seeds the random split and the labelled draw.
    train_mask, train_size, test_size
        At most one: the training rows as a mask; the number of leading training rows; or the
        test rows to draw (a count, or a fraction in (0, 1)). None: every row trains.
    l2_normalize : bool
        Divide every row by its norm first (float64, then float32; the definition of
        :func:`ssddbc._metric.l2_normalize`).
    metadata : mapping, optional
        Extra JSON-able metadata to store.

    Returns
    -------
    SuperclassData
        Rows ordered train then test; ``indices`` gives each row's position in the input.

    Raises
    ------
    InvalidInputError
        Naming the argument, on any bad or contradictory input.
    """
    check_name(name)
    x = as_features(features, "features", min_rows=2)
    n = x.shape[0]
    y = as_targets(targets, n, "targets")
    if l2_normalize:
        x = _l2_normalize(x, "features")
    split_options = {"train_mask": train_mask, "train_size": train_size, "test_size": test_size}
    given = [opt for opt, value in split_options.items() if value is not None]
    if len(given) > 1:
        raise InvalidInputError(given[1], f"give at most one of {given}, not both")
    if (known_mask is None) == (known_classes is None):
        raise InvalidInputError("known_mask", "give exactly one of known_mask and known_classes")
    if labeled_mask is not None and labeled_fraction is not None:
        raise InvalidInputError(
            "labeled_fraction", "give labeled_mask or labeled_fraction, not both"
        )
    known_in = None if known_mask is None else as_mask(known_mask, "known_mask", n)
    labeled_in = None if labeled_mask is None else as_mask(labeled_mask, "labeled_mask", n)
    classes: NDArray[Any] | None = None
    if known_classes is not None:
        classes = np.asarray(list(known_classes))
        if classes.size == 0 or classes.dtype.kind not in "iu":
            raise InvalidInputError(
                "known_classes", f"expected a non-empty list of integer class ids, got {classes!r}"
            )
        absent = np.setdiff1d(classes, y)
        if absent.size:
            raise InvalidInputError(
                "known_classes", f"classes {absent.tolist()} do not occur in targets"
            )
    fraction = DEFAULT_LABELED_FRACTION if labeled_fraction is None else labeled_fraction

    rng = np.random.default_rng(_seed(seed))
    # 1. the split: an order of the input rows, train first.
    if train_mask is not None:
        train = as_mask(train_mask, "train_mask", n)
        order = np.concatenate([np.flatnonzero(train), np.flatnonzero(~train)])
        n_train = int(train.sum())
    elif test_size is not None:
        train_pos, test_pos = train_test_permutation(n, seed=rng, n_test=_n_test(test_size, n))
        order = np.concatenate([train_pos, test_pos])
        n_train = int(train_pos.size)
    else:
        n_train = n
        if train_size is not None:
            if (
                isinstance(train_size, bool)
                or not isinstance(train_size, numbers.Integral)
                or not 0 <= train_size <= n
            ):
                raise InvalidInputError(
                    "train_size", f"expected an int in [0, {n}], got {train_size!r}"
                )
            n_train = int(train_size)
        order = np.arange(n)
    y = y[order]
    in_train = np.arange(n) < n_train
    # 2. known classes; 3. labelled samples.
    known = known_in[order] if known_in is not None else np.isin(y, np.asarray(classes))
    if labeled_in is not None:
        labeled = labeled_in[order]
        stray = labeled & ~known
        if stray.any():
            # A new GCD split labels known-class samples only; reading an existing cache
            # that does otherwise (the original's) is accepted with a warning instead.
            raise InvalidInputError(
                "labeled_mask",
                f"{int(stray.sum())} samples are labelled but not of a known class "
                "(known_mask is false there)",
            )
    else:
        _, labeled = make_gcd_split(
            y, np.unique(y[known]), labeled_fraction=fraction, train_mask=in_train, seed=rng
        )
    norms = np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)
    known_ids = np.unique(y[known]).tolist()
    novel_ids = np.setdiff1d(np.unique(y), known_ids).tolist()
    meta: dict[str, Any] = {
        "made_by": "ssddbc.data.make_cache",
        "known_classes_mapped": known_ids,
        "unknown_classes_mapped": novel_ids,
        "all_classes_sorted": np.unique(y).tolist(),
        "seed": seed,
        "labeled_fraction": None if labeled_in is not None else fraction,
        "l2_normalised": bool(np.all(np.abs(norms - 1.0) <= _UNIT_TOL)),
        **dict(metadata or {}),
    }
    return SuperclassData(
        name=name,
        features=np.asarray(x)[order],
        targets=y,
        known_mask=known,
        labeled_mask=labeled,
        train_size=n_train,
        metadata=meta,
        indices=order.astype(np.int64),
    )


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InvalidInputError("seed", f"expected a non-negative int, got {seed!r}")
    return int(seed)


def make_feature_cache(
    feature_cache_dir: str | Path, data: SuperclassData, *, overwrite: bool = False
) -> tuple[Path, bool]:
    """Write ``data`` into a feature cache; refuse to replace other content silently.

    Parameters
    ----------
    feature_cache_dir : str or pathlib.Path
        Cache root (created if needed).
    data : SuperclassData
        From :func:`build_superclass` (or any validated superclass).
    overwrite : bool
        Replace an existing ``features.npz`` that holds other content.

    Returns
    -------
    path : pathlib.Path
        The ``features.npz``.
    written : bool
        False when the file already held exactly this content (left untouched).

    Raises
    ------
    FeatureCacheError
        The root is not a directory, or the file exists with other content and
        ``overwrite`` is False. Nothing is written then.
    """
    root = Path(feature_cache_dir)
    if root.exists() and not root.is_dir():
        raise FeatureCacheError(str(root), "is not a directory")
    path = root / data.name / NPZ_NAME
    if path.is_file() or path.is_symlink():
        if not path.is_symlink() and same_npz(path, npz_arrays(data)):
            return path, False
        if not overwrite:
            raise FeatureCacheError(
                str(path), "exists with other content; pass --overwrite to replace it"
            )
    return write_superclass(root, data, skip_if_identical=False), True


def _load_array(spec: str, key: str) -> NDArray[Any]:
    """``FILE.npy``, ``FILE.npz:KEY`` or ``FILE.npz`` (key = the option's name or the only one)."""
    path_s, sep, inner = spec.rpartition(":")
    if not sep or not path_s.endswith(".npz"):
        path_s, inner = spec, ""
    path = Path(path_s)
    if not path.is_file():
        raise FeatureCacheError(str(path), "no such file")
    with npy_load_errors(path, "array file", "which are never loaded"), open(path, "rb") as handle:
        loaded = np.load(handle, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            if inner:
                raise FeatureCacheError(str(path), f"is a .npy file; it has no key {inner!r}")
            return loaded
        with loaded as z:
            names = list(z.files)
            wanted = inner or (key if key in names else (names[0] if len(names) == 1 else ""))
            if wanted not in names:
                raise FeatureCacheError(
                    str(path),
                    f"has no array {inner or key!r} (arrays: {', '.join(names) or 'none'}); "
                    f"name one as {path}:KEY",
                )
            return np.asarray(z[wanted])


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(
            "--known_classes", f"expected comma-separated integers, got {text!r}"
        ) from None
    return values


def _count_or_fraction(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(
            "--test_size", f"expected a count or a fraction in (0, 1), got {text!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssddbc.data.make_cache",
        description="Build a feature cache <CACHE_DIR>/<NAME>/features.npz from .npy/.npz "
        "arrays, for ssddbc-search. An array is FILE.npy, FILE.npz:KEY or FILE.npz (key = the "
        "option's name). Bad input: one line on stderr, exit 2, nothing written.",
    )
    p.add_argument("feature_cache_dir", metavar="CACHE_DIR", help="cache root (created)")
    p.add_argument("--name", required=True, help="superclass folder name, e.g. cifar_trees")
    p.add_argument("--features", required=True, metavar="ARRAY", help="(N, d) features")
    p.add_argument("--targets", required=True, metavar="ARRAY", help="(N,) integer class ids")
    p.add_argument("--known_mask", "--known-mask", metavar="ARRAY", help="(N,) known-class mask")
    p.add_argument(
        "--known_classes",
        "--known-classes",
        metavar="LIST",
        help="known class ids, comma-separated (instead of --known_mask)",
    )
    p.add_argument(
        "--labeled_mask", "--labeled-mask", metavar="ARRAY", help="(N,) labelled-sample mask"
    )
    p.add_argument(
        "--labeled_fraction",
        "--labeled-fraction",
        type=float,
        default=None,
        help="share of known-class training samples to label when no --labeled_mask "
        f"(default: {DEFAULT_LABELED_FRACTION})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the labels (0)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--train_mask", "--train-mask", metavar="ARRAY", help="(N,) train rows")
    split.add_argument(
        "--train_size", "--train-size", type=int, help="the first N rows are the training split"
    )
    split.add_argument(
        "--test_size",
        "--test-size",
        metavar="N_OR_FRACTION",
        help="draw a random test split: a count, or a fraction in (0, 1) (floor(f * N) rows)",
    )
    p.add_argument(
        "--l2_normalize",
        "--l2-normalize",
        action="store_true",
        help="divide every feature row by its norm first (recommended for embeddings)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing features.npz")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 written, 2 bad input, 1 write failed)."""
    args = _parser().parse_args(argv)
    try:
        arrays = {
            key: _load_array(getattr(args, key), key)
            for key in ("features", "targets", "known_mask", "labeled_mask", "train_mask")
            if getattr(args, key) is not None
        }
        data = build_superclass(
            args.name,
            arrays["features"],
            arrays["targets"],
            known_mask=arrays.get("known_mask"),
            labeled_mask=arrays.get("labeled_mask"),
            known_classes=None if args.known_classes is None else _int_list(args.known_classes),
            labeled_fraction=args.labeled_fraction,
            seed=args.seed,
            train_mask=arrays.get("train_mask"),
            train_size=args.train_size,
            test_size=None if args.test_size is None else _count_or_fraction(args.test_size),
            l2_normalize=args.l2_normalize,
            metadata={
                "sources": {
                    key: getattr(args, key)
                    for key in ("features", "targets", "known_mask", "labeled_mask", "train_mask")
                    if getattr(args, key) is not None
                }
            },
        )
        path, written = make_feature_cache(args.feature_cache_dir, data, overwrite=args.overwrite)
    except SsddbcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the feature cache: {exc}", file=sys.stderr)
        return 1
    _report(path, written, data, args.feature_cache_dir)
    return 0


def _report(path: Path, written: bool, data: SuperclassData, root: str) -> None:
    meta = data.metadata
    n_test = data.n - data.train_size
    trainable = int(np.count_nonzero(data.known_mask & data.train_mask))
    print(f"{'wrote' if written else 'unchanged (same content)'} {path}")
    print(
        f"  {data.n} samples (train {data.train_size}, test {n_test}), {data.d}-d features, "
        f"L2-normalised: {'yes' if meta['l2_normalised'] else 'no'}"
    )
    print(
        f"  known classes {meta['known_classes_mapped']}, novel "
        f"{meta['unknown_classes_mapped']}; labelled {int(data.labeled_mask.sum())} of "
        f"{trainable} known-class training samples"
    )
    eval_hint = "" if n_test else " --eval unlabelled"
    print(f"next: ssddbc-search --feature_cache_dir {root} --superclasses {data.name}{eval_hint}")


if __name__ == "__main__":
    sys.exit(main())
