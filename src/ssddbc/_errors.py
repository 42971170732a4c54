"""Every error ``ssddbc`` raises on purpose.

One root, :class:`SsddbcError`; each leaf also inherits the closest built-in so that generic
handlers (``except ValueError``) keep working. Errors cross process boundaries in a parallel
grid search, so each stores its context as attributes and pickles via ``__reduce__``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FeatureCacheError",
    "InvalidInputError",
    "RunFolderError",
    "SearchConfigError",
    "SsddbcError",
    "SsddbcWarning",
    "TorchRequiredError",
    "UnsafePickleError",
]


class SsddbcError(Exception):
    """Root of every error raised on purpose by ``ssddbc``."""


class SsddbcWarning(UserWarning):
    """Root of every warning ``ssddbc`` issues on purpose (a request it had to adjust)."""


class InvalidInputError(SsddbcError, ValueError):
    """An argument has the wrong shape, dtype, range or content.

    Attributes
    ----------
    argument : str
        Name of the offending argument (``"known_mask"``, ``"k"``, ...).
    message : str
        What was expected and what came.
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        self.message = message
        super().__init__(f"{argument}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.argument, self.message))


class _PathError(SsddbcError, ValueError):
    """A file or folder that cannot be used: its path and what is wrong with it."""

    def __init__(self, path: str, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.message))


class FeatureCacheError(_PathError):
    """A feature-cache file is missing, unreadable or malformed.

    Attributes
    ----------
    path : str
        The file or folder concerned.
    message : str
        What is wrong with it.
    """


class SearchConfigError(SsddbcError, ValueError):
    """A grid-search option is invalid (empty range, bad flag value).

    Attributes
    ----------
    option : str
        The option or flag name (``"--k_min"``, ``"density_range"``).
    message : str
        What was expected and what came.
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.option, self.message))


class UnsafePickleError(FeatureCacheError):
    """A pickle asked for a global outside the safe allow-list; nothing it named was run.

    Raised by the restricted unpickler that reads the original research code's
    ``features.pkl`` without ``allow_pickle`` (see :mod:`ssddbc.data._safe_pickle`).

    Attributes
    ----------
    path : str
        The file.
    module, name : str
        The global the pickle asked for (``"os"``, ``"system"``).
    """

    def __init__(self, path: str, module: str, name: str) -> None:
        self.module = module
        self.name = name
        super().__init__(
            path,
            f"refused to unpickle: it asks for the global {module}.{name}, which is not a "
            "numpy array, dtype or builtin container/scalar (nothing was run). If you created "
            "this file yourself, pass allow_pickle=True (--allow_pickle)",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.module, self.name))


class TorchRequiredError(SsddbcError, ImportError):
    """A name of the original research code that needs PyTorch and is not provided here.

    The model-loading and feature-extraction classes of the original (``DataProvider``,
    ``FeatureExtractor``, ...) need a GPU framework; this package starts from a feature cache
    instead (``<feature_cache_dir>/<superclass>/features.npz`` or the original's
    ``features.pkl``, see :mod:`ssddbc.data.feature_cache`).

    Attributes
    ----------
    name : str
        The name asked for.
    """

    def __init__(self, name: str) -> None:
        self.missing = name
        super().__init__(
            f"{name!r} is part of the original research code's PyTorch model and "
            "feature-extraction stack, which ssddbc does not provide: extract features with "
            "your own model and write a feature cache (<feature_cache_dir>/<superclass>/"
            "features.npz, see ssddbc.data.write_superclass; the original's features.pkl is "
            "read as is)",
            name=name,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.missing,))


class RunFolderError(_PathError):
    """A grid-search run folder cannot be used: malformed or mismatching files, no access.

    Attributes
    ----------
    path : str
        The file or folder concerned (``config.json``, ``results.csv``, the folder).
    message : str
        What is wrong with it.
    """
