"""Where the golden reference outputs of the original research code live.

They are ``../shared/golden/`` beside the repository (CI lays a copy of ``shared/`` there).
The faithfulness tests need them: when they are missing, the tests fail loudly instead of
being skipped, so a green run always means the comparison ran.
"""

from __future__ import annotations

from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "golden",
    Path("/work/shared/golden"),
)


def _find() -> Path:
    for cand in _CANDIDATES:
        if (cand / "original_lowdigits.npz").is_file():
            return cand
    raise FileNotFoundError(
        "golden reference outputs not found (looked in "
        + ", ".join(str(c) for c in _CANDIDATES)
        + "): the faithfulness tests need ../shared/golden beside the repository"
    )


GOLDEN_DIR = _find()
