"""The ``knncache`` command: inspect, verify and clean stores.

Usage::

    knncache ls ROOT                      list entries (most recently used first)
    knncache info ROOT [FINGERPRINT]      store summary, or one entry's meta and files
    knncache verify ROOT                  check every checksum; exit 1 if an entry is corrupt
    knncache clear ROOT                   remove every entry
    knncache gc ROOT                      remove nothing: what each action below would do
    knncache gc ROOT --unused-for DURATION
                                          remove entries unused that long (30d, 12h, 90m, 3600s)
    knncache gc ROOT --max-bytes SIZE     evict least-recently-used entries down to SIZE
    knncache gc ROOT --break-locks [--older-than SECONDS]
                                          remove stale soft-lock markers (lock="soft")
    knncache gc --temp [--dir DIR] [--older-than SECONDS]
                                          remove EphemeralStore dirs of provably dead owners
                                          (others only when unused for --older-than)

``ls`` and ``info`` also list problems found without checksums (foreign objects, unreadable
metas); ``clear`` and ``gc`` report the entries they skipped because a process pins them.

Every command takes ``--json``. Sizes accept ``500M``, ``2G``, ``1.5GiB``, ``4096`` (K, M, G,
T are powers of 1024). Exit status: 0 success, 1 corrupt entry found / entry not found,
2 bad usage or input (a one-line message on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from knncache import __version__
from knncache._entry import META_FILE, read_arrays, read_meta
from knncache._ephemeral import DEFAULT_PREFIX, sweep_temp_dirs
from knncache._errors import CorruptEntryError, KnnCacheError
from knncache._fingerprint import validate_fingerprint
from knncache._housekeeping import (
    CorruptEntry,
    HousekeepingReport,
    clear_entries,
    entry_bytes,
    evict_entries,
    last_used,
    remove_unused,
    unused_entries,
)
from knncache._housekeeping import problems as find_problems
from knncache._locks import LockMarker, break_soft_locks
from knncache._persistent import PersistentStore
from knncache._store import store_dir

__all__ = ["format_size", "main", "parse_duration", "parse_size"]

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


class _UsageError(Exception):
    pass


def parse_size(text: str) -> int:
    """Parse ``"500M"``, ``"2G"``, ``"1.5GiB"``, ``"4096"`` into bytes (K=1024).

    Raises
    ------
    ValueError
        For anything else.
    """
    m = _SIZE_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid size {text!r}; expected e.g. 500M, 2G, 1.5GiB or 4096")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_RE = re.compile(r"(\d{1,9})([smhdw])")


def parse_duration(text: str) -> int:
    """Parse ``"30d"``, ``"12h"``, ``"90m"``, ``"3600s"``, ``"2w"`` into seconds.

    A whole number and one unit (s, m, h, d, w), nothing else: no sign, no space, no
    fraction, no bare number.

    Raises
    ------
    ValueError
        For anything else, naming the text.
    """
    m = _DURATION_RE.fullmatch(text)
    if m is None:
        raise ValueError(
            f"invalid duration {text!r}; expected a whole number and a unit s, m, h, d or w "
            "(30d, 12h, 90m, 3600s)"
        )
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


def format_size(n: int) -> str:
    """Human-readable size: ``512 B``, ``1.5 KiB``, ``2.0 GiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _time(ts: float) -> str:
    try:
        return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # validated times fit; this is a last guard
        return f"{ts!r} (not a calendar date)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="knncache", description="Inspect, verify and clean knncache stores.")
    parser.add_argument("--version", action="version", version=f"knncache {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    add("ls", "list the entries of a store").add_argument("root")
    p = add("info", "summary of a store, or details of one entry")
    p.add_argument("root")
    p.add_argument("fingerprint", nargs="?")
    add("verify", "check every entry; exit status 1 if one is corrupt").add_argument("root")
    add("clear", "remove every entry of a store").add_argument("root")
    p = add(
        "gc",
        "remove entries unused for a while (--unused-for), evict LRU entries down to "
        "--max-bytes, break stale soft locks (--break-locks), or remove orphaned temp stores "
        "(--temp); ROOT alone removes nothing and says what each would do",
    )
    p.add_argument("root", nargs="?")
    p.add_argument(
        "--unused-for",
        type=str,
        metavar="DURATION",
        help="remove entries whose last use is older than this: 30d, 12h, 90m, 3600s, 2w "
        "(never a pinned or in-use entry)",
    )
    p.add_argument("--max-bytes", type=str, help="size budget: 500M, 2G, 4096, ...")
    p.add_argument(
        "--break-locks",
        action="store_true",
        help="remove soft-lock markers of dead holders on this host, and of other hosts "
        "once older than --older-than",
    )
    p.add_argument(
        "--older-than",
        type=str,
        help="age threshold in seconds for --break-locks (default: the lock timeout, 600), "
        "or for --temp stores whose owner cannot be probed (another PID namespace or boot)",
    )
    p.add_argument(
        "--temp", action="store_true", help="remove EphemeralStore dirs of provably dead owners"
    )
    p.add_argument("--dir", help="where to look with --temp (default: the temp directory)")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="EphemeralStore prefix (--temp)")
    return parser


