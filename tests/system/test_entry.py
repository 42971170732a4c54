"""``ssddbc-search`` without its ``[ssddbc]`` extra: one line naming the install, exit status 2.

The missing extra is simulated in a real interpreter (a subprocess) by a ``sys.meta_path``
finder that refuses the extra's modules, as an environment without them would; the console
script is then loaded the way the installed script loads it, from the distribution's entry
points.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from ssddbc._entry import EXTRA_MODULES

_RUN_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys
    from importlib.metadata import entry_points

    BLOCKED = set(sys.argv[1].split(",")) if sys.argv[1] else set()

    class Missing(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Missing())
    (ep,) = entry_points(group="console_scripts", name="ssddbc-search")
    sys.argv = ["ssddbc-search", *sys.argv[2:]]
    ep.load()()
    """
)


def _run(blocked: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run(
        [sys.executable, "-c", _RUN_SCRIPT, ",".join(blocked), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_console_script_points_at_the_shim() -> None:
    (ep,) = entry_points(group="console_scripts", name="ssddbc-search")
    assert ep.value == "ssddbc._entry:search_main"


@pytest.mark.parametrize("blocked", [["sklearn"], list(EXTRA_MODULES)])
def test_missing_extra_is_one_line_and_exit_2(blocked: list[str], tmp_path: Path) -> None:
    proc = _run(blocked, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'knncache[ssddbc]'" in lines[0]
    for name in blocked:
        assert name in lines[0]
    assert list(tmp_path.iterdir()) == []  # no work started, nothing written


def test_with_the_extra_the_command_runs(tmp_path: Path) -> None:
    proc = _run([], "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--feature_cache_dir" in proc.stdout
    assert "knncache[ssddbc]" not in proc.stderr
