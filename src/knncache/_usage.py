"""``IN_USE``: which entries this process uses (never evicted by it) and which ephemeral
store roots it closed (their refs raise ``StoreClosedError``)."""

from __future__ import annotations

__all__: list[str] = []


class InUse:
    """The one owner of "in use" in this process.

    Stores and refs record an entry when they hand it out or map it (``add``); ``release``
    and removals drop it (``discard``); eviction skips what ``contains`` reports. Closing an
    ephemeral store drops its entries and marks its root closed (``close_root``).

    Plain sets, no lock: each update is atomic under the GIL, and a forked child cannot
    inherit a held lock.
    """

    def __init__(self) -> None:
        self._entries: set[tuple[str, str]] = set()
        self._closed_roots: set[str] = set()

    def add(self, root: str, fp: str) -> None:
        """Record that this process uses entry ``fp`` of the store at ``root``."""
        self._entries.add((root, fp))

    def discard(self, root: str, fp: str) -> None:
        """Forget entry ``fp`` of ``root`` (released, or removed)."""
        self._entries.discard((root, fp))

    def contains(self, root: str, fp: str) -> bool:
        """Whether this process uses entry ``fp`` of ``root``."""
        return (root, fp) in self._entries

    def close_root(self, root: str) -> None:
        """An ephemeral store at ``root`` was closed: forget its entries, mark it closed."""
        self._closed_roots.add(root)
        for key in [key for key in list(self._entries) if key[0] == root]:
            self._entries.discard(key)

    def is_closed(self, root: str) -> bool:
        """Whether an ephemeral store at ``root`` was closed in this process."""
        return root in self._closed_roots


#: The process's registry (one per process; a forked child starts with a copy).
IN_USE = InUse()
