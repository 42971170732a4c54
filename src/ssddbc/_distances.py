"""The one definition of the Euclidean distances SS-DDBC uses between feature rows.

Every distance the clustering layer compares (within-subset neighbours, sparse-point
assignment, small-cluster merges, prototypes) comes from :func:`euclidean_block`, and the full
matrix :func:`pairwise_euclidean` is that same function applied blockwise. The value for a
pair ``(a, b)`` is the exact Euclidean distance of the two float32 vectors rounded to the
nearest float32, a function of ``a`` and ``b`` alone: it does not depend on the block shape,
the BLAS kernel or the thread count. That is what makes a clustering run identical with or
without a precomputed matrix.

How: the bulk is computed fast in float64 as ``|a|^2 + |b|^2 - 2 a.b`` (one GEMM). BLAS does
not promise the same bits for one element whatever the shapes (measured here: it does not),
so each value comes with a rigorous error bound; when the whole interval allowed by the bound
rounds to one float32 that float32 is returned, which is then also the rounding of the exact
value. The few pairs whose interval straddles a float32 rounding boundary (about 1 in 10^5,
plus every pair closer than ~1e-6, self-pairs included) are recomputed from the difference
vector in float64, element by element, which is accurate to a few float64 ulps and does not
depend on the batch. Self-distances therefore come out exactly 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ssddbc._errors import InvalidInputError

__all__ = ["euclidean_block", "pairwise_euclidean", "squared_norms"]

# A block of float64 temporaries holds at most this many values (~16 MB each).
_BLOCK_VALUES = 2_000_000
# Element-wise checks run on chunks of this many float64 values (~256 KB, cache-resident).
_CHUNK_VALUES = 32_768
_U = float(np.finfo(np.float64).eps) / 2.0  # unit roundoff of float64


def _as_float32_rows(arr: Any, name: str) -> npt.NDArray[np.float32]:
    a = np.asarray(arr)
    if a.ndim != 2 or a.dtype.kind not in "iuf":
        raise InvalidInputError(
            name, f"expected a 2-D real array, got shape {a.shape} dtype {a.dtype}"
        )
    return np.ascontiguousarray(a, dtype=np.float32)


def squared_norms(A: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Squared Euclidean norms of the rows of ``A``, accumulated in float64.

    Parameters
    ----------
    A : array_like
        ``(m, d)`` array; cast to float32 first (the distances are defined on float32 rows).

    Returns
    -------
    numpy.ndarray
        ``float64`` array of shape ``(m,)``.
    """
    a = _as_float32_rows(A, "A")
    out = np.empty(a.shape[0], dtype=np.float64)
    # Row chunks bound the float64 copy; each row's sum does not depend on the chunk.
    step = max(1, _BLOCK_VALUES // max(1, a.shape[1]))
    for s in range(0, a.shape[0], step):
        a64 = a[s : s + step].astype(np.float64)
        out[s : s + step] = np.einsum("ij,ij->i", a64, a64)
    return out


def exact_pairs(
    a64: npt.NDArray[np.float64], b64: npt.NDArray[np.float64], ia: Any, ib: Any
) -> npt.NDArray[np.float64]:
    """Distances of selected pairs from the difference vectors (float32 inputs are exact)."""
    out = np.empty(len(ia), dtype=np.float64)
    step = max(1, _BLOCK_VALUES // max(1, a64.shape[1]))
    for s in range(0, len(ia), step):
        diff = a64[ia[s : s + step]] - b64[ib[s : s + step]]
        out[s : s + step] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def _block_kernel(
    a64: npt.NDArray[np.float64],
    b64: npt.NDArray[np.float64],
    a_sq: npt.NDArray[np.float64],
    b_sq: npt.NDArray[np.float64],
) -> npt.NDArray[np.float32]:
    d = a64.shape[1]
    n = b64.shape[0]
    g = a64 @ b64.T
    out = np.empty(g.shape, dtype=np.float32)
    # Worst-case error of |a|^2 + |b|^2 - 2 a.b (norms, GEMM, two additions) with a 2x
    # margin: gamma_d bounds any summation order and |a.b| <= (|a|^2 + |b|^2) / 2. A per-row
    # bound using the largest |b|^2 is looser, which is allowed: any bound at least twice the
    # true error yields the same float32 (module docstring).
    tol = (a_sq + b_sq.max()) * (4.0 * (d + 4) * _U)
    # Element-wise passes run on row chunks that stay in cache.
    step = max(1, _CHUNK_VALUES // max(1, n))
    for r0 in range(0, g.shape[0], step):
        s = g[r0 : r0 + step]
        s *= -2.0
        s += a_sq[r0 : r0 + step, None]
        s += b_sq[None, :]
        t = tol[r0 : r0 + step, None]
        lo = out[r0 : r0 + step]
        np.sqrt(np.maximum(s - t, 0.0), out=lo, casting="same_kind")
        s += t
        np.sqrt(s, out=s)
        unsure = lo != s.astype(np.float32)
        if unsure.any():
            ia, ib = np.nonzero(unsure)
            lo[ia, ib] = exact_pairs(a64[r0:], b64, ia, ib).astype(np.float32)
    return out


def euclidean_block(
    A: npt.ArrayLike,
    B: npt.ArrayLike,
    *,
    a_sq: npt.NDArray[np.float64] | None = None,
    b_sq: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float32]:
    """Euclidean distances between the rows of ``A`` and the rows of ``B``, float32.

    Each value is the exact distance of the two rows (taken as float32) rounded to float32,
    independent of which other rows are in ``A`` or ``B`` (see the module docstring).
    Memory: ``len(A) * len(B)`` float32 for the output plus float64 temporaries of at most
    a few million values (``B`` is processed in column blocks when it is large).

    Parameters
    ----------
    A, B : array_like
        ``(m, d)`` and ``(n, d)`` real arrays (cast to float32).
    a_sq, b_sq : numpy.ndarray, optional
        Precomputed :func:`squared_norms` of ``A`` / ``B`` (any value within the float64
        rounding of the true norms gives the same result).

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(m, n)``.
    """
    a = _as_float32_rows(A, "A")
    b = _as_float32_rows(B, "B")
    if a.shape[1] != b.shape[1]:
        raise InvalidInputError("B", f"expected {a.shape[1]} columns, got {b.shape[1]}")
    m, n = a.shape[0], b.shape[0]
    out = np.empty((m, n), dtype=np.float32)
    if m == 0 or n == 0:
        return out
    a64 = a.astype(np.float64)
    a_sq = squared_norms(a) if a_sq is None else np.asarray(a_sq, dtype=np.float64)
    b_sq = squared_norms(b) if b_sq is None else np.asarray(b_sq, dtype=np.float64)
    col_step = max(1, min(n, _BLOCK_VALUES // max(1, a.shape[1])))
    row_step = max(1, _BLOCK_VALUES // col_step)
    for c0 in range(0, n, col_step):
        b64 = b[c0 : c0 + col_step].astype(np.float64)
        bs = b_sq[c0 : c0 + col_step]
        for r0 in range(0, m, row_step):
            out[r0 : r0 + row_step, c0 : c0 + col_step] = _block_kernel(
                a64[r0 : r0 + row_step], b64, a_sq[r0 : r0 + row_step], bs
            )
    return out


def pairwise_euclidean(
    X: npt.ArrayLike, *, block_rows: int | None = None
) -> npt.NDArray[np.float32]:
    """Full ``(N, N)`` Euclidean distance matrix of the rows of ``X``, float32.

    Compute it once per feature matrix and hand it to every configuration
    (``adaptive_density_clustering(..., pairwise_distances=D)``), for example through a
    read-only ``np.memmap``. Values are exactly those :func:`euclidean_block` gives for any
    pair, so a run with the matrix equals a run without it; the diagonal is exactly 0 and the
    matrix is exactly symmetric.

    Parameters
    ----------
    X : array_like
        ``(N, d)`` real feature matrix (taken as float32), finite.
    block_rows : int, optional
        Rows computed per step (memory ``block_rows * N`` float64 temporaries); by default
        chosen so that a block holds about two million values.

    Returns
    -------
    numpy.ndarray
        ``float32`` array of shape ``(N, N)``.

    Raises
    ------
    InvalidInputError
        If ``X`` is not a finite 2-D real array or ``block_rows`` is not a positive integer.
    """
    x = _as_float32_rows(X, "X")
    if not np.isfinite(x).all():
        raise InvalidInputError("X", "features contain NaN or inf")
    n = x.shape[0]
    if block_rows is None:
        block_rows = max(1, _BLOCK_VALUES // max(1, n))
    if (
        isinstance(block_rows, bool)
        or not isinstance(block_rows, (int, np.integer))
        or block_rows < 1
    ):
        raise InvalidInputError("block_rows", f"expected a positive integer, got {block_rows!r}")
    sq = squared_norms(x)
    out = np.empty((n, n), dtype=np.float32)
    for r0 in range(0, n, int(block_rows)):
        out[r0 : r0 + block_rows] = euclidean_block(
            x[r0 : r0 + block_rows], x, a_sq=sq[r0 : r0 + block_rows], b_sq=sq
        )
    return out
