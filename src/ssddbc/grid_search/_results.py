"""The batch runner's output files: a crash-safe results journal, the summary, heatmaps.

``results.csv`` is appended one fsynced line per finished configuration, so a run that is
killed loses nothing finished. Reading it back tolerates a torn last line (the process died
mid-write): such a line is dropped and its configuration counts as missing. When a run
completes, the file is rewritten atomically in grid order, so an interrupted-then-resumed run
ends with the same file as an uninterrupted one (apart from the timing column).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from knncache import atomic_write
from ssddbc.grid_search._tasks import ConfigResult

__all__ = [
    "FIELDS",
    "ResultsJournal",
    "atomic_write_text",
    "plot_heatmap",
    "result_from_row",
    "row_from_result",
]

FIELDS = [
    "superclass",
    "k",
    "density_percentile",
    "status",
    "score",
    "l1_loss",
    "silhouette",
    "silhouette_sample",
    "all_acc",
    "old_acc",
    "new_acc",
    "n_clusters",
    "n_unknown_clusters",
    "knn_fallback",
    "seconds",
    "error",
]
_FLOATS = ("score", "l1_loss", "silhouette", "all_acc", "old_acc", "new_acc", "seconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename)."""
    data = text.encode("utf-8")
    atomic_write(path, lambda handle: handle.write(data))


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def row_from_result(result: ConfigResult) -> dict[str, str]:
    """One CSV row (strings) for a result."""
    row = {
        "superclass": result.group,
        "k": str(result.k),
        "density_percentile": str(result.density_percentile),
        "status": "ok" if result.ok else "error",
        "silhouette_sample": str(result.silhouette_sample),
        "n_clusters": str(result.n_clusters),
        "n_unknown_clusters": str(result.n_unknown_clusters),
        "knn_fallback": "1" if result.knn_fallback else "0",
        "error": result.error.replace("\n", " "),
    }
    for name in _FLOATS:
        row[name] = _fmt(getattr(result, name))
    return row


def result_from_row(row: dict[str, str]) -> ConfigResult:
    """Parse a CSV row back; raises ValueError on a malformed (torn) row."""
    if set(row) != set(FIELDS) or any(row[f] is None for f in FIELDS):
        raise ValueError("malformed row")
    if row["status"] not in ("ok", "error"):
        raise ValueError("malformed status")
    floats = {name: float(row[name]) if row[name] else float("nan") for name in _FLOATS}
    return ConfigResult(
        group=row["superclass"],
        k=int(row["k"]),
        density_percentile=int(row["density_percentile"]),
        ok=row["status"] == "ok",
        silhouette_sample=int(row["silhouette_sample"]),
        n_clusters=int(row["n_clusters"]),
        n_unknown_clusters=int(row["n_unknown_clusters"]),
        knn_fallback=row["knn_fallback"] == "1",
        error=row["error"],
        **floats,
    )


class ResultsJournal:
    """Append-only, fsynced CSV of finished configurations.

    Parameters
    ----------
    path : Path
        ``<run>/results.csv``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[ConfigResult]:
        """Every intact row; a torn or malformed line is skipped."""
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        if not lines:
            return []
        out = []
        header = next(csv.reader([lines[0]]))
        if header != FIELDS:
            raise ValueError(f"{self.path}: unexpected header {header}")
        for line in lines[1:]:
            if not line.endswith("\n"):
                continue  # torn last line: the writer died mid-write
            try:
                values = next(csv.reader([line]))
                out.append(result_from_row(dict(zip(FIELDS, values, strict=True))))
            except (ValueError, StopIteration):
                continue
        return out

    def rewrite(self, results: Iterable[ConfigResult]) -> None:
        """Replace the journal atomically with exactly ``results``, in the given order."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for r in results:
            writer.writerow(row_from_result(r))
        atomic_write_text(self.path, buf.getvalue())

    def append(self, result: ConfigResult) -> None:
        """Append one row and make it durable before returning."""
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n").writerow(
            row_from_result(result)
        )
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())


def write_json(path: Path, payload: Any) -> None:
    """Atomic JSON write (NaN becomes null)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, float) and math.isnan(obj):
            return None
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    atomic_write_text(path, json.dumps(clean(payload), indent=2, sort_keys=False) + "\n")


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
    reference only) is marked with a dot. Failed configurations are left blank.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.full((len(dps), len(ks)), np.nan)
    col = {k: j for j, k in enumerate(ks)}
    row = {dp: i for i, dp in enumerate(dps)}
    for r in results:
        if r.ok and r.k in col and r.density_percentile in row:
            grid[row[r.density_percentile], col[r.k]] = r.score
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(ks) + 2), max(4.0, 0.4 * len(dps) + 1.5)))
    image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", origin="lower")
    fig.colorbar(image, ax=ax, label="selection score  (-L1 + 3·silhouette)")
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_yticks(range(len(dps)), [str(dp) for dp in dps])
    ax.set_xlabel("k (neighbours)")
    ax.set_ylabel("density percentile")
    if selected is not None and selected[0] in col and selected[1] in row:
        x, y = col[selected[0]], row[selected[1]]
        ax.add_patch(
            plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)
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
    sel = f"selected k={selected[0]}, dp={selected[1]} (red box)" if selected else "no selection"
    ax.set_title(f"{title}\n{sel}; white dot: oracle best by test accuracy", fontsize=9)
    fig.tight_layout()
    try:
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    finally:
        plt.close(fig)
