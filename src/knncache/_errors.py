"""Every error and warning ``knncache`` raises on purpose.

One root, :class:`KnnCacheError`; each leaf also inherits the closest built-in so that generic
handlers (``except ValueError``, ``except TimeoutError``, ``except FileNotFoundError``) keep
working. Errors cross process boundaries (a grid-search worker raises, the parent re-raises),
so each stores its context as attributes and pickles through ``__reduce__``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArrayNotFoundError",
    "CorruptEntryError",
    "EntryNotFoundError",
    "FeaturesNotStoredError",
    "ForeignObjectError",
    "InvalidFeaturesError",
    "InvalidKError",
    "InvalidNameError",
    "InvalidParameterError",
    "KnnCacheError",
    "KnnCacheWarning",
    "LockTimeoutError",
    "MissingDependencyError",
    "StoreClosedError",
    "StoreWriteError",
    "UnknownMetricError",
]


class KnnCacheWarning(UserWarning):
    """A recoverable problem: a corrupt entry that is being rebuilt, a skipped cleanup."""


class KnnCacheError(Exception):
    """Root of every error raised on purpose by ``knncache``."""

    def __init__(self, message: str = "") -> None:
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class InvalidFeaturesError(KnnCacheError, ValueError):
    """The feature matrix cannot be searched.

    Attributes
    ----------
    reason : str
        A short machine-readable code: ``"not_2d"``, ``"empty"``, ``"too_few_rows"``,
        ``"dtype"``, ``"non_finite"``, ``"overflow"`` or ``"zero_norm"``.
    row : int or None
        The first offending row, when the problem sits in a row.
    detail : str
        The human-readable explanation.
    """

    def __init__(self, reason: str, detail: str, row: int | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.row = row
        super().__init__(detail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail, self.row))


class InvalidKError(KnnCacheError, ValueError):
    """``k`` is not an integer in the allowed range.

    Attributes
    ----------
    k : object
        The value that came.
    n : int or None
        Number of points (for a search) or the stored ``k`` bound (for a load).
    detail : str
        The human-readable explanation.
    """

    def __init__(self, k: object, n: int | None, detail: str) -> None:
        self.k = k
        self.n = n
        self.detail = detail
        super().__init__(detail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.k, self.n, self.detail))


class UnknownMetricError(KnnCacheError, ValueError):
    """The metric is not one of the supported ones.

    Attributes
    ----------
    metric : object
        The value that came.
    known : tuple of str
        The supported metric names.
    """

    def __init__(self, metric: object, known: tuple[str, ...]) -> None:
        self.metric = metric
        self.known = tuple(known)
        super().__init__(f"unknown metric {metric!r}; expected one of {self.known!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.metric, self.known))


class InvalidNameError(KnnCacheError, ValueError):
    """A fingerprint or an array name does not match its strict pattern.

    Names end up in file paths, so anything else (``..``, ``/``, upper case) is refused.

    Attributes
    ----------
    kind : str
        ``"fingerprint"`` or ``"array name"``.
    value : object
        The value that came.
    pattern : str
        The regular expression it had to match.
    """

    def __init__(self, kind: str, value: object, pattern: str) -> None:
        self.kind = kind
        self.value = value
        self.pattern = pattern
        super().__init__(f"invalid {kind} {value!r}; expected a string matching {pattern!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.value, self.pattern))


class StoreClosedError(KnnCacheError, RuntimeError):
    """The store (or the ephemeral store a ref points into) was closed and removed.

    Attributes
    ----------
    root : str
        The store's root directory.
    """

    def __init__(self, root: str) -> None:
        self.root = str(root)
        super().__init__(f"the store at {self.root!r} is closed; its entries are gone")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.root,))


class LockTimeoutError(KnnCacheError, TimeoutError):
    """The per-entry lock could not be taken in time.

    Attributes
    ----------
    path : str
        The lock file (``<fingerprint>.lock``, or the ``<fingerprint>.softlock`` marker).
    timeout : float
        Seconds waited.
    holder_host : str or None
        Host name of the soft lock's holder, as recorded in its marker (``None`` for a hard
        lock, whose holder is not recorded, or an unreadable marker).
    holder_pid : int or None
        Process id of the holder on ``holder_host``.
    lock_age : float or None
        Seconds since the holder took the lock (from the marker's acquisition time).
    """

    def __init__(
        self,
        path: str,
        timeout: float,
        holder_host: str | None = None,
        holder_pid: int | None = None,
        lock_age: float | None = None,
    ) -> None:
        self.path = str(path)
        self.timeout = float(timeout)
        self.holder_host = holder_host
        self.holder_pid = holder_pid
        self.lock_age = None if lock_age is None else float(lock_age)
        message = f"could not acquire the entry lock {self.path!r} within {self.timeout:g} s"
        if holder_host is None and holder_pid is None and lock_age is None:
            message += "; another process is computing this entry or died holding the lock"
        else:
            who = f"pid {holder_pid}" if holder_pid is not None else "an unknown process"
            host = f"host {holder_host!r}" if holder_host is not None else "an unknown host"
            age = f" for {self.lock_age:.0f} s" if self.lock_age is not None else ""
            message += (
                f"; held by {who} on {host}{age}. If that process or host is gone, remove "
                "the marker with `knncache gc ROOT --break-locks`"
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.path, self.timeout, self.holder_host, self.holder_pid, self.lock_age),
        )


class CorruptEntryError(KnnCacheError, ValueError):
    """An entry's files disagree with its ``meta.json`` (or the meta is missing/unreadable).

    Attributes
    ----------
    fingerprint : str
        The entry.
    reason : str
        What is wrong, e.g. ``"k21_distances.npy: checksum mismatch"``.
    """

    def __init__(self, fingerprint: str, reason: str) -> None:
        self.fingerprint = fingerprint
        self.reason = reason
        super().__init__(f"corrupt entry {fingerprint!r}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.fingerprint, self.reason))


class StoreWriteError(KnnCacheError, OSError):
    """The store could not write an entry (read-only directory, disk full, root is a file).

    No partial file is left behind. Policy: :meth:`KnnStore.ensure` raises it; a caller that
    must not die (a long grid search) catches it and falls back to an ``EphemeralStore`` or to
    computing in memory.

    Attributes
    ----------
    path : str
        The file or directory that could not be written.
    reason : str
        The underlying problem (usually the ``OSError`` text).
    errno : int or None
        The underlying ``errno`` when there was one.
    """

    def __init__(self, path: str, reason: str, errno: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write to the store at {self.path!r}: {reason}")
        # Like any OSError: a handler that prints "cannot write {filename}: {strerror}"
        # says it once, not "cannot write cannot write to the store ...".
        self.errno = errno
        self.strerror = reason
        self.filename = self.path

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason, self.errno))


class EntryNotFoundError(KnnCacheError, FileNotFoundError):
    """A ref's entry is no longer on disk (evicted, cleared or deleted by hand).

    A worker that receives a ref may catch this and compute the graph itself.

    Attributes
    ----------
    path : str
        The entry directory.
    fingerprint : str
        The entry.
    detail : str or None
        Optional context (why the caller was looking, what it will do instead).
    """

    def __init__(self, path: str, fingerprint: str, detail: str | None = None) -> None:
        self.path = str(path)
        self.fingerprint = fingerprint
        self.detail = detail
        message = f"entry {fingerprint!r} not found at {self.path!r}"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.fingerprint, self.detail))


class FeaturesNotStoredError(KnnCacheError, LookupError):
    """The entry holds no ``features.npy`` (it was written with ``store_features=False``).

    Attributes
    ----------
    fingerprint : str
        The entry.
    """

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__(
            f"entry {fingerprint!r} stores no features; "
            "call ensure(..., store_features=True) to add them"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.fingerprint,))


class ArrayNotFoundError(KnnCacheError, KeyError):
    """A named array (see :meth:`KnnStore.ensure_array`) is not in the entry.

    Attributes
    ----------
    fingerprint : str
        The entry.
    name : str
        The array name that was asked for.
    """

    def __init__(self, fingerprint: str, name: str) -> None:
        self.fingerprint = fingerprint
        self.name = name
        super().__init__(f"entry {fingerprint!r} holds no array {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.fingerprint, self.name))


class InvalidParameterError(KnnCacheError, ValueError):
    """A search engine, estimator or export parameter is unknown or out of range.

    Attributes
    ----------
    name : str
        The parameter (``"method"``, ``"efSearch"``, ``"mode"``, ...).
    value : object
        The value that came.
    detail : str
        What was expected.
    """

    def __init__(self, name: str, value: object, detail: str) -> None:
        self.name = name
        self.value = value
        self.detail = detail
        super().__init__(f"invalid {name} {value!r}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.value, self.detail))


class MissingDependencyError(KnnCacheError, ImportError):
    """An optional dependency needed by the feature asked for is not installed.

    Attributes
    ----------
    package : str
        The pip name of the missing package.
    feature : str
        What needed it.
    """

    def __init__(self, package: str, feature: str) -> None:
        self.package = package
        self.feature = feature
        super().__init__(
            f"{feature} needs {package}, which is not installed: pip install {package}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.package, self.feature))


class ForeignObjectError(KnnCacheError, OSError):
    """Something inside a store is not what the store would have put there.

    A symbolic link, FIFO, device, socket or directory where the store expects a regular file
    (or a directory), or a file beyond its size cap. The store never follows, reads through or
    writes through such an object: it reports it (``verify``, ``ls``, a warning) and removes
    only the object itself when it rebuilds the entry or cleans up.

    Attributes
    ----------
    path : str
        The object.
    kind : str
        What was found (``"symbolic link"``, ``"FIFO"``, ``"file of 2000000 bytes"``...).
    expected : str
        What the store expected there (``"regular file"``, ``"directory"``, ...).
    """

    def __init__(self, path: str, kind: str, expected: str) -> None:
        self.path = str(path)
        self.kind = kind
        self.expected = expected
        super().__init__(f"{self.path!r} is a {kind}, expected a {expected}; not followed")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.kind, self.expected))
