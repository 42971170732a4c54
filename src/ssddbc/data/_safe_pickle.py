"""A restricted unpickler for the original research code's ``features.pkl``.

Unpickling runs whatever callable a pickle names (``os.system``, ``subprocess.Popen``, a
class whose ``__reduce__`` does anything), so an unrestricted ``pickle.load`` of a file
someone else wrote is code execution. The original's feature caches hold only a dict of
numpy arrays, strings, numbers and small containers, and rebuilding those needs a handful of
globals. :class:`SafeUnpickler` resolves exactly those and refuses every other global *when
the pickle asks for it*, before anything it names can be called: the refusal is an
:class:`~ssddbc._errors.UnsafePickleError` naming the global.

Allowed globals:

* numpy array reconstruction: ``numpy.core.multiarray._reconstruct`` and
  ``numpy._core.multiarray._reconstruct`` (numpy 1.x and 2.x spellings), ``numpy.ndarray``,
  ``numpy.dtype``, ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``
  (numpy scalars such as ``np.int64(3)``), and ``numpy.core.numeric._frombuffer`` /
  ``numpy._core.numeric._frombuffer`` (arrays pickled with protocol 5);
* builtin containers and scalars: ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``,
  ``bytearray``, ``bytes``, ``str``, ``int``, ``float``, ``complex``, ``bool``;
* ``_codecs.encode``, which protocol-2 pickles use to spell a ``bytes`` object (it only turns a
  string into bytes).

An object-dtype array is no way around the list: its elements are ordinary pickled objects
and go through the same check. Arbitrary pickles remain readable with ``allow_pickle=True``,
which uses :func:`pickle.load` and must be reserved for files you created yourself.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from typing import IO, Any

from ssddbc._errors import UnsafePickleError

__all__ = ["ALLOWED_GLOBALS", "SafeUnpickler", "safe_load"]

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        *(
            ("builtins", name)
            for name in (
                "dict",
                "list",
                "tuple",
                "set",
                "frozenset",
                "bytearray",
                "bytes",
                "str",
                "int",
                "float",
                "complex",
                "bool",
            )
        ),
    }
)
"""``(module, name)`` pairs :class:`SafeUnpickler` resolves; every other global is refused."""


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED_GLOBALS`.

    Parameters
    ----------
    file : binary file
        Open for reading.
    path : str
        Named in the error message.
    """

    def __init__(self, file: IO[bytes], path: str = "<pickle>") -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` if it is allowed, else raise :class:`UnsafePickleError`.

        Python 2 names in protocol 0-2 pickles (``__builtin__.eval``) are mapped to their
        Python 3 names first, as :class:`pickle.Unpickler` does, so the check (and the error)
        is about what would really be called (``builtins.eval``).
        """
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(self._path, module, name)
        return super().find_class(module, name)


def safe_load(file: IO[bytes], path: str = "<pickle>") -> Any:
    """Unpickle ``file`` with :class:`SafeUnpickler`.

    Raises
    ------
    UnsafePickleError
        The pickle names a global outside :data:`ALLOWED_GLOBALS`; nothing it named ran.
    pickle.UnpicklingError, EOFError, ValueError, TypeError
        A malformed pickle (the caller translates these).
    """
    return SafeUnpickler(file, path).load()
