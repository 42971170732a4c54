"""Where a run gets its distances: a precomputed matrix, or blocks computed on demand.

Both give the same float32 values (see :mod:`ssddbc._distances`), so every caller just asks
for ``block(rows, cols)`` and never cares which one it has. Callers bound memory by asking
for row blocks of at most :meth:`DistanceSource.row_step` rows.

A source may also carry a candidate graph (each point's ``M`` nearest
neighbours with their exact distances): callers then answer most rows from it
(:mod:`ssddbc.ssddbc._candidates`) and ask blocks only for the rows it cannot decide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._distances import euclidean_block, squared_norms

__all__ = ["DistanceSource"]

_BLOCK_VALUES = 2_000_000


class DistanceSource:
    """Distances between rows of ``X``, read from ``pairwise`` when given.

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` features.
    pairwise : numpy.ndarray, optional
        ``(N, N)`` matrix from :func:`ssddbc._distances.pairwise_euclidean` (a read-only
        memmap is fine: only the requested entries are read).
    candidates : tuple, optional
        ``(neighbors int64 (N, M), distances float32 (N, M))``: the exact global graph, self
        excluded, rows in (distance, index) order, distances equal to the ones
        :func:`ssddbc._distances.euclidean_block` gives. With ``pairwise`` too, the
        candidates answer the rows they decide and the matrix the others.
    """

    def __init__(
        self,
        X: npt.NDArray[Any],
        pairwise: npt.NDArray[Any] | None = None,
        candidates: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]] | None = None,
    ) -> None:
        self.X = X
        self.pairwise = pairwise
        self.candidates = candidates
        self._x32: npt.NDArray[np.float32] | None = None
        self._sq: npt.NDArray[np.float64] | None = None

    @property
    def has_matrix(self) -> bool:
        """Whether distances are read from a precomputed matrix."""
        return self.pairwise is not None

    def _prepare(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
        if self._x32 is None or self._sq is None:
            self._x32 = np.ascontiguousarray(self.X, dtype=np.float32)
            self._sq = squared_norms(self._x32)
        return self._x32, self._sq

    def block(
        self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Float32 distances ``D[rows][:, cols]`` as a new ``(len(rows), len(cols))`` array."""
        if self.pairwise is not None:
            return np.asarray(self.pairwise[np.ix_(rows, cols)], dtype=np.float32)
        x32, sq = self._prepare()
        return euclidean_block(x32[rows], x32[cols], a_sq=sq[rows], b_sq=sq[cols])

    def row_blocks(
        self, rows: npt.NDArray[np.int64], n_cols: int
    ) -> Iterator[tuple[slice, npt.NDArray[np.int64]]]:
        """Split ``rows`` into chunks whose blocks against ``n_cols`` columns stay small."""
        step = max(1, _BLOCK_VALUES // max(1, n_cols))
        for s in range(0, len(rows), step):
            yield slice(s, s + step), rows[s : s + step]
