"""The original's ``ssddbc.data.dataset_config``: the CIFAR-100 superclass table as dicts.

Built from :data:`ssddbc.data.superclasses.SUPERCLASSES`, the one table of this package.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ssddbc._errors import InvalidInputError
from ssddbc.data.superclasses import KNOWN_CLASS_LIMIT, SUPERCLASSES

__all__ = [
    "CIFAR100_SUPERCLASS_CONFIG",
    "get_all_superclass_names",
    "get_superclass_info",
    "validate_superclass_name",
]

#: Superclass name -> CIFAR-100 class ids, in the original's order (read-only).
CIFAR100_SUPERCLASS_CONFIG: MappingProxyType[str, list[int]] = MappingProxyType(
    {name: list(sc.classes) for name, sc in SUPERCLASSES.items()}
)


def get_superclass_info(superclass_name: str) -> dict[str, Any]:
    """The original's description of one superclass.

    Returns
    -------
    dict
        ``name``; ``classes`` (CIFAR-100 ids, table order); ``known_classes`` /
        ``unknown_classes`` (ids below / from 80, table order); ``label_mapping`` (id ->
        target id, ascending ids -> 0..C-1); ``known_classes_mapped`` /
        ``unknown_classes_mapped`` (sets of target ids).

    Raises
    ------
    InvalidInputError
        An unknown name (a ``ValueError``, as in the original).
    """
    sc = SUPERCLASSES.get(superclass_name)
    if sc is None:
        raise InvalidInputError(
            "superclass_name",
            f"unknown superclass {superclass_name!r}; known: {', '.join(SUPERCLASSES)}",
        )
    classes = list(sc.classes)
    known = [c for c in classes if c < KNOWN_CLASS_LIMIT]
    unknown = [c for c in classes if c >= KNOWN_CLASS_LIMIT]
    mapping = sc.label_mapping
    return {
        "name": superclass_name,
        "classes": classes,
        "known_classes": known,
        "unknown_classes": unknown,
        "label_mapping": mapping,
        "known_classes_mapped": {mapping[c] for c in known},
        "unknown_classes_mapped": {mapping[c] for c in unknown},
    }


def get_all_superclass_names() -> list[str]:
    """The 15 superclass names, in the original's order."""
    return list(SUPERCLASSES)


def validate_superclass_name(superclass_name: str) -> bool:
    """Whether ``superclass_name`` is one of the 15 superclasses."""
    return superclass_name in SUPERCLASSES
