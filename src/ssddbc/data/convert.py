"""``python -m ssddbc.data.convert SRC [--dst DST] [--superclasses a,b]``: pkl → npz.

Converts the original research code's ``<SRC>/<superclass>/features.pkl`` files to our
``features.npz`` format (same keys, JSON metadata, read without pickle). Unpickling runs code
from the file: convert only caches you created yourself. Exit status 0 on success, 2 on bad
input (one line on stderr naming the file or flag).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssddbc._errors import SsddbcError
from ssddbc.data.feature_cache import convert_feature_cache

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m ssddbc.data.convert",
        description="Convert <SRC>/<superclass>/features.pkl files (the original research "
        "code's pickled feature cache) to features.npz, which loads without unpickling. "
        "Only convert files you created yourself: reading a pickle runs code from it.",
    )
    parser.add_argument("src", help="feature cache directory holding <superclass>/features.pkl")
    parser.add_argument("--dst", default=None, help="output cache directory (default: SRC)")
    parser.add_argument(
        "--superclasses",
        default=None,
        help="comma-separated superclass names (default: every folder with a features.pkl)",
    )
    args = parser.parse_args(argv)
    names = None
    if args.superclasses is not None:
        names = [s.strip() for s in args.superclasses.split(",") if s.strip()]
        if not names:
            print("error: --superclasses: no superclass name given", file=sys.stderr)
            return 2
    try:
        written = convert_feature_cache(args.src, args.dst, names)
    except SsddbcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    if not written:
        print(f"no features.pkl found under {args.src}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
