"""The README's Quick start is what CI runs, and every command after it runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
#: The Markdown pages of the documentation site (they ship in the sdist with ``docs/``).
DOC_PAGES = sorted(
    p for p in (REPO / "docs").rglob("*.md") if "_build" not in p.parts and p.is_file()
)
#: Tools the Quick start installs into .venv: after it, a command calls them by path.
VENV_TOOLS = {
    "python",
    "pip",
    "pip3",
    "pytest",
    "ssddbc-search",
    "knncache",
    "sphinx-build",
    "ruff",
    "mypy",
    "dask",
    "pre-commit",
}
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _quick_start() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands() -> None:
    commands = _quick_start()
    assert len(commands) == 2
    assert "ssddbc-search" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert _quick_start()[1] in ci


def test_readme_is_at_most_300_lines() -> None:
    # The manual is the documentation site; the README says what this is and where to read on.
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300


def _bare_commands(text: str) -> list[str]:
    """Commands in bash blocks and inline code that call a .venv tool without its path."""
    bad = []
    for lang, body in FENCE.findall(text):
        if lang not in ("bash", "sh", "console"):
            continue
        continued = False
        for line in body.splitlines():
            code = line.split(" #", 1)[0].strip()
            was_continued, continued = continued, code.endswith("\\")
            if not code or code.startswith("#") or was_continued:
                continue
            for part in re.split(r"&&|\|\||;|\||\$\(|&", code):
                words = part.split()
                while words and (words[0] in ("srun", "env", "exec") or "=" in words[0]):
                    words = words[1:]
                if not words:
                    continue
                if words[0] == "python3" and words[1:3] == ["-m", "venv"]:
                    continue  # creating the venv, as the Quick start does
                if words[0] in VENV_TOOLS or words[0] == "python3":
                    bad.append(line.strip())
    prose = FENCE.sub("", text)
    for span in re.findall(r"`([^`\n]+)`", prose):
        first = span.split()[0] if span.split() else ""
        if first in ("python", "pip", "pip3") or (
            first == "python3" and span.split()[1:3] != ["-m", "venv"]
        ):
            bad.append(span)
    return bad


def test_readme_commands_after_the_quick_start_use_the_venv() -> None:
    # The Quick start installs into .venv without activating it: a bare `python` after it is
    # the system's, without these packages (ModuleNotFoundError).
    text = README.read_text(encoding="utf-8")
    after = text.split("## Quick start", 1)[1].split("```", 2)[2]
    assert _bare_commands(after) == []


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: str(p.relative_to(REPO / "docs")))
def test_doc_pages_commands_use_the_venv(page: Path) -> None:
    assert _bare_commands(page.read_text(encoding="utf-8")) == []


def test_the_checker_catches_a_bare_python() -> None:
    assert _bare_commands("```bash\npython -m ssddbc.data.make_cache x\n```\n") != []
    assert _bare_commands("run `pip install x` first") != []
    assert _bare_commands("```bash\ncd x && ssddbc-search --demo\n```\n") != []
    assert _bare_commands("```bash\n.venv/bin/python -m x \\\n    --y\n```\n") == []
