"""The original's ``FeatureLoader``: one superclass of a feature cache as the original's dict.

Reads through :func:`ssddbc.data.feature_cache.load_superclass`: ``features.npz`` if present,
else the original's ``features.pkl`` with the restricted unpickler (no code runs), every
array validated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssddbc._errors import InvalidInputError
from ssddbc.data.feature_cache import NPZ_NAME, PKL_NAME, load_superclass

__all__ = ["FeatureLoader"]


class FeatureLoader:
    """Load feature caches laid out as ``<cache_base_dir>/<superclass>/features.{npz,pkl}``.

    Parameters
    ----------
    cache_base_dir : str or pathlib.Path
        Root of the L2-normalised cache. Required here (the original defaulted to a path of
        its own configuration file).
    cache_base_dir_nol2 : str or pathlib.Path, optional
        Root of the cache without L2 normalisation (``use_l2=False``); by default
        ``cache_base_dir`` with ``"features"`` replaced by ``"features_nol2"``, as in the
        original.
    """

    def __init__(
        self,
        cache_base_dir: str | Path | None = None,
        cache_base_dir_nol2: str | Path | None = None,
    ) -> None:
        if cache_base_dir is None:
            raise InvalidInputError(
                "cache_base_dir",
                "give the feature cache root (<cache_base_dir>/<superclass>/features.npz or "
                "features.pkl); there is no configured default",
            )
        self.cache_base_dir = str(cache_base_dir)
        self.cache_base_dir_nol2 = (
            str(cache_base_dir_nol2)
            if cache_base_dir_nol2 is not None
            else self.cache_base_dir.replace("features", "features_nol2")
        )

    def _root(self, use_l2: bool) -> Path:
        return Path(self.cache_base_dir if use_l2 else self.cache_base_dir_nol2)

    def get_cache_path(self, dataset_name: str, use_l2: bool = True) -> str:
        """The file :meth:`load` reads: ``features.npz`` if it exists, else ``features.pkl``."""
        folder = self._root(use_l2) / dataset_name
        npz = folder / NPZ_NAME
        return str(npz if npz.is_file() else folder / PKL_NAME)

    def check_cache_exists(self, dataset_name: str, use_l2: bool = True) -> bool:
        """Whether the superclass has a cache file (nothing is read)."""
        return Path(self.get_cache_path(dataset_name, use_l2)).is_file()

    def load(
        self,
        dataset_name: str,
        use_l2: bool = True,
        silent: bool = False,
        *,
        allow_pickle: bool = False,
    ) -> dict[str, Any] | None:
        """The superclass as the original's dict, or ``None`` when it has no cache file.

        Parameters
        ----------
        dataset_name : str
            Superclass folder name.
        use_l2 : bool
            Read from ``cache_base_dir`` (True) or ``cache_base_dir_nol2``.
        silent : bool
            Accepted for compatibility; nothing is printed.
        allow_pickle : bool
            Keyword-only: unpickle ``features.pkl`` without restriction (only your own
            files).

        Returns
        -------
        dict or None
            ``all_``/``train_``/``test_`` × ``features``, ``targets``, ``known_mask``,
            ``labeled_mask``, ``indices``, plus the metadata.

        Raises
        ------
        FeatureCacheError
            A file that exists but is malformed or refused (the original returned ``None``
            for these too; here they are errors that say what is wrong).
        """
        if not self.check_cache_exists(dataset_name, use_l2):
            return None
        data = load_superclass(self._root(use_l2), dataset_name, allow_pickle=allow_pickle)
        return data.to_dict()
