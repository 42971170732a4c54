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
from pathlib import Path
from typing import Any, BinaryIO

from knncache import atomic_write
from ssddbc._errors import RunFolderError

__all__ = ["new_run_dir", "sweep_temporaries", "write_bytes", "write_json"]

# What knncache.atomic_write names its temporaries: ".<final name>.<mkstemp suffix>.tmp".
_TEMPORARY = re.compile(
    r"^\.(results\.csv|summary\.json|config\.json|knn\.json|heatmap_.+\.(?:png|pdf|svg))\..+\.tmp$"
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
    """Remove the run's own leftover temporaries (regular files named as ours only)."""
    removed = []
    for entry in os.scandir(run_dir):
        if not _TEMPORARY.match(entry.name):
            continue
        try:
            if stat.S_ISREG(os.lstat(entry.path).st_mode):
                os.unlink(entry.path)
                removed.append(entry.name)
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
