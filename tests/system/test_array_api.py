"""scikit-learn's array-API estimator check, in a process where it runs instead of skipping."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_estimators_pass_the_array_api_check() -> None:
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    files = ["tests/ssddbc/test_estimators.py", "tests/knncache/test_knncache_sklearn.py"]
    select = ["-k", "check_array_api_input"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *files, *select],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= 3, summary
    assert "skipped" not in summary and "failed" not in summary, summary
