"""``EphemeralStore``: a private temporary directory removed on every exit path."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

from knncache._errors import StoreClosedError, StoreWriteError
from knncache._ref import _CLOSED_ROOTS, _IN_USE
from knncache._store import KnnStore

__all__ = ["EphemeralStore", "remove_orphaned_temp_dirs"]

DEFAULT_PREFIX = "knn_cache_"


def _remove(root: str, owner_pid: int) -> None:
    # A forked child inherits the finalizer; only the owner removes the directory.
    if os.getpid() == owner_pid:
        shutil.rmtree(root, ignore_errors=True)


class EphemeralStore(KnnStore):
    """A store in a new private temporary directory (``is_persistent = False``).

    The directory (mode 0700, named ``<prefix>pid<PID>_<random>``) is removed by
    :meth:`close`, which runs when a ``with`` block ends for any reason (normal exit,
    exception, ``KeyboardInterrupt``), at garbage collection, and at interpreter exit.
    After that, using the store or loading a ref into it raises
    :class:`~knncache.StoreClosedError`. If the process is killed (SIGKILL) the directory
    stays behind; ``knncache gc --temp`` removes those whose process is dead.

    Parameters
    ----------
    prefix : str, keyword-only
        Directory name prefix (default ``"knn_cache_"``).
    dir : path-like, keyword-only
        Parent directory (default: :func:`tempfile.gettempdir`, i.e. ``$TMPDIR``).
    lock_timeout : float, keyword-only
        As for :class:`~knncache.PersistentStore`. The lock is always ``"hard"``: the
        directory is a private local temporary one.

    Raises
    ------
    StoreWriteError
        If the directory cannot be created.
    """

    is_persistent = False

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        dir: str | os.PathLike[str] | None = None,  # mirrors tempfile.mkdtemp
        lock_timeout: float = 600.0,
    ) -> None:
        if not isinstance(prefix, str) or os.sep in prefix or (os.altsep or os.sep) in prefix:
            raise ValueError(f"prefix must be a plain name, got {prefix!r}")
        try:
            root = tempfile.mkdtemp(prefix=f"{prefix}pid{os.getpid()}_", dir=dir)
        except OSError as exc:
            raise StoreWriteError(
                str(dir or tempfile.gettempdir()), exc.strerror or str(exc), exc.errno
            ) from None
        super().__init__(root, lock_timeout=lock_timeout, lock="hard")
        self._finalizer = weakref.finalize(self, _remove, str(self._root), os.getpid())

    def __enter__(self) -> EphemeralStore:
        self._check_open()
        return self

    def __reduce__(self) -> Any:
        raise TypeError(
            "an EphemeralStore cannot be pickled (it belongs to the process that created it); "
            "send KnnRef objects to other processes instead"
        )

    def _prepare_root(self) -> None:
        if not self._root.is_dir():
            raise StoreClosedError(str(self._root))

    def _on_close(self) -> None:
        root = str(self._root)
        _CLOSED_ROOTS.add(root)
        for key in [key for key in _IN_USE if key[0] == root]:
            _IN_USE.discard(key)
        self._finalizer()


_TEMP_NAME = re.compile(r"pid(\d+)_[A-Za-z0-9_]+")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # never act on a nonsense pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    return True


def remove_orphaned_temp_dirs(
    dir: str | os.PathLike[str] | None = None,  # mirrors tempfile
    prefix: str = DEFAULT_PREFIX,
    *,
    dry_run: bool = False,
) -> list[str]:
    """Remove ``EphemeralStore`` directories left behind by dead processes.

    Only directories named ``<prefix>pid<PID>_<random>``, owned by the current user, whose
    PID does not exist any more (``os.kill(pid, 0)`` raises ``ProcessLookupError``) are
    removed. A live process's directory is never touched (a recycled PID errs on the safe
    side: the directory is kept).

    Parameters
    ----------
    dir : path-like, optional
        Where to look (default :func:`tempfile.gettempdir`).
    prefix : str
        The prefix the stores were created with.
    dry_run : bool, keyword-only
        Only list what would be removed.

    Returns
    -------
    list of str
        The directories removed (or that would be).
    """
    parent = Path(dir if dir is not None else tempfile.gettempdir())
    removed = []
    try:
        children = sorted(parent.iterdir())
    except OSError:
        return []
    for child in children:
        name = child.name
        if not name.startswith(prefix):
            continue
        m = _TEMP_NAME.fullmatch(name[len(prefix) :])
        if m is None:
            continue
        try:
            st = child.lstat()
        except OSError:
            continue
        if not child.is_dir() or child.is_symlink() or st.st_uid != os.getuid():
            continue
        if _pid_alive(int(m.group(1))):
            continue
        if not dry_run:
            shutil.rmtree(child, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                if child.exists():
                    continue
        removed.append(str(child))
    return removed
