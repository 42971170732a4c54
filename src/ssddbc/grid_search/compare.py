"""``ssddbc-search --compare RUN [RUN ...]``: several finished run folders side by side.

Per superclass, the mean ± standard deviation over the runs of the selected and the oracle
All/Old/New accuracies (from each run's ``summary.json``), and every ``config.json`` field
whose value differs between the runs (seeds, grid, feature cache, metric, knn method,
package versions, the features' fingerprint...).

A run folder may come from someone else, so its files are read as untrusted: regular files
only (never through a link, never a FIFO or device), at most :data:`MAX_FILE_BYTES` each,
strict JSON (a ``NaN`` or ``Infinity`` token is refused: the search writes ``null``), and
every field that is used is type- and range-checked. Policy: **one unreadable run folder
stops the comparison** (one line naming it, exit status 2) rather than being skipped, so a
mean is never silently taken over fewer runs than were named. An interrupted run (no
``summary.json`` yet) is refused the same way: resume it first or leave it out.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from knncache import ForeignObjectError
from knncache._safefs import open_dir, read_capped
from ssddbc._errors import RunFolderError
from ssddbc.grid_search._console import EXIT_BAD_INPUT, EXIT_OK, PROG

__all__ = [
    "MAX_FILE_BYTES",
    "RunRecord",
    "compare_runs",
    "format_comparison",
    "main",
    "read_run",
]

#: The largest ``summary.json`` or ``config.json`` read (a run's are a few KiB to a few MiB).
MAX_FILE_BYTES = 32 * 2**20

#: The accuracy fields compared, in the order shown.
ACCURACIES = ("all_acc", "old_acc", "new_acc")

#: ``config.json`` fields that differ between any two runs and say nothing about them.
_IGNORED = ("environment.started", "environment.finished", "environment.earlier_finishes")


@dataclass(frozen=True)
class RunRecord:
    """What the comparison uses of one run folder (validated).

    Attributes
    ----------
    path : pathlib.Path
        The run folder (absolute).
    evaluated_on : str
        The split the accuracies were computed on.
    selected, oracle : dict
        ``{superclass: {"k", "density_percentile", "all_acc", "old_acc", "new_acc"}}``; an
        accuracy the run recorded as ``null`` (not defined) is NaN.
    config : dict
        ``config.json`` flattened to ``{"dotted.path": value}`` (lists kept whole).
    """

    path: Path
    evaluated_on: str
    selected: dict[str, dict[str, float]]
    oracle: dict[str, dict[str, float]]
    config: dict[str, Any]


def _read_capped(path: Path) -> bytes:
    """The bytes of the regular file ``path`` (no link followed, no blocking), capped.

    Read by knncache's reader of files it does not own (:mod:`knncache._safefs`), its
    refusals said as this run folder's.
    """
    try:
        dfd = open_dir(path.parent)
    except OSError as exc:
        raise RunFolderError(str(path.parent), f"cannot be read ({exc.strerror or exc})") from None
    try:
        return read_capped(dfd, path.name, MAX_FILE_BYTES, where=str(path.parent))
    except FileNotFoundError:
        raise RunFolderError(
            str(path.parent),
            f"no {path.name} (not a finished run folder; "
            "an interrupted run has none until it is resumed)",
        ) from None
    except ForeignObjectError as exc:
        if "swapped" in exc.kind:
            raise RunFolderError(str(path), "was replaced while it was opened") from None
        if exc.expected == "regular file":
            raise RunFolderError(
                str(path), "is not a regular file (a link, folder, FIFO or device)"
            ) from None
        if exc.kind.startswith("file of "):
            raise RunFolderError(
                str(path),
                f"is {exc.kind.removeprefix('file of ')}, more than the {MAX_FILE_BYTES} a "
                "run writes",
            ) from None
        raise RunFolderError(str(path), f"grew beyond {MAX_FILE_BYTES} bytes while read") from None
    except OSError as exc:
        raise RunFolderError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(dfd)


def _no_constant(token: str) -> NoReturn:
    raise ValueError(f"{token} is not a number the search writes (it writes null)")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(_read_capped(path).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RunFolderError(str(path), f"is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise RunFolderError(str(path), f"is not a JSON object, got {type(raw).__name__}")
    return raw


def _choice(path: Path, where: str, raw: Any) -> dict[str, float]:
    """A ``selected`` or oracle entry: integer cell, accuracies in [0, 1] or null (NaN)."""
    if not isinstance(raw, dict):
        raise RunFolderError(str(path), f"{where} must be an object, got {raw!r:.80}")
    out: dict[str, float] = {}
    for key in ("k", "density_percentile"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RunFolderError(str(path), f"{where}.{key} must be an integer, got {value!r:.80}")
        out[key] = value
    for key in ACCURACIES:
        value = raw.get(key)
        if value is None:
            out[key] = math.nan
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not 0.0 <= float(value) <= 1.0
        ):
            raise RunFolderError(
                str(path), f"{where}.{key} must be an accuracy in [0, 1] or null, got {value!r:.80}"
            )
        out[key] = float(value)
    return out


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        elif path not in _IGNORED:
            out[path] = value
    return out


def read_run(run_dir: str | os.PathLike[str]) -> RunRecord:
    """Read and validate one run folder's ``summary.json`` and ``config.json``.

    Parameters
    ----------
    run_dir : path
        A finished run folder of ``ssddbc-search``.

    Returns
    -------
    RunRecord

    Raises
    ------
    RunFolderError
        Not a folder; a file missing, not a regular file, over :data:`MAX_FILE_BYTES`, not
        strict JSON, or a used field of the wrong type or range (named, one line).
    """
    path = Path(run_dir).absolute()
    if not path.is_dir():
        raise RunFolderError(str(path), "is not a folder (expected a run folder)")
    summary_path = path / "summary.json"
    summary = _load_json(summary_path)
    config = _load_json(path / "config.json")
    split = summary.get("evaluated_on")
    if not isinstance(split, str):
        raise RunFolderError(str(summary_path), f"evaluated_on must be a string, got {split!r:.80}")
    per = summary.get("superclasses")
    if not isinstance(per, dict) or not per:
        raise RunFolderError(
            str(summary_path), f"superclasses must be a non-empty object, got {per!r:.80}"
        )
    selected: dict[str, dict[str, float]] = {}
    oracle: dict[str, dict[str, float]] = {}
    for name, entry in per.items():
        where = f"superclasses[{name!r:.80}]"
        if not isinstance(entry, dict):
            raise RunFolderError(str(summary_path), f"{where} must be an object")
        if "selected" not in entry:  # no successful configuration: nothing to average
            continue
        selected[name] = _choice(summary_path, f"{where}.selected", entry["selected"])
        oracles = [k for k in entry if isinstance(k, str) and k.startswith("oracle_best_by_")]
        if len(oracles) != 1:
            raise RunFolderError(
                str(summary_path), f"{where} must hold one oracle_best_by_* entry, has {oracles!r}"
            )
        oracle[name] = _choice(summary_path, f"{where}.{oracles[0]}", entry[oracles[0]])
    return RunRecord(path, split, selected, oracle, _flatten(config))


def _stats(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1) over the defined values."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    return {
        "mean": float(arr.mean()) if arr.size else None,
        "std": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "n": int(arr.size),
        "values": [None if math.isnan(v) else v for v in values],
    }


def _canonical(config: Mapping[str, Any], key: str) -> str:
    """A field's value as comparable text; an absent field differs from every value."""
    if key not in config:
        return "\0absent"
    return json.dumps(config[key], sort_keys=True, default=str)


