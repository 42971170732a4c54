"""Where a run gets its distances: a precomputed matrix, or blocks computed on demand.

Both give the same float32 values (see :mod:`ssddbc._distances`), so every caller just asks
for ``block(rows, cols)`` and never cares which one it has. Callers bound memory by asking
for row blocks of at most :meth:`DistanceSource.row_step` rows.

Rows that must be compared with many columns (a few undecided rows against every core
point) go through :meth:`DistanceSource.row_batches` and :meth:`DistanceSource.column_blocks`
instead: a batch of up to ``_BATCH_ROWS`` rows meets the columns one block at a time, so each
column's features are read once per batch (not once per handful of rows) and memory stays at
one block, whatever the number of columns; the caller folds the blocks into its answer
(:mod:`ssddbc.ssddbc._select`'s accumulators; :meth:`DistanceSource.group_means` does it for
the per-group means).

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
from ssddbc.ssddbc._select import SmallestPerGroup

__all__ = ["DistanceSource", "column_ranges"]

_BLOCK_VALUES = 2_000_000
# Rows of one streamed batch: enough to make each column block a matrix product.
_BATCH_ROWS = 1024


def column_ranges(n_rows: int, n_cols: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``(c0, c1)`` column ranges whose blocks against ``n_rows`` rows hold
    about ``_BLOCK_VALUES`` values."""
    step = max(1, _BLOCK_VALUES // max(1, n_rows))
    for c0 in range(0, n_cols, step):
        yield c0, min(n_cols, c0 + step)


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

    def row_batches(
        self, rows: npt.NDArray[np.int64], per_row: int = 0
    ) -> Iterator[tuple[slice, npt.NDArray[np.int64]]]:
        """Split ``rows`` into batches for :meth:`column_blocks`.

        ``per_row`` is the caller's state per row (values kept across blocks); a batch holds
        at most ``_BATCH_ROWS`` rows and about ``_BLOCK_VALUES`` values of state.
        """
        step = max(1, min(_BATCH_ROWS, _BLOCK_VALUES // max(1, per_row)))
        for s in range(0, len(rows), step):
            yield slice(s, s + step), rows[s : s + step]

    def column_blocks(
        self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
    ) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """``(c0, D[rows][:, cols[c0:c0 + width]])`` for consecutive column ranges.

        Together the blocks are :meth:`block` ``(rows, cols)`` (the same values), each of
        about ``_BLOCK_VALUES`` values; the rows' features are gathered once.
        """
        ranges = column_ranges(len(rows), len(cols))
        if self.pairwise is not None:
            for c0, c1 in ranges:
                yield c0, self.block(rows, cols[c0:c1])
            return
        x32, sq = self._prepare()
        a, a_sq = x32[rows], sq[rows]
        for c0, c1 in ranges:
            cc = cols[c0:c1]
            yield c0, euclidean_block(a, x32[cc], a_sq=a_sq, b_sq=sq[cc])

    def group_means(
        self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], bounds: Any, m: int = 3
    ) -> Iterator[tuple[slice, npt.NDArray[np.float64]]]:
        """:func:`~ssddbc.ssddbc._select.mean_of_smallest_per_group` of ``D[rows][:, cols]``,
        one batch of rows at a time: ``(slice of rows, float64 (batch, G) means)``."""
        bounds = np.asarray(bounds, dtype=np.int64)
        for sl, batch in self.row_batches(rows, m * (len(bounds) - 1)):
            groups = SmallestPerGroup(len(batch), bounds, m)
            for c0, block in self.column_blocks(batch, cols):
                groups.update(c0, block)
            yield sl, groups.means()
