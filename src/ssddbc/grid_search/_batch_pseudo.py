"""The batch run's pseudo-labels: each superclass's selected configuration, rerun and written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssddbc._errors import RunFolderError
from ssddbc.grid_search._config import RunConfig
from ssddbc.grid_search._console import IOFailure, warn_line
from ssddbc.grid_search._summary import select_best
from ssddbc.grid_search._tasks import ConfigResult
from ssddbc.grid_search.pseudo_labels import (
    FILE_NAME,
    read_pseudo_labels,
    rerun_selected,
    write_pseudo_labels,
)

__all__ = ["pseudo_current", "selected_config", "write_pseudo"]


def selected_config(
    cfg: RunConfig, name: str, results: dict[tuple[str, int, int], ConfigResult]
) -> ConfigResult | None:
    """Superclass ``name``'s selected configuration (None when none succeeded)."""
    order = [(k, dp) for k in cfg.k_values for dp in cfg.density_values]
    rows = [results[(name, k, dp)] for k, dp in order if (name, k, dp) in results]
    try:
        return select_best(rows, order)
    except ValueError:
        return None


def pseudo_current(run_dir: Path, name: str, best: ConfigResult) -> bool:
    """Whether ``<run>/<name>/pseudo_labels.npz`` is readable and names ``best``'s cell."""
    try:
        found = read_pseudo_labels(run_dir / name / FILE_NAME).best_params
    except RunFolderError:
        return False
    return found == {"k": best.k, "density_percentile": best.density_percentile}


def write_pseudo(
    run_dir: Path, cfg: RunConfig, name: str, d: Any, shared: Any, best: ConfigResult
) -> None:
    """``<run>/<name>/pseudo_labels.npz``: the selected configuration, rerun here.

    A rerun that raises (it succeeded in a worker, so it should not) costs the file and one
    warning line, never the run; a write that fails is an I/O failure of the run.
    """
    try:
        _, pseudo = rerun_selected(
            shared,
            best.k,
            best.density_percentile,
            cfg.params,
            indices=d.indices,
            metadata={
                "superclass": name,
                "feature_source": None if d.source is None else str(d.source),
                "evaluated_on": cfg.eval_split,
                "metric": cfg.metric,
                "selected": best.metrics(),
                "knn": shared.graph.as_dict(),
            },
        )
    except OSError as exc:
        raise IOFailure() from exc
    except Exception as exc:
        warn_line(f"pseudo-labels of {name!r} not written: {type(exc).__name__}: {exc}")
        return
    try:
        (run_dir / name).mkdir(exist_ok=True)
        write_pseudo_labels(run_dir / name / FILE_NAME, pseudo)
    except OSError as exc:
        raise IOFailure() from exc
