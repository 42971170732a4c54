"""The run folder's files: created exclusively, written atomically, temporaries swept.

Every file a run writes goes through :func:`write_bytes` (temporary file in the same folder,
fsync, rename; the temporary is removed on any error), so a reader never sees half a file.
A process killed between creating and renaming a temporary leaves ``.<name>.<random>.tmp``
behind; :func:`sweep_temporaries` removes those, and only those, when a run folder is
opened again.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from knncache import atomic_write
from ssddbc._errors import InvalidInputError, RunFolderError

__all__ = [
    "check_name_lengths",
    "new_run_dir",
    "superclass_file_names",
    "sweep_temporaries",
    "write_bytes",
    "write_json",
]

# What knncache.atomic_write names its temporaries: ".<final name>.<mkstemp suffix>.tmp".
_TEMPORARY = re.compile(
    r"^\.(results\.csv|summary\.json|config\.json|knn\.json|heatmap_.+\.(?:png|pdf|svg))\..+\.tmp$"
)
#: The same inside a superclass's folder (``<run>/<superclass>/``).
_SUPERCLASS_TEMPORARY = re.compile(r"^\.pseudo_labels\.npz\..+\.tmp$")


# Bytes atomic_write adds to a name for its temporary: "." + name + "." + 16 hex + ".tmp".
_TEMPORARY_EXTRA = 1 + 1 + 16 + 4
# NAME_MAX where the filesystem does not say (POSIX's usual value).
_DEFAULT_NAME_MAX = 255


def superclass_file_names(name: str, formats: Sequence[str]) -> list[str]:
    """The file names a run writes for superclass ``name``: its heatmaps (in the run folder)
    and its text report (in ``<run>/<name>/``)."""
    return [*(f"heatmap_{name}.{fmt}" for fmt in formats), f"{name}.txt"]


def _name_max(folder: Path) -> int:
    """The filesystem's longest file name (bytes) where ``folder`` is or would be created."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return _DEFAULT_NAME_MAX


def check_name_lengths(names: Sequence[str], formats: Sequence[str], folder: Path) -> None:
    """Refuse a superclass whose files (and their temporaries) cannot be named in ``folder``.

    Checked before any work, so that a search never runs to its end only to fail writing a
    heatmap, and again on every ``--resume``.

    Raises
    ------
    InvalidInputError
        Naming the superclass, the limit and the longest name it allows.
    """
    limit = _name_max(folder)
    for name in names:
        longest = max(
            len(os.fsencode(f)) + _TEMPORARY_EXTRA for f in superclass_file_names(name, formats)
        )
        if longest > limit:
            allowed = len(os.fsencode(name)) - (longest - limit)
            raise InvalidInputError(
                "superclass",
                f"name too long for the run's files: {name!r} ({len(os.fsencode(name))} "
                f"bytes) makes file names of {longest} bytes, the filesystem allows {limit} "
                f"(rename the folder to at most {allowed} bytes)",
            )


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    atomic_write(path, write)


def write_json(path: Path, payload: Any) -> None:
    """Atomic JSON write (NaN becomes null)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, float) and math.isnan(obj):
            return None
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    text = json.dumps(clean(payload), indent=2, sort_keys=False, allow_nan=False) + "\n"
    write_bytes(path, text.encode("utf-8"))


def sweep_temporaries(run_dir: Path) -> list[str]:
    """Remove the run's own leftover temporaries (regular files named as ours only).

    Those of the run folder itself, and those of the pseudo-labels in each superclass's
    folder (a real directory directly inside the run folder; links are never followed).
    """
    removed = _sweep_dir(run_dir, _TEMPORARY, "")
    for entry in os.scandir(run_dir):
        if entry.is_dir(follow_symlinks=False):
            removed += _sweep_dir(Path(entry.path), _SUPERCLASS_TEMPORARY, f"{entry.name}/")
    return removed


def _sweep_dir(directory: Path, pattern: re.Pattern[str], prefix: str) -> list[str]:
    removed = []
    for entry in os.scandir(directory):
        if not pattern.match(entry.name):
            continue
        try:
            if stat.S_ISREG(os.lstat(entry.path).st_mode):
                os.unlink(entry.path)
                removed.append(prefix + entry.name)
        except FileNotFoundError:
            pass
    return removed


def new_run_dir(output_dir: Path, n_superclasses: int) -> Path:
    """Create a fresh ``run_<stamp>_<n>sc[_i]`` folder in ``output_dir``, exclusively.

    ``mkdir`` either creates the folder or fails, so two runs started in the same second
    into the same ``output_dir`` get distinct folders (the loser takes the next suffix).

    Raises
    ------
    RunFolderError
        ``output_dir`` cannot be created or written (a file, no permission, read-only).
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(
            str(output_dir), f"cannot create the output folder ({exc.strerror or exc})"
        ) from None
    if not output_dir.is_dir():
        raise RunFolderError(str(output_dir), "is not a folder")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"run_{stamp}_{n_superclasses}sc"
    for i in range(1, 10_000):
        run = output_dir / (base if i == 1 else f"{base}_{i}")
        try:
            run.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunFolderError(
                str(output_dir), f"cannot create a run folder in it ({exc.strerror or exc})"
            ) from None
        return run
    raise RunFolderError(str(output_dir), f"too many run folders named {base}_*")
