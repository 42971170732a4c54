"""``results.csv``: torn last lines are repaired, anything else damaged is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssddbc import RunFolderError
from ssddbc.grid_search._journal import FIELDS, ResultsJournal
from ssddbc.grid_search._tasks import ConfigResult


def _result(k: int, ok: bool = True) -> ConfigResult:
    return ConfigResult(
        group="g",
        k=k,
        density_percentile=50,
        ok=ok,
        score=0.25 * k,
        l1_loss=0.5,
        silhouette=0.1,
        n_clusters=3,
        n_unknown_clusters=1,
        seconds=0.01,
        error="" if ok else "ValueError: bad, with a comma\nand a newline",
    )


def _journal(tmp_path: Path, n: int = 3) -> ResultsJournal:
    journal = ResultsJournal(tmp_path / "results.csv")
    journal.rewrite([])
    for k in range(n):
        journal.append(_result(k, ok=k != 1))
    return journal


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    back = journal.read()
    assert [r.k for r in back] == [0, 1, 2]
    assert [r.ok for r in back] == [True, False, True]
    assert back[2].score == 0.5 and back[2].n_unknown_clusters == 1
    assert back[1].error == "ValueError: bad, with a comma and a newline"


def test_torn_last_line_is_dropped_and_cut_off_the_file(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    whole = journal.path.read_bytes()
    journal.path.write_bytes(whole + b"g,7,50,ok,0.1")  # the writer died mid-line
    assert [r.k for r in journal.read()] == [0, 1, 2]
    assert journal.path.read_bytes() == whole  # repaired: the next append starts clean
    journal.append(_result(9))
    assert [r.k for r in journal.read()] == [0, 1, 2, 9]


def test_read_without_repair_leaves_the_file(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    torn = journal.path.read_bytes() + b"g,7"
    journal.path.write_bytes(torn)
    assert len(journal.read(repair=False)) == 3
    assert journal.path.read_bytes() == torn


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda b: b.replace(b"superclass,k", b"superklass,k", 1), "unexpected header"),
        (lambda b: b.replace(b"\n", b"\ng,1,50,maybe,,,,0,,,,-1,-1,0,,\n", 1), "line 2"),
        (lambda b: b + b"g,4,50,ok\n", "line 5"),
        (lambda b: b + b"\xff\xfe,4,50\n", "not UTF-8"),
        (lambda b: b + b"g,x,50,ok,,,,0,,,,-1,-1,0,,\n", "line 5"),
    ],
)
def test_damage_a_crash_cannot_make_is_a_one_line_error(
    tmp_path: Path, damage, needle: str
) -> None:
    journal = _journal(tmp_path)
    journal.path.write_bytes(damage(journal.path.read_bytes()))
    with pytest.raises(RunFolderError, match=needle) as info:
        journal.read()
    assert "\n" not in str(info.value)
    assert str(journal.path) in str(info.value)


def test_empty_or_missing_journal_has_no_rows(tmp_path: Path) -> None:
    journal = ResultsJournal(tmp_path / "results.csv")
    assert journal.read() == []
    journal.path.write_bytes(b"")
    assert journal.read() == []
    journal.path.write_text(",".join(FIELDS) + "\n")
    assert journal.read() == []