def _store(root: str) -> PersistentStore:
    path = Path(root)
    if not path.is_dir():
        raise _UsageError(f"{root!r} is not a directory (no store there)")
    return PersistentStore(path)


def _problem_payload(bad: list[CorruptEntry]) -> list[dict[str, str]]:
    return [{"fingerprint": b.fingerprint, "path": b.path, "reason": b.reason} for b in bad]


def _housekeeping_lines(report: HousekeepingReport) -> list[str]:
    lines = [f"skipped pinned entry {fp} (a process pins it)" for fp in report.pinned]
    lines += [f"skipped entry {fp} (being written)" for fp in report.busy]
    lines += [f"removed foreign object {p} (not followed)" for p in report.foreign_removed]
    lines += [f"removed orphaned temporary file {p}" for p in report.temp_removed]
    return lines


def _housekeeping_payload(report: HousekeepingReport) -> dict[str, Any]:
    return {
        "pinned": report.pinned,
        "busy": report.busy,
        "foreign_removed": report.foreign_removed,
        "lock_files_removed": report.lock_files_removed,
        "temp_removed": report.temp_removed,
    }


def _emit(args: argparse.Namespace, payload: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        for line in lines:
            print(line)


def _cmd_ls(args: argparse.Namespace) -> int:
    store = _store(args.root)
    infos = store.entries()
    payload = [
        {
            "fingerprint": e.fingerprint,
            "n": e.n,
            "d": e.d,
            "k": e.k,
            "metric": e.metric,
            "bytes": e.bytes,
            "created": e.created,
            "last_used": e.last_used,
            "has_features": e.has_features,
            "arrays": list(e.arrays),
            "method": e.method,
        }
        for e in infos
    ]
    lines = [
        f"{'FINGERPRINT':32}  {'N':>7} {'D':>5} {'K':>3} {'METRIC':9} {'METHOD':6} "
        f"{'SIZE':>10}  LAST USED"
    ]
    lines += [
        f"{e.fingerprint:32}  {e.n:>7} {e.d:>5} {e.k:>3} {e.metric:9} {e.method:6} "
        f"{format_size(e.bytes):>10}  {_time(e.last_used)}"
        for e in infos
    ]
    lines.append(f"{len(infos)} entries, {format_size(sum(e.bytes for e in infos))}")
    problems = find_problems(store_dir(store), checksum=False)
    lines += [f"PROBLEM {b.fingerprint}: {b.reason}" for b in problems]
    _emit(args, payload, lines)
    if args.json:  # the JSON stays a list of entries; problems go to stderr (and `info`)
        for b in problems:
            print(f"knncache: problem {b.fingerprint}: {b.reason}", file=sys.stderr)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    store = _store(args.root)
    if args.fingerprint is None:
        infos = store.entries()
        total = sum(e.bytes for e in infos)
        problems = find_problems(store_dir(store), checksum=False)
        payload = {
            "root": str(store.root),
            "entries": len(infos),
            "bytes": total,
            "read_only": store.read_only,
            "problems": _problem_payload(problems),
        }
        lines = [
            f"root     {store.root}",
            f"entries  {len(infos)}",
            f"size     {format_size(total)}",
            f"problems {len(problems)}",
        ]
        lines += [f"PROBLEM {b.fingerprint}: {b.reason}" for b in problems]
        _emit(args, payload, lines)
        return 0
    try:
        fp = validate_fingerprint(args.fingerprint)
    except KnnCacheError as exc:
        raise _UsageError(str(exc)) from None
    entry = store.root / fp
    try:
        with store_dir(store).entry_fd(fp) as dfd:
            meta = read_meta(dfd, fp)
            meta["arrays"] = read_arrays(dfd, fp)[0]
            size = entry_bytes(dfd)
            with contextlib.suppress(OSError):
                mtime = os.stat(META_FILE, dir_fd=dfd, follow_symlinks=False).st_mtime
                meta["last_used"] = last_used(meta, mtime)
    except FileNotFoundError:
        print(f"knncache: error: no entry {fp} in {str(store.root)!r}", file=sys.stderr)
        return 1
    except (CorruptEntryError, OSError) as exc:
        print(f"knncache: error: entry {fp}: {exc}", file=sys.stderr)
        return 1
    payload = dict(meta, path=str(entry), bytes=size)
    lines = [
        f"fingerprint  {fp}",
        f"path         {entry}",
        f"points       n={meta['n']} d={meta['d']}",
        f"graph        k={meta['k']} metric={meta['metric']}",
        f"engine       {_engine_text(meta)}",
        f"size         {format_size(size)}",
        f"created      {_time(meta['created'])}",
        f"last used    {_time(meta['last_used'])}",
        "files:",
    ]
    for name, rec in sorted(meta["files"].items()):
        size_text = format_size(rec["bytes"])
        lines.append(f"  {name:28} {rec['dtype']:5} {rec['shape']!s:16} {size_text}")
    for name, rec in sorted(meta["arrays"].items()):
        lines.append(
            f"  array {name:22} {rec['dtype']:5} {rec['shape']!s:16} {format_size(rec['bytes'])}"
        )
    _emit(args, payload, lines)
    return 0


def _engine_text(meta: dict[str, Any]) -> str:
    """``exact``, or an approximate method with its parameters and measured recall."""
    method = meta.get("method", "exact")
    raw = meta.get("params")
    params: dict[str, Any] = raw if isinstance(raw, dict) else {}
    text = " ".join([str(method), *(f"{k}={v}" for k, v in sorted(params.items()))])
    recall = meta.get("recall")
    if isinstance(recall, dict) and isinstance(recall.get("value"), (int, float)):
        text += (
            f"  recall@{recall.get('k')}={recall['value']:.4f} "
            f"({recall.get('sample')} seeded queries vs exact)"
        )
    build = meta.get("build")
    if isinstance(build, dict):
        how = "deterministic" if build.get("deterministic") else "not reproducible"
        text += (
            f"\n             built with {build.get('threads')} threads ({how}), "
            f"faiss {build.get('faiss')}, tag {build.get('tag')}"
        )
    return text


def _cmd_verify(args: argparse.Namespace) -> int:
    store = _store(args.root)
    bad = store.verify()
    checked = len(store_dir(store).entry_dirs())
    payload = {"root": str(store.root), "checked": checked, "corrupt": _problem_payload(bad)}
    lines = [f"CORRUPT {b.fingerprint}: {b.reason}" for b in bad]
    lines.append(f"{checked} entries checked, {len(bad)} corrupt")
    _emit(args, payload, lines)
    return 1 if bad else 0


def _cmd_clear(args: argparse.Namespace) -> int:
    store = _store(args.root)
    report = clear_entries(store_dir(store))
    lines = _housekeeping_lines(report)
    lines.append(
        f"removed {len(report.removed)} entries from {store.root}"
        + (f"; skipped {len(report.pinned)} pinned" if report.pinned else "")
    )
    _emit(args, {"removed": report.removed, **_housekeeping_payload(report)}, lines)
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    if args.temp:
        if (
            args.root is not None
            or args.max_bytes is not None
            or args.break_locks
            or args.unused_for is not None
        ):
            raise _UsageError(
                "gc --temp takes no ROOT, no --max-bytes, no --break-locks, no --unused-for"
            )
        if args.dir is not None and not Path(args.dir).is_dir():
            raise _UsageError(f"--dir {args.dir!r} is not a directory")
        older = None if args.older_than is None else _seconds(args.older_than)
        verdicts = sweep_temp_dirs(args.dir, args.prefix, older_than=older)
        removed = [v.path for v in verdicts if v.removed]
        kept = [v for v in verdicts if not v.removed]
        lines = [f"removed {v.path} ({v.reason})" for v in verdicts if v.removed]
        lines += [f"kept {v.path} ({v.reason})" for v in kept]
        lines.append(f"removed {len(removed)} orphaned temporary stores, kept {len(kept)}")
        payload = {
            "removed": removed,
            "kept": [{"path": v.path, "reason": v.reason} for v in kept],
        }
        _emit(args, payload, lines)
        return 0
    if args.root is None:
        raise _UsageError(
            "gc needs ROOT (with --unused-for DURATION, --max-bytes SIZE or --break-locks; "
            "ROOT alone shows what each would remove), or --temp"
        )
    if args.older_than is not None and not args.break_locks:
        raise _UsageError("--older-than goes with --break-locks or --temp")
    actions = [
        flag
        for flag, given in (
            ("--unused-for", args.unused_for is not None),
            ("--max-bytes", args.max_bytes is not None),
            ("--break-locks", args.break_locks),
        )
        if given
    ]
    if len(actions) > 1:
        raise _UsageError(f"gc takes one action at a time, got {' and '.join(actions)}")
    if not actions:
        return _gc_overview(args)
    if args.unused_for is not None:
        return _gc_unused(args)
    if args.break_locks:
        if args.max_bytes is not None:
            raise _UsageError("gc --break-locks takes no --max-bytes (run gc twice)")
        return _gc_break_locks(args)
    try:
        budget = parse_size(args.max_bytes)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    store = _store(args.root)
    before = store.total_bytes()
    report = evict_entries(store_dir(store), budget)
    evicted = report.removed
    after = store.total_bytes()
    payload = {
        "evicted": evicted,
        "bytes_before": before,
        "bytes_after": after,
        **_housekeeping_payload(report),
    }
    lines = [f"evicted {fp}" for fp in evicted] + _housekeeping_lines(report)
    lines.append(
        f"evicted {len(evicted)} entries: {format_size(before)} -> {format_size(after)} "
        f"(budget {format_size(budget)})"
    )
    _emit(args, payload, lines)
    return 0


# What ``gc ROOT`` alone reports for --unused-for: entries unused this long, and their size.
_OVERVIEW_AGES = ("1d", "7d", "30d")


def _gc_overview(args: argparse.Namespace) -> int:
    """``gc ROOT`` with no action: remove nothing, say what each action would do here."""
    store = _store(args.root)
    d = store_dir(store)
    infos = store.entries()
    total = sum(e.bytes for e in infos)
    unused = {}
    for age in _OVERVIEW_AGES:
        old = unused_entries(d, parse_duration(age))
        unused[age] = {"entries": len(old), "bytes": sum(e.bytes for e in old)}
    oldest = min((e.last_used for e in infos), default=None)
    payload = {
        "root": str(store.root),
        "entries": len(infos),
        "bytes": total,
        "least_recent_use": oldest,
        "unused": unused,
        "actions": ["--unused-for DURATION", "--max-bytes SIZE", "--break-locks", "--temp"],
    }
    here = ", ".join(
        f"{u['entries']} unused for {age} ({format_size(u['bytes'])})" for age, u in unused.items()
    )
    lines = [
        f"{store.root}: {len(infos)} entries, {format_size(total)}"
        + (f", least recently used {_time(oldest)}" if oldest is not None else ""),
        "gc removed nothing; give it one action:",
        f"  gc ROOT --unused-for DURATION  remove entries unused that long (30d, 12h, 90m, "
        f"3600s); here: {here}",
        "  gc ROOT --max-bytes SIZE       evict least-recently-used entries down to SIZE",
        '  gc ROOT --break-locks          remove stale soft-lock markers (lock="soft")',
        "  gc --temp [--dir DIR]          remove EphemeralStore dirs of dead owners",
    ]
    _emit(args, payload, lines)
    return 0


def _gc_unused(args: argparse.Namespace) -> int:
    try:
        age = parse_duration(args.unused_for)
    except ValueError as exc:
        raise _UsageError(f"--unused-for: {exc}") from None
    store = _store(args.root)
    before = store.total_bytes()
    report = remove_unused(store_dir(store), age)
    after = store.total_bytes()
    payload = {
        "removed": report.removed,
        "unused_for_seconds": age,
        "bytes_before": before,
        "bytes_after": after,
        **_housekeeping_payload(report),
    }
    lines = [f"removed {fp}" for fp in report.removed] + _housekeeping_lines(report)
    lines.append(
        f"removed {len(report.removed)} entries unused for {args.unused_for}: "
        f"{format_size(before)} -> {format_size(after)}"
        + (f"; skipped {len(report.pinned)} pinned" if report.pinned else "")
    )
    _emit(args, payload, lines)
    return 0


def _holder(m: LockMarker) -> str:
    who = f"pid {m.pid}" if m.pid is not None else "unknown pid"
    host = m.host if m.host is not None else "unknown host"
    skew = f"; its time is {m.skew:.0f} s ahead of this host's clock" if m.skew >= 1 else ""
    return f"{who} on {host}, age {m.age:.0f} s{skew}"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _UsageError(f"--older-than {text!r} is not a number") from None
    if not value >= 0:
        raise _UsageError(f"--older-than must be >= 0 seconds, got {text!r}")
    return value


def _gc_break_locks(args: argparse.Namespace) -> int:
    store = _store(args.root)
    threshold = store.lock_timeout if args.older_than is None else _seconds(args.older_than)
    removed, kept = break_soft_locks(store.root, threshold)
    payload = {
        "older_than": threshold,
        "broken": [m.as_dict() for m in removed],
        "kept": [m.as_dict() for m in kept],
    }
    lines = [f"broke lock {m.fingerprint} ({_holder(m)})" for m in removed]
    lines += [f"kept lock {m.fingerprint} ({_holder(m)})" for m in kept]
    lines.append(
        f"broke {len(removed)} soft locks older than {threshold:g} s or held by dead "
        f"processes of this host; kept {len(kept)}"
    )
    _emit(args, payload, lines)
    return 0


_COMMANDS = {
    "ls": _cmd_ls,
    "info": _cmd_info,
    "verify": _cmd_verify,
    "clear": _cmd_clear,
    "gc": _cmd_gc,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``knncache`` command; return its exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 success, 1 corrupt/not found, 2 usage or input error.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        return _COMMANDS[args.command](args)
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except _UsageError as exc:
        print(f"knncache: error: {exc}", file=sys.stderr)
        return 2
    except KnnCacheError as exc:
        print(f"knncache: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"knncache: error: {exc}", file=sys.stderr)
        return 2
