"""Pseudo-labels: the class rule, the .npz format, the API result and the estimators."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ssddbc import InvalidInputError
from ssddbc._errors import RunFolderError
from ssddbc.estimators import SSDDBC, SSDDBCSearch
from ssddbc.grid_search.api import ClusteringSearchResult, run_clustering_search_on_features
from ssddbc.grid_search.pseudo_labels import (
    PseudoLabels,
    assign_classes,
    read_pseudo_labels,
    write_pseudo_labels,
)


def _blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(3 * c, 0.3, (40, 4)) for c in range(4)]).astype(np.float32)
    y = np.repeat(np.arange(4), 40)
    known = y < 2
    labeled = known & (np.arange(160) % 2 == 0)
    return x, y, known, labeled


def _search(**kwargs: object) -> ClusteringSearchResult:
    x, y, known, labeled = _blobs()
    return run_clustering_search_on_features(
        x, y, known, labeled, k_range=[5, 8], density_range=[50, 70], max_workers=1, **kwargs
    )


def _example() -> PseudoLabels:
    n = 6
    return PseudoLabels(
        indices=np.arange(100, 106, dtype=np.int64),
        labels=np.array([3, 3, 4, 4, 0, 0], dtype=np.int64),
        clusters=np.array([0, 0, 1, 1, 2, 2], dtype=np.int64),
        core_mask=np.array([1, 0, 1, 0, 1, 1], dtype=bool),
        densities=np.linspace(0.5, 1.0, n).astype(np.float32),
        labeled_mask=np.array([1, 0, 0, 0, 1, 0], dtype=bool),
        best_params={"k": 5, "density_percentile": 50},
        metadata={"format": "ssddbc-pseudo-labels", "version": 1, "acc": float("nan")},
    )


def test_labelled_clusters_take_their_majority_class_and_others_novel_ids() -> None:
    clusters = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    targets = np.array([3, 3, 1, 9, 0, 9, 9, 9, 2, 1, 9, 9])
    labeled = np.array([1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    labels, mapping, novel, start = assign_classes(clusters, targets, labeled)
    # 0: labelled 3, 3, 1 -> 3; 1: labelled 0 -> 0; 3: a 1-1 tie of classes 2 and 1 -> 1;
    # 2 and 4 have no labelled member: novel ids from max(labelled classes) + 1 = 4.
    assert mapping == {0: 3, 1: 0, 2: 4, 3: 1, 4: 5}
    assert novel == [2, 4] and start == 4
    assert labels.tolist() == [3, 3, 3, 3, 0, 0, 4, 4, 1, 1, 5, 5]
    assert labels.dtype == np.int64
    # The unlabelled samples' targets (9) are never read.
    other = np.where(labeled, targets, -7)
    assert assign_classes(clusters, other, labeled)[0].tolist() == labels.tolist()


def test_without_labelled_samples_novel_ids_start_at_zero() -> None:
    labels, mapping, novel, start = assign_classes([1, 1, 0], [5, 5, 5], [0, 0, 0])
    assert (labels.tolist(), mapping, novel, start) == ([1, 1, 0], {0: 0, 1: 1}, [0, 1], 0)


def test_the_file_round_trips(tmp_path: Path) -> None:
    pseudo = _example()
    path = write_pseudo_labels(tmp_path / "p.npz", pseudo)
    back = read_pseudo_labels(path)
    for key in ("indices", "labels", "clusters", "core_mask", "densities", "labeled_mask"):
        np.testing.assert_array_equal(getattr(back, key), getattr(pseudo, key))
        assert getattr(back, key).dtype == getattr(pseudo, key).dtype
    assert back.best_params == {"k": 5, "density_percentile": 50}
    assert back.metadata["acc"] is None  # NaN is not JSON: written as null
    assert back.cluster_to_class == {0: 3, 1: 4, 2: 0}
    assert back.novel_clusters == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary left


def test_np_load_without_pickles_gives_the_training_scripts_arrays(tmp_path: Path) -> None:
    path = write_pseudo_labels(tmp_path / "p.npz", _example())
    with np.load(path) as data:  # allow_pickle=False, numpy's default
        assert data["indices"].dtype == np.int64
        assert data["core_mask"].dtype == bool
        assert data["densities"].dtype == np.float32
        assert data["labels"].shape == (6,)
        # The original's loader unpickles best_params/metadata when present: never written.
        assert "best_params" not in data.files and "metadata" not in data.files
        assert all(data[key].dtype != object for key in data.files)
        assert json.loads(str(data["best_params_json"])) == {"density_percentile": 50, "k": 5}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.pop("core_mask"), "key 'core_mask' missing"),
        (lambda d: d.update(labels=d["labels"].astype(np.float64)), "key 'labels'"),
        (lambda d: d.update(densities=d["densities"][:3]), "key 'densities'"),
        (lambda d: d.update(metadata_json=np.array("[1, 2]")), "key 'metadata_json'"),
        (lambda d: d.update(best_params_json=np.array("{nope")), "not JSON"),
    ],
)
def test_a_bad_file_names_the_file_and_the_key(tmp_path: Path, change: object, needle: str) -> None:
    path = write_pseudo_labels(tmp_path / "p.npz", _example())
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)  # type: ignore[operator]
    np.savez(path, **arrays)
    with pytest.raises(RunFolderError, match=needle) as info:
        read_pseudo_labels(path)
    assert info.value.path == str(path)


def test_a_pickled_member_a_fifo_and_junk_are_refused(tmp_path: Path) -> None:
    path = write_pseudo_labels(tmp_path / "p.npz", _example())
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["best_params_json"] = np.array({"k": 1}, dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(RunFolderError, match=r"not a pseudo-labels \.npz"):
        read_pseudo_labels(path)
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(RunFolderError, match="not a regular file"):
        read_pseudo_labels(fifo)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(RunFolderError, match=r"junk\.npz"):
        read_pseudo_labels(junk)


def test_the_api_result_carries_the_pseudo_labels_and_the_selected_metrics(
    tmp_path: Path,
) -> None:
    result = _search()
    full = _search(return_all=True)
    assert result.results_grid is None
    cell = (result.best_params["k"], result.best_params["density_percentile"])
    assert full.results_grid is not None
    assert result.metrics == full.results_grid[cell]
    assert result.all_acc == full.results_grid[cell]["all_acc"]
    assert (result.old_acc, result.new_acc) == (
        full.results_grid[cell]["old_acc"],
        full.results_grid[cell]["new_acc"],
    )
    pseudo = result.pseudo_labels
    assert pseudo is not None
    np.testing.assert_array_equal(pseudo.clusters, result.labels)
    np.testing.assert_array_equal(np.flatnonzero(pseudo.core_mask), result.core_points)
    np.testing.assert_array_equal(pseudo.densities, result.densities.astype(np.float32))
    assert result.novel_clusters == pseudo.novel_clusters
    assert len(result.novel_clusters) == result.metrics["n_unknown_clusters"]
    _, y, _, labeled = _blobs()
    labels, mapping, _, _ = assign_classes(result.labels, y, labeled)
    np.testing.assert_array_equal(result.class_labels, labels)
    assert result.cluster_to_class == mapping

    indices = np.arange(1000, 1160)
    path = result.save_pseudo_labels(tmp_path / "p.npz", indices=indices)
    back = read_pseudo_labels(path)
    np.testing.assert_array_equal(back.indices, indices)
    for key in ("labels", "clusters", "core_mask", "densities", "labeled_mask"):
        np.testing.assert_array_equal(getattr(back, key), getattr(pseudo, key))
    assert back.best_params == result.best_params
    assert back.metadata["selected"]["all_acc"] == result.all_acc

    with pytest.raises(InvalidInputError, match="indices"):
        result.save_pseudo_labels(tmp_path / "q.npz", indices=np.arange(3))
    assert not (tmp_path / "q.npz").exists()


def test_silent_false_prints_what_its_documentation_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _search(silent=False)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("[SS-DDBC grid search] neighbour graph (N=")
    assert lines[1].startswith("[SS-DDBC grid search] neighbour graph (N=")
    assert ": done in " in lines[1]
    configs = [line for line in lines if " configurations, best score " in line]
    assert configs[0].startswith("[SS-DDBC grid search] 1/4 configurations, best score ")
    assert lines[-1].startswith("[SS-DDBC grid search] 4/4 configurations, best score ")
    doc = " ".join((run_clustering_search_on_features.__doc__ or "").split())
    assert "[SS-DDBC grid search] done/total configurations" in doc
    assert "[SS-DDBC grid search] <step> ..." in doc
    assert "shows a progress bar" not in doc


def test_the_estimators_carry_the_classes_in_the_values_of_y() -> None:
    x, y, known, labeled = _blobs()
    search = SSDDBCSearch([5, 8], [50, 70], n_jobs=1).fit(
        x, y * 10, known_mask=known, labeled_mask=labeled
    )
    pseudo = search.search_result_.pseudo_labels
    assert pseudo is not None
    # Integer classes: the known clusters' class values, novel ids after the largest.
    assert set(search.cluster_to_class_.values()) == {0, 10, 11, 12}
    np.testing.assert_array_equal(search.novel_clusters_, pseudo.novel_clusters)
    assert search.best_metrics_ == search.search_result_.metrics
    plain = SSDDBC(k=5, density_percentile=50).fit(
        x, y * 10, known_mask=known, labeled_mask=labeled
    )
    labels, _, novel, start = assign_classes(plain.labels_, y * 10, labeled)
    np.testing.assert_array_equal(plain.class_labels_, labels)
    assert plain.novel_clusters_.tolist() == novel == plain.unknown_clusters_.tolist()
    assert start == 11
    names = np.array(["ant", "bee", "cat", "dog"])[y]
    named = SSDDBC(k=5, density_percentile=50).fit(x, names, known_mask=known, labeled_mask=labeled)
    assert set(named.cluster_to_class_.values()) == {"ant", "bee", "novel_0", "novel_1"}
    assert named.class_labels_[0] == "ant"
    assert sorted(named.novel_clusters_.tolist()) == named.novel_clusters_.tolist()
