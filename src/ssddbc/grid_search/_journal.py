"""``results.csv``: the crash-safe journal of finished configurations.

One fsynced line is appended per finished configuration, so a run that is killed loses
nothing finished. The only damage a crash can do is a torn last line (the process died
mid-write, so the line has no newline): :meth:`ResultsJournal.read` drops it and cuts the
file back to the last complete line, and its configuration counts as missing. Anything
else (a garbled header, a complete line that does not parse, bytes that are not UTF-8) was
not made by a crash: it is a :class:`~ssddbc.RunFolderError` naming the line, never
silently skipped. When a run completes, the file is rewritten atomically in grid order, so
an interrupted-then-resumed run ends with the same file as an uninterrupted one (apart from
the timing column).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path

from ssddbc._errors import RunFolderError
from ssddbc.grid_search._files import write_bytes
from ssddbc.grid_search._tasks import ConfigResult

__all__ = ["FIELDS", "ResultsJournal", "result_from_row", "row_from_result"]

FIELDS = [
    "superclass",
    "k",
    "density_percentile",
    "status",
    "score",
    "l1_loss",
    "silhouette",
    "silhouette_se",
    "silhouette_sample",
    "all_acc",
    "old_acc",
    "new_acc",
    "n_clusters",
    "n_unknown_clusters",
    "knn_fallback",
    "seconds",
    "error",
]
_FLOATS = (
    "score",
    "l1_loss",
    "silhouette",
    "silhouette_se",
    "all_acc",
    "old_acc",
    "new_acc",
    "seconds",
)


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def row_from_result(result: ConfigResult) -> dict[str, str]:
    """One CSV row (strings) for a result."""
    row = {
        "superclass": result.group,
        "k": str(result.k),
        "density_percentile": str(result.density_percentile),
        "status": "ok" if result.ok else "error",
        "silhouette_sample": str(result.silhouette_sample),
        "n_clusters": str(result.n_clusters),
        "n_unknown_clusters": str(result.n_unknown_clusters),
        "knn_fallback": "1" if result.knn_fallback else "0",
        "error": " ".join(result.error.split()),
    }
    for name in _FLOATS:
        row[name] = _fmt(getattr(result, name))
    return row


def result_from_row(row: dict[str, str]) -> ConfigResult:
    """Parse a CSV row back; raises ValueError on a malformed row."""
    if set(row) != set(FIELDS) or any(row[f] is None for f in FIELDS):
        raise ValueError("wrong number of fields")
    if row["status"] not in ("ok", "error"):
        raise ValueError(f"status {row['status']!r}")
    if row["knn_fallback"] not in ("0", "1"):
        raise ValueError(f"knn_fallback {row['knn_fallback']!r}")
    result = ConfigResult(
        group=row["superclass"],
        k=int(row["k"]),
        density_percentile=int(row["density_percentile"]),
        ok=row["status"] == "ok",
        silhouette_sample=int(row["silhouette_sample"]),
        n_clusters=int(row["n_clusters"]),
        n_unknown_clusters=int(row["n_unknown_clusters"]),
        knn_fallback=row["knn_fallback"] == "1",
        error=row["error"],
    )
    for name in _FLOATS:
        setattr(result, name, float(row[name]) if row[name] else float("nan"))
    return result


def _line(values: dict[str, str] | list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(values if isinstance(values, list) else [values[f] for f in FIELDS])
    return buf.getvalue().encode("utf-8")


class ResultsJournal:
    """Append-only, fsynced CSV of finished configurations.

    Parameters
    ----------
    path : Path
        ``<run>/results.csv``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, *, repair: bool = True) -> list[ConfigResult]:
        """Every row; a torn last line is dropped (and, with ``repair``, cut off the file).

        Raises
        ------
        RunFolderError
            A garbled header, a complete line that does not parse, or bytes that are not
            UTF-8 (one line, naming the file and the line number).
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunFolderError(str(self.path), f"unreadable ({exc.strerror or exc})") from None
        if not raw:
            return []
        cut = raw.rfind(b"\n") + 1
        if cut < len(raw) and repair:
            # The writer died mid-line: drop the partial line so appends start clean.
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
        lines = raw[:cut].split(b"\n")[:-1]
        if not lines:
            return []
        out = []
        for number, line in enumerate(lines, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise RunFolderError(
                    str(self.path), f"line {number} is not UTF-8 text (not written by ssddbc)"
                ) from None
            try:
                values = next(csv.reader([text]))
            except (csv.Error, StopIteration):
                values = []
            if number == 1:
                if values != FIELDS:
                    raise RunFolderError(
                        str(self.path),
                        f"unexpected header {text[:80]!r}; expected {','.join(FIELDS[:3])},...",
                    )
                continue
            try:
                if len(values) != len(FIELDS):
                    raise ValueError(f"{len(values)} fields instead of {len(FIELDS)}")
                out.append(result_from_row(dict(zip(FIELDS, values, strict=True))))
            except ValueError as exc:
                raise RunFolderError(
                    str(self.path), f"line {number} is malformed ({exc}): {text[:80]!r}"
                ) from None
        return out

    def rewrite(self, results: Iterable[ConfigResult]) -> None:
        """Replace the journal atomically with exactly ``results``, in the given order."""
        data = _line(FIELDS) + b"".join(_line(row_from_result(r)) for r in results)
        write_bytes(self.path, data)

    def append(self, result: ConfigResult) -> None:
        """Append one row and make it durable before returning (one ``write`` call)."""
        data = _line(row_from_result(result))
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
