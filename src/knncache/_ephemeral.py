"""``EphemeralStore``: a private temporary directory removed on every exit path."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knncache._atomic import atomic_write
from knncache._errors import StoreClosedError, StoreWriteError
from knncache._locks import boot_id, pid_alive, start_time
from knncache._safefs import DIR_FLAGS, open_dir_at, read_capped, remove_at, scan
from knncache._store import KnnStore
from knncache._usage import IN_USE

__all__ = [
    "OWNER_FILE",
    "EphemeralStore",
    "TempStoreVerdict",
    "remove_orphaned_temp_dirs",
    "sweep_temp_dirs",
]

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
    :class:`~knncache.StoreClosedError`; close callbacks
    (:meth:`~knncache.KnnStore.add_close_callback`) run first, so per-process caches of
    maps into it can be dropped. If the process is killed (SIGKILL) the directory stays
    behind; it records its owner (pid, start time, boot id, PID namespace) in
    ``.knncache-owner.json``, and ``knncache gc --temp`` removes it once that owner is
    provably dead (see :func:`remove_orphaned_temp_dirs`).

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
        try:
            _write_owner(self._root)
        except OSError as exc:
            self._finalizer()
            raise StoreWriteError(root, exc.strerror or str(exc), exc.errno) from None

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
        IN_USE.close_root(str(self._root))
        self._finalizer()


_TEMP_NAME = re.compile(r"pid(\d+)_[A-Za-z0-9_]+")
OWNER_FILE = ".knncache-owner.json"
_OWNER_FORMAT = "knncache-ephemeral-owner/1"


def _pidns_id() -> str | None:
    """This process's PID namespace, as ``readlink /proc/self/ns/pid`` (``pid:[4026531836]``)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _owner_record() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "format": _OWNER_FORMAT,
        "pid": pid,
        "boot_id": boot_id(),
        "pidns": _pidns_id(),
        "start": start_time(pid),
        "uid": os.getuid(),
        "created": time.time(),
    }


def _write_owner(root: Path) -> None:
    data = (json.dumps(_owner_record(), sort_keys=True) + "\n").encode()
    atomic_write(root / OWNER_FILE, lambda f: f.write(data))


@dataclass(frozen=True, slots=True)
class TempStoreVerdict:
    """What ``knncache gc --temp`` decided about one temporary store, and why."""

    path: str
    removed: bool
    reason: str


def _judge(dir_fd: int, name: str, pid_in_name: int, older_than: float | None) -> tuple[bool, str]:
    """``(remove, reason)`` for the temporary store ``name`` in ``dir_fd``."""
    owner: dict[str, Any] | None = None
    try:
        sub = open_dir_at(dir_fd, name)
    except OSError:
        return False, "not a directory (not followed)"
    try:
        newest = max([os.fstat(sub).st_mtime] + [st.st_mtime for _, st in scan(sub)])
        with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
            raw = json.loads(read_capped(sub, OWNER_FILE, 4096).decode())
            if isinstance(raw, dict) and raw.get("format") == _OWNER_FORMAT:
                owner = raw
    finally:
        os.close(sub)
    age = time.time() - newest
    old_enough = older_than is not None and age > older_than
    if owner is None or owner.get("pid") != pid_in_name:
        if old_enough:
            return True, f"no owner record, unused for {age:.0f} s (> --older-than)"
        return False, "no owner record: owner unknown (use --older-than)"
    same_boot = owner.get("boot_id") is not None and owner.get("boot_id") == boot_id()
    same_ns = owner.get("pidns") is not None and owner.get("pidns") == _pidns_id()
    if not (same_boot and same_ns):
        where = "another boot" if not same_boot else "another PID namespace"
        if old_enough:
            return True, f"owner pid {pid_in_name} in {where}, unused for {age:.0f} s"
        return False, f"owner pid {pid_in_name} runs in {where}: cannot tell (use --older-than)"
    alive = pid_alive(pid_in_name)
    if alive and owner.get("start") is not None:
        now_start = start_time(pid_in_name)
        alive = now_start is None or now_start == owner["start"]
    if alive:
        return False, f"owner pid {pid_in_name} is alive"
    return True, f"owner pid {pid_in_name} is dead (same boot and PID namespace)"


def sweep_temp_dirs(
    dir: str | os.PathLike[str] | None = None,  # mirrors tempfile
    prefix: str = DEFAULT_PREFIX,
    *,
    older_than: float | None = None,
    dry_run: bool = False,
) -> list[TempStoreVerdict]:
    """Judge (and remove) ``EphemeralStore`` directories left behind; see
    :func:`remove_orphaned_temp_dirs`. Returns one verdict per candidate directory."""
    parent = os.fspath(dir if dir is not None else tempfile.gettempdir())
    verdicts: list[TempStoreVerdict] = []
    try:
        dir_fd = os.open(parent, DIR_FLAGS)
    except OSError:
        return verdicts
    try:
        for name, st in scan(dir_fd):
            if not name.startswith(prefix):
                continue
            m = _TEMP_NAME.fullmatch(name[len(prefix) :])
            if m is None or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            path = os.path.join(parent, name)
            remove, reason = _judge(dir_fd, name, int(m.group(1)), older_than)
            if remove and not dry_run:
                remove = remove_at(dir_fd, name)
                if not remove:
                    reason += "; could not remove it"
            verdicts.append(TempStoreVerdict(path, remove, reason))
    finally:
        os.close(dir_fd)
    return verdicts


def remove_orphaned_temp_dirs(
    dir: str | os.PathLike[str] | None = None,  # mirrors tempfile
    prefix: str = DEFAULT_PREFIX,
    *,
    older_than: float | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Remove ``EphemeralStore`` directories whose owner is provably dead.

    Candidates are real directories (never links) named ``<prefix>pid<PID>_<random>`` owned
    by the current user. Each store records its owner in ``.knncache-owner.json`` (pid,
    process start time, boot id, and PID namespace as ``readlink /proc/self/ns/pid``). A
    store is removed when its owner ran in this boot and this PID namespace and its pid is
    gone (or now names a process with another start time). A store whose owner ran in
    another PID namespace (a container sharing the temp directory) or another boot, or
    without an owner record, cannot be judged: it is removed only when ``older_than`` is
    given and nothing in it changed for that many seconds. A live owner's store is never
    removed. Removal does not follow links and stays on the directory's device.

    Parameters
    ----------
    dir : path-like, optional
        Where to look (default :func:`tempfile.gettempdir`).
    prefix : str
        The prefix the stores were created with.
    older_than : float, keyword-only, optional
        Age threshold in seconds for stores whose owner cannot be probed.
    dry_run : bool, keyword-only
        Only list what would be removed.

    Returns
    -------
    list of str
        The directories removed (or that would be).
    """
    return [
        v.path
        for v in sweep_temp_dirs(dir, prefix, older_than=older_than, dry_run=dry_run)
        if v.removed
    ]
