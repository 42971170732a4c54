"""The SS-DDBC options that stay fixed across a grid search: one table, one validation.

:data:`PARAMETERS` is the single source of the algorithm's defaults, allowed values and help
texts. :class:`AlgorithmParams` validates against it when constructed, so a bad option is
refused before any work; :func:`add_algorithm_arguments` generates the command-line flags of
every front end (``ssddbc-search``, ``python -m ssddbc.testing.test_superclass``) from it, and
:meth:`AlgorithmParams.from_namespace` reads them back. Adding an option means adding one row
here and one field to :class:`AlgorithmParams`.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from ssddbc._errors import InvalidInputError

__all__ = ["PARAMETERS", "AlgorithmParams", "ParamSpec", "add_algorithm_arguments"]


@dataclass(frozen=True)
class ParamSpec:
    """One algorithm option: its flag type, default, allowed values and help text."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[int, ...] | None = None


#: The table. ``adaptive_density_clustering``'s keyword defaults equal these (tested).
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "dense_method",
        int,
        1,
        "density: 0 mean, 1 median, 2 normalised, 3 exponential",
        (0, 1, 2, 3),
    ),
    ParamSpec(
        "co_mode",
        int,
        2,
        "cutoff distance: 1 --co_manual, 2 mean k-NN distance, 3 per-point relative",
        (1, 2, 3),
    ),
    ParamSpec("co_manual", float, None, "cutoff for --co_mode 1 (finite, >= 0)"),
    ParamSpec(
        "assign_model",
        int,
        3,
        "sparse-point assignment: 1 nearest cluster mean, 2 vote of --voting_k core points, "
        "3 mean distance to each cluster's 3 nearest members",
        (1, 2, 3),
    ),
    ParamSpec("voting_k", int, 5, "voters for --assign_model 2 (>= 1)"),
)
_SPEC = {p.name: p for p in PARAMETERS}


def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(name, f"expected an integer, got {value!r}")
    if value < lo:
        raise InvalidInputError(name, f"expected an integer >= {lo}, got {value!r}")


@dataclass(frozen=True)
class AlgorithmParams:
    """The SS-DDBC options that stay fixed across one grid search, validated on creation.

    Parameters
    ----------
    dense_method : {0, 1, 2, 3}
        Density estimate (see :data:`PARAMETERS`).
    co_mode : {1, 2, 3}
        Cutoff distance mode.
    co_manual : float or None
        The cutoff for ``co_mode=1`` (required there; finite and non-negative).
    assign_model : {1, 2, 3}
        Sparse-point assignment strategy.
    voting_k : int
        Voters for ``assign_model=2``; at least 1.

    Raises
    ------
    InvalidInputError
        Any option outside its allowed values, naming it.
    """

    dense_method: int = 1
    co_mode: int = 2
    co_manual: float | None = None
    assign_model: int = 3
    voting_k: int = 5

    def __post_init__(self) -> None:
        for spec in PARAMETERS:
            value = getattr(self, spec.name)
            if spec.choices is not None:
                if (
                    isinstance(value, bool)
                    or not isinstance(value, numbers.Integral)
                    or value not in spec.choices
                ):
                    raise InvalidInputError(
                        spec.name, f"expected one of {list(spec.choices)}, got {value!r}"
                    )
                object.__setattr__(self, spec.name, int(value))
        _check_int("voting_k", self.voting_k, 1)
        object.__setattr__(self, "voting_k", int(self.voting_k))
        if self.co_manual is not None:
            bad = isinstance(self.co_manual, bool) or not isinstance(self.co_manual, numbers.Real)
            if bad or not math.isfinite(float(self.co_manual)) or float(self.co_manual) < 0:
                raise InvalidInputError(
                    "co_manual", f"expected a finite number >= 0, got {self.co_manual!r}"
                )
            object.__setattr__(self, "co_manual", float(self.co_manual))
        if self.co_mode == 1 and self.co_manual is None:
            raise InvalidInputError("co_manual", "required with co_mode 1")

    def as_dict(self) -> dict[str, Any]:
        """The options as a plain JSON-able dict (what ``config.json`` records)."""
        return asdict(self)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``adaptive_density_clustering``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> AlgorithmParams:
        """Rebuild from :meth:`as_dict` output; unknown or missing keys are an error."""
        if not isinstance(raw, dict):
            raise InvalidInputError("params", f"expected a mapping, got {raw!r}")
        names = {f.name for f in fields(cls)}
        if set(raw) != names:
            raise InvalidInputError(
                "params", f"expected the keys {sorted(names)}, got {sorted(map(str, raw))}"
            )
        return cls(**raw)

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> AlgorithmParams:
        """Read the flags :func:`add_algorithm_arguments` added (None means the default)."""
        given = {
            p.name: getattr(args, p.name)
            for p in PARAMETERS
            if getattr(args, p.name, None) is not None
        }
        return cls(**given)


def add_algorithm_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Add one ``--<name>`` flag per row of :data:`PARAMETERS` to ``parser``.

    Every flag defaults to None (so a front end can tell "given" from "not given"); the
    table's default is shown in the help and applied by :meth:`AlgorithmParams.from_namespace`.

    Returns
    -------
    list of str
        The destination names added.
    """
    group = parser.add_argument_group("algorithm options")
    for spec in PARAMETERS:
        shown = "none" if spec.default is None else spec.default
        kwargs: dict[str, Any] = {
            "type": spec.type,
            "default": None,
            "help": f"{spec.help} [{shown}]",
        }
        if spec.choices is not None:
            kwargs["choices"] = spec.choices
        group.add_argument(f"--{spec.name}", **kwargs)
    return [p.name for p in PARAMETERS]
