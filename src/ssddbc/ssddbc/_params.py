"""The SS-DDBC options: one table of defaults, allowed values and help texts.

:data:`PARAMETERS` (the options fixed across a grid search) and :data:`CALL_PARAMETERS`
(``k``, ``density_percentile``, ``metric``) are the only place the algorithm's defaults and
constraints are written. Every front end is generated from them: :class:`AlgorithmParams`
validates with :meth:`ParamSpec.check`, :func:`add_algorithm_arguments` builds the command-line
flags, the estimators build their ``_parameter_constraints`` from the same rows, and the
function signatures take their defaults from :data:`DEFAULTS` and :data:`SPECS`.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from ssddbc._errors import InvalidInputError
from ssddbc._metric import METRICS

__all__ = [
    "CALL_PARAMETERS",
    "DEFAULTS",
    "PARAMETERS",
    "SPECS",
    "AlgorithmParams",
    "ParamSpec",
    "add_algorithm_arguments",
]


@dataclass(frozen=True)
class ParamSpec:
    """One option: its type, default, allowed values and help text.

    ``choices`` lists the allowed values (numbers, or strings for ``metric``); ``names``
    gives each numbered choice a name (same order), accepted wherever the number is
    (``--dense_method median`` is ``--dense_method 1``); the number is what is stored.
    Otherwise the value must be a ``type`` in ``[low, high]`` (bounds optional, inclusive),
    finite when a float, or None when ``optional``.
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    names: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    optional: bool = False

    def by_name(self) -> dict[str, int]:
        """``{name: number}`` of the named choices (empty when unnamed)."""
        return dict(zip(self.names or (), self.choices or (), strict=True))

    def shown_default(self) -> str:
        """The default as the help shows it (its name when it has one)."""
        if self.default is None:
            return "none"
        for name, number in self.by_name().items():
            if number == self.default:
                return f"{name} ({number})"
        return str(self.default)

    def check(self, value: Any) -> Any:
        """Return ``value`` normalised (a name resolved, an int or float), or raise.

        Raises
        ------
        InvalidInputError
            ``value`` is not allowed by this row, naming the option.
        """
        if value is None and self.optional:
            return None
        if self.choices is not None:
            if isinstance(value, str) and value in self.by_name():
                value = self.by_name()[value]
            if self.type is str:
                ok = isinstance(value, str) and value in self.choices
            else:
                ok = not isinstance(value, (bool, str)) and isinstance(value, numbers.Integral)
                ok = ok and value in self.choices
            if not ok:
                allowed = [*self.choices, *self.by_name()]
                raise InvalidInputError(self.name, f"expected one of {allowed}, got {value!r}")
            return value if self.type is str else int(value)
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InvalidInputError(self.name, f"expected an integer, got {value!r}")
            out: float = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidInputError(self.name, f"expected a number, got {value!r}")
            out = float(value)
        low_ok = self.low is None or out >= self.low
        high_ok = self.high is None or out <= self.high
        if not (math.isfinite(out) and low_ok and high_ok):
            raise InvalidInputError(self.name, f"expected {self.describe()}, got {value!r}")
        return out

    def describe(self) -> str:
        """The allowed values in words (``"an integer >= 1"``)."""
        kind = "an integer" if self.type is int else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} in [{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{kind} >= {self.low:g}"
        return kind


#: The options fixed across a grid search (its command-line flags and ``config.json``).
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "dense_method",
        int,
        1,
        "density: 0 mean, 1 median, 2 normalised, 3 exponential",
        (0, 1, 2, 3),
        ("mean", "median", "normalised", "exponential"),
    ),
    ParamSpec(
        "co_mode",
        int,
        2,
        "cutoff distance: 1 manual (--co_manual), 2 mean k-NN distance, 3 per-point relative",
        (1, 2, 3),
        ("manual", "mean", "relative"),
    ),
    ParamSpec(
        "co_manual", float, None, "cutoff for --co_mode 1 (finite, >= 0)", low=0, optional=True
    ),
    ParamSpec(
        "assign_model",
        int,
        3,
        "sparse-point assignment: 1 centroid (nearest cluster mean), 2 vote (of --voting_k "
        "core points), 3 nearest3 (mean distance to each cluster's 3 nearest members)",
        (1, 2, 3),
        ("centroid", "vote", "nearest3"),
    ),
    ParamSpec("voting_k", int, 5, "voters for --assign_model 2 (>= 1)", low=1),
)

#: The options of one call: the grid's two axes and the metric of the features.
CALL_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("k", int, 10, "neighbours for the densities (1 <= k < N)", low=1),
    ParamSpec(
        "density_percentile",
        float,
        75,
        "relative-density percentile of the high-density set",
        low=0,
        high=100,
    ),
    ParamSpec("metric", str, "euclidean", "distance between features", METRICS),
)

#: Every row by name.
SPECS: dict[str, ParamSpec] = {p.name: p for p in (*CALL_PARAMETERS, *PARAMETERS)}


@dataclass(frozen=True)
class AlgorithmParams:
    """The SS-DDBC options that stay fixed across one grid search, validated on creation.

    Parameters
    ----------
    dense_method : {0, 1, 2, 3}
        Density estimate (see :data:`PARAMETERS`). Every option with named choices also
        takes the name (``dense_method="median"``); the number is stored.
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

    dense_method: int = SPECS["dense_method"].default
    co_mode: int = SPECS["co_mode"].default
    co_manual: float | None = SPECS["co_manual"].default
    assign_model: int = SPECS["assign_model"].default
    voting_k: int = SPECS["voting_k"].default

    def __post_init__(self) -> None:
        for spec in PARAMETERS:
            object.__setattr__(self, spec.name, spec.check(getattr(self, spec.name)))
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


#: The table's defaults as an object (``dense_method: int = DEFAULTS.dense_method``).
DEFAULTS = AlgorithmParams()


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
        kwargs: dict[str, Any] = {
            "type": spec.type if spec.choices is None else _choice_type(spec),
            "default": None,
            "help": f"{spec.help} (default: {spec.shown_default()})",
        }
        if spec.choices is not None:
            kwargs["choices"] = spec.choices
            kwargs["metavar"] = "{" + ",".join([*spec.by_name(), *map(str, spec.choices)]) + "}"
        group.add_argument(f"--{spec.name}", **kwargs)
    return [p.name for p in PARAMETERS]


def _choice_type(spec: ParamSpec) -> Any:
    """argparse ``type=`` of a choice flag: a name of the table or the number itself."""

    def convert(text: str) -> int:
        named = spec.by_name()
        if text in named:
            return named[text]
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(named)} or "
                f"{', '.join(map(str, spec.choices or ()))})"
            ) from None

    convert.__name__ = spec.name
    return convert
