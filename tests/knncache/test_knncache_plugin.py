"""The pytest plugin's fixtures, exercised in a separate pytest run (pytester)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_fixtures(pytester: pytest.Pytester, tmp_path: Path) -> None:
    record = tmp_path / "roots.json"
    pytester.makepyfile(
        f"""
        import json
        import numpy as np
        from knncache import EphemeralStore, KnnStore, PersistentStore

        ROOTS = {{}}

        def test_ephemeral(knn_store):
            assert isinstance(knn_store, KnnStore) and not knn_store.is_persistent
            ref = knn_store.ensure(np.eye(6, dtype=np.float32), 3)
            assert ref.load().neighbors.shape == (6, 3)
            ROOTS["ephemeral"] = str(knn_store.root)

        def test_persistent(persistent_knn_store, tmp_path):
            assert persistent_knn_store.is_persistent
            assert tmp_path in persistent_knn_store.root.parents
            persistent_knn_store.ensure(np.eye(6, dtype=np.float32), 2)
            ROOTS["persistent"] = str(persistent_knn_store.root)

        def test_zz_record():
            with open({str(record)!r}, "w") as f:
                json.dump(ROOTS, f)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    roots = json.loads(record.read_text())
    assert not Path(roots["ephemeral"]).exists()  # closed after its test
    assert Path(roots["persistent"]).is_dir()
