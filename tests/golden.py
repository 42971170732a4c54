"""Where the golden reference outputs of the original research code live.

They are part of the repository, ``tests/data/golden/`` (see the README there for what they are
and how they were produced), so the suite needs nothing outside the clone or the sdist.
"""

from __future__ import annotations

from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"
