"""Run configuration: JSON round trip, hand-edit checks, identity of every input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knncache import fingerprint
from ssddbc import RunFolderError
from ssddbc.data import build_digits_feature_cache, load_superclass
from ssddbc.evaluation import evaluation_mask
from ssddbc.grid_search._config import (
    RunConfig,
    compute_identity,
    describe,
    difference,
)
from ssddbc.grid_search._plan import SearchPlan
from ssddbc.ssddbc._params import AlgorithmParams


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Any, str]]:
    root = tmp_path_factory.mktemp("fc")
    build_digits_feature_cache(root)
    d = load_superclass(root, "digits_low")
    mask = evaluation_mask(d.n, train_size=d.train_size, mode="test")
    return {"digits_low": (d, mask, fingerprint(d.features))}


def _cfg(**kw: Any) -> RunConfig:
    base = RunConfig(
        feature_cache_dir="fc",
        superclasses=["digits_low"],
        k_values=[3, 4],
        density_values=[40, 90],
        params=AlgorithmParams(voting_k=7),
        plan=SearchPlan(pairwise_max_n=500),
        eval_split="test",
        allow_pickle=False,
    )
    return replace(base, **kw)


def test_round_trip(tmp_path: Path, data: dict[str, Any]) -> None:
    cfg = _cfg()
    cfg = replace(cfg, identity=compute_identity(cfg, data))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_json(["ssddbc-search"])))
    back = RunConfig.read(tmp_path)
    assert back == cfg
    assert difference(back.identity, compute_identity(back, data)) is None


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda r: r.update(k_values=["3", 4]), "'k_values'"),
        (lambda r: r.update(k_values=[3.5]), "'k_values'"),
        (lambda r: r.update(superclasses=[]), "'superclasses'"),
        (lambda r: r.update(params={**r["params"], "voting_k": 0}), "'params'"),
        (lambda r: r.update(params={"dense_method": 1}), "'params'"),
        (lambda r: r.update(plan={"pairwise_max_n": "big"}), "'plan'"),
        (lambda r: r.update(eval_split="all"), "'eval_split'"),
        (lambda r: r.pop("identity"), "'identity'"),
        (lambda r: r.update(version=1), "format version 1"),
    ],
)
def test_hand_edited_config_is_a_one_line_error(
    tmp_path: Path, data: dict[str, Any], edit: Any, needle: str
) -> None:
    cfg = _cfg()
    raw = replace(cfg, identity=compute_identity(cfg, data)).to_json([])
    edit(raw)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(RunFolderError, match=needle) as info:
        RunConfig.read(tmp_path)
    assert "\n" not in str(info.value)


def test_unreadable_config_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b"{\xff")
    with pytest.raises(RunFolderError, match="unreadable"):
        RunConfig.read(tmp_path)


def _changed(data: dict[str, Any], **arrays: Any) -> dict[str, Any]:
    d, mask, fp = data["digits_low"]
    fields = {k: v for k, v in arrays.items() if k != "eval_mask"}
    d2 = replace(d, **fields) if fields else d
    fp2 = fingerprint(d2.features) if "features" in fields else fp
    return {"digits_low": (d2, arrays.get("eval_mask", mask), fp2)}


def _one_more_known_class(data: dict[str, Any]) -> np.ndarray:
    d = data["digits_low"][0]
    novel = d.targets[~d.known_mask][0]
    return d.known_mask | (d.targets == novel)


def _labelled(data: dict[str, Any]) -> int:
    return int(np.flatnonzero(data["digits_low"][0].labeled_mask)[0])


def _flip(a: np.ndarray, i: int) -> np.ndarray:
    out = a.copy()
    out[i] = not out[i] if out.dtype == bool else out[i] + 1
    return out


@pytest.mark.parametrize(
    ("change", "component"),
    [
        (
            lambda c, d: (c, _changed(d, features=d["digits_low"][0].features + 0.5)),
            "superclasses.digits_low.features",
        ),
        (
            lambda c, d: (c, _changed(d, targets=_flip(d["digits_low"][0].targets, 0))),
            "superclasses.digits_low.targets",
        ),
        (
            lambda c, d: (
                c,
                _changed(d, known_mask=_one_more_known_class(d)),
            ),
            "superclasses.digits_low.known_mask",
        ),
        (
            lambda c, d: (
                c,
                _changed(d, labeled_mask=_flip(d["digits_low"][0].labeled_mask, _labelled(d))),
            ),
            "superclasses.digits_low.labeled_mask",
        ),
        (
            lambda c, d: (c, _changed(d, train_size=d["digits_low"][0].train_size - 1)),
            "superclasses.digits_low.train_size",
        ),
        (
            lambda c, d: (c, _changed(d, eval_mask=~d["digits_low"][1])),
            "superclasses.digits_low.eval_mask",
        ),
        (lambda c, d: (replace(c, k_values=[3, 5]), d), "grid.k_values"),
        (lambda c, d: (replace(c, params=AlgorithmParams(voting_k=8)), d), "params.voting_k"),
        (lambda c, d: (replace(c, plan=SearchPlan()), d), "plan.pairwise_max_n"),
        (lambda c, d: (replace(c, eval_split="unlabelled"), d), "eval_split"),
    ],
)
def test_identity_names_the_component_that_changed(
    data: dict[str, Any], change: Any, component: str
) -> None:
    cfg = _cfg()
    recorded = compute_identity(cfg, data)
    cfg2, data2 = change(cfg, data)
    assert difference(recorded, compute_identity(cfg2, data2)) == component
    assert describe(component)


def test_identity_records_the_algorithm_version(data: dict[str, Any]) -> None:
    cfg = _cfg()
    recorded = compute_identity(cfg, data)
    assert recorded["algorithm"].startswith("ssddbc ")
    assert difference({**recorded, "algorithm": "ssddbc 0.0.1"}, recorded) == "algorithm"
