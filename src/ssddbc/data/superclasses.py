"""The 15 custom CIFAR-100 superclasses of the original research.

Each superclass regroups CIFAR-100 fine classes (ids 0-99). A class is *known* when its
CIFAR-100 id is below 80, *novel* otherwise. Inside a superclass the classes are renumbered
0..C-1 in ascending order of their CIFAR-100 ids (the original's ``label_mapping``), so the
known classes always come first.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["KNOWN_CLASS_LIMIT", "SUPERCLASSES", "Superclass"]

#: CIFAR-100 ids below this are known classes (the GCD convention: 80 known, 20 novel).
KNOWN_CLASS_LIMIT = 80


@dataclass(frozen=True)
class Superclass:
    """One superclass: its CIFAR-100 classes and their known/novel split.

    Attributes
    ----------
    name : str
    classes : tuple of int
        CIFAR-100 fine-class ids, in the order the original lists them.
    """

    name: str
    classes: tuple[int, ...]

    @property
    def known_classes(self) -> tuple[int, ...]:
        """CIFAR-100 ids of the known classes (id < 80), ascending."""
        return tuple(sorted(c for c in self.classes if c < KNOWN_CLASS_LIMIT))

    @property
    def novel_classes(self) -> tuple[int, ...]:
        """CIFAR-100 ids of the novel classes (id >= 80), ascending."""
        return tuple(sorted(c for c in self.classes if c >= KNOWN_CLASS_LIMIT))

    @property
    def n_known(self) -> int:
        """Number of known classes."""
        return len(self.known_classes)

    @property
    def n_novel(self) -> int:
        """Number of novel classes."""
        return len(self.novel_classes)

    @property
    def label_mapping(self) -> dict[int, int]:
        """CIFAR-100 id → target id inside the superclass (ascending ids → 0..C-1)."""
        return {c: i for i, c in enumerate(sorted(self.classes))}


# fmt: off
_TABLE: dict[str, tuple[int, ...]] = {
    "trees": (47, 52, 56, 59, 96),
    "flowers": (54, 62, 70, 82, 92),
    "fruits_vegetables": (0, 51, 53, 57, 83),
    "mammals": (
        3, 4, 21, 31, 34, 36, 38, 43, 50, 55, 63, 64, 65, 66, 72, 74, 75, 15, 19, 42,
        80, 88, 97,
    ),
    "marine_animals": (1, 26, 27, 30, 32, 45, 67, 73, 95, 91),
    "insects_arthropods": (6, 7, 14, 24, 77, 18, 79, 99),
    "reptiles": (44, 78, 29, 93),
    "humans": (11, 35, 46, 2, 98),
    "furniture": (5, 20, 25, 84, 94),
    "containers": (16, 9, 10, 28, 61),
    "vehicles": (8, 13, 48, 58, 69, 81, 85, 89, 90),
    "electronic_devices": (22, 39, 40, 41, 86, 87),
    "buildings": (12, 17, 37, 76),
    "terrain": (33, 49, 60, 68, 71),
    "weather_phenomena": (23,),
}
# fmt: on

#: name → :class:`Superclass`, in the original's order (read-only).
SUPERCLASSES: MappingProxyType[str, Superclass] = MappingProxyType(
    {name: Superclass(name, classes) for name, classes in _TABLE.items()}
)