def compare_runs(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """The comparison of already read runs (what ``--compare --json`` prints).

    Returns
    -------
    dict
        ``runs`` (paths), ``evaluated_on`` (per run), ``superclasses`` (per name: the runs
        that selected a configuration, their cells, and for ``selected`` and ``oracle`` the
        mean, sample std (ddof=1), count and values of each accuracy), ``differences``
        (``config.json`` path → the value of each run; absent fields are null).
    """
    names = list(dict.fromkeys(n for r in runs for n in r.selected))
    per: dict[str, Any] = {}
    for name in names:
        having = [r for r in runs if name in r.selected]
        per[name] = {
            "runs": [str(r.path) for r in having],
            "cells": [
                [r.selected[name]["k"], r.selected[name]["density_percentile"]] for r in having
            ],
            **{
                which: {
                    acc: _stats([getattr(r, which)[name][acc] for r in having])
                    for acc in ACCURACIES
                }
                for which in ("selected", "oracle")
            },
        }
    keys = list(dict.fromkeys(k for r in runs for k in r.config))
    differences = {
        key: [r.config.get(key) for r in runs]
        for key in keys
        if len({_canonical(r.config, key) for r in runs}) > 1
    }
    return {
        "runs": [str(r.path) for r in runs],
        "evaluated_on": [r.evaluated_on for r in runs],
        "std": "sample standard deviation (ddof=1) over the runs; null with fewer than 2",
        "superclasses": per,
        "differences": differences,
    }


def _pm(s: Mapping[str, Any]) -> str:
    if s["mean"] is None:
        return f"{'n/a':>15}"
    std = "  n/a " if s["std"] is None else f"{s['std']:.4f}"
    return f"{s['mean']:.4f} ± {std}"


def _short(value: Any, width: int = 48) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def format_comparison(result: Mapping[str, Any]) -> str:
    """The table ``--compare`` prints (see :func:`compare_runs` for the fields)."""
    runs = result["runs"]
    lines = [f"comparing {len(runs)} run(s):"]
    lines += [f"  [{i}] {p}" for i, p in enumerate(runs, 1)]
    splits = sorted(set(result["evaluated_on"]))
    lines += [
        "",
        f"{'superclass':<20} {'runs':>4} {'':<8} {'All':^15}   {'Old':^15}   {'New':^15}"
        f"   (mean ± std over runs, accuracy v2 on the {'/'.join(splits)} split)",
    ]
    for name, e in result["superclasses"].items():
        for which, label in (("selected", "selected"), ("oracle", "oracle")):
            head = f"{name:<20} {len(e['runs']):>4}" if which == "selected" else " " * 25
            lines.append(f"{head} {label:<8} " + "   ".join(_pm(e[which][a]) for a in ACCURACIES))
        cells = ", ".join(f"{k}/{dp}" for k, dp in e["cells"])
        lines.append(f"{'':<25} cells k/dp selected: {cells}")
    lines.append("(oracle: the best All accuracy of each run; it uses ground truth, for reference)")
    lines.append("")
    diffs = result["differences"]
    if not diffs:
        lines.append("config.json: no field differs between the runs (start/end times aside)")
    else:
        lines.append(f"config.json fields that differ ({len(diffs)}):")
        for key, values in diffs.items():
            shown = "  ".join(f"[{i}] {_short(v)}" for i, v in enumerate(values, 1))
            lines.append(f"  {key}: {shown}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str]) -> int:
    """``ssddbc-search --compare RUN [RUN ...] [--json]``; returns the exit status.

    0: compared; 2: a run folder that cannot be read or is named twice (one line on stderr).
    """
    parser = _Parser(
        prog=f"{PROG} --compare",
        description="Mean ± std of the selected and oracle accuracies per superclass over "
        "run folders, and the config.json fields that differ between them.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = parser.parse_args(list(argv))
    seen: dict[Path, str] = {}
    records = []
    try:
        for given in args.runs:
            real = Path(given).resolve()
            if real in seen:
                raise RunFolderError(given, f"is named twice (also as {seen[real]!r})")
            seen[real] = given
            records.append(read_run(given))
    except RunFolderError as exc:
        print(f"{PROG}: error: --compare: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    result = compare_runs(records)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(format_comparison(result))
    return EXIT_OK
