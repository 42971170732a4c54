"""Heatmaps of the selection score, one per superclass of a run."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ssddbc.grid_search._files import write_bytes
from ssddbc.grid_search._tasks import ConfigResult

__all__ = ["plot_heatmap"]


def plot_heatmap(
    path: Path,
    title: str,
    results: Sequence[ConfigResult],
    ks: Sequence[int],
    dps: Sequence[int],
    selected: tuple[int, int] | None,
    oracle: tuple[int, int] | None,
) -> None:
    """Heatmap of the selection score: rows density percentile, columns k.

    The selected cell (label-only score) is boxed; the oracle-best cell (test accuracy, for
    reference only) is marked with a dot. Failed configurations are left blank. The image is
    rendered in memory and then written atomically, so no temporary file lives while
    matplotlib works.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    grid = np.full((len(dps), len(ks)), np.nan)
    col = {k: j for j, k in enumerate(ks)}
    row = {dp: i for i, dp in enumerate(dps)}
    for r in results:
        if r.ok and r.k in col and r.density_percentile in row:
            grid[row[r.density_percentile], col[r.k]] = r.score
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(ks) + 2), max(4.0, 0.4 * len(dps) + 1.5)))
    try:
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", origin="lower")
        fig.colorbar(image, ax=ax, label="selection score  (-L1 + 3·silhouette)")
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set_yticks(range(len(dps)), [str(dp) for dp in dps])
        ax.set_xlabel("k (neighbours)")
        ax.set_ylabel("density percentile")
        if selected is not None and selected[0] in col and selected[1] in row:
            x, y = col[selected[0]], row[selected[1]]
            ax.add_patch(
                Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)
            )
        if oracle is not None and oracle[0] in col and oracle[1] in row:
            ax.plot(
                col[oracle[0]],
                row[oracle[1]],
                "o",
                color="white",
                markeredgecolor="black",
                markersize=7,
            )
        sel = (
            f"selected k={selected[0]}, dp={selected[1]} (red box)" if selected else "no selection"
        )
        ax.set_title(f"{title}\n{sel}; white dot: oracle best by test accuracy", fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    write_bytes(path, buf.getvalue())
