"""Recipes: which class goes to which output fraction, and how sure we must be.

A recipe is TOML data, validated strictly (unknown keys refused)::

    name = "default"
    version = 1
    pass_fraction = "pass"          # where everything not targeted goes
    co_ejection_tolerance = 0.15    # share of a neighbour's footprint the air may touch
    prefer = "balanced"             # "purity" | "balanced" | "recovery": see below
    pool_classes = true             # a fraction's classes pool their probability: see below

    [fractions]                     # fraction -> actuator: 0 = valve bar, 1.. diverter flaps
    eject = 0

    [classes.copper]                # classes not listed pass through with priority 0
    fraction = "eject"
    threshold = 0.5                 # combined class probability needed to act
    priority = 10                   # who wins when two fragments compete; battery always wins

``load_recipe("builtin:default", class_names)`` reads ``control/recipes/default.toml``.
Classes are named, never indexed; a recipe naming a class the model does not
know is refused.

``prefer`` is the purity-versus-recovery trade-off, one setting as on
commercial sorters, for a target whose air would touch a neighbour of another
fraction beyond ``co_ejection_tolerance``: ``"balanced"`` aims the air at the
part of the target clear of the neighbour (fewer valves, a shorter window)
when enough of the target stays under air, else the higher priority decides;
``"purity"`` aims the same way but leaves the target when aiming cannot work;
``"recovery"`` keeps the full window and lets the priority decide (the rule
before aiming existed). A battery is always ejected.

``pool_classes`` (default true): a fragment goes where it belongs, not where
one class says. The first class by priority whose probability meets its
threshold decides; when none does, a class's *pool* may: the probability of
all the classes of its fraction that ask no more certainty than it (itself
included). A piece the classifier calls copper 0.45 and brass 0.40 is red
metal at 0.85: with a recipe sending both to "eject" at 0.5 it is ejected
(as copper, the first by priority), where per class it passed. A class with
a lower threshold (battery at 0.3) still needs its own probability to act on
its own terms; it only adds to the pools of the stricter classes of its
fraction. ``false``: per class only (before session 14).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import InputFileError, model_from_data, parse_toml, read_toml

__all__ = ["BATTERY", "Recipe", "RecipeFile", "class_pools", "load_recipe"]

BATTERY = "battery"
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
_NAME = r"^[A-Za-z0-9_.-]{1,32}$"


class ClassRule(BaseModel):
    model_config = _STRICT

    fraction: str | None = Field(None, pattern=_NAME, description="None: the pass fraction")
    threshold: float = Field(0.5, ge=0.0, le=1.0, strict=False)
    priority: int = Field(0, ge=0, le=1000)


class RecipeFile(BaseModel):
    """The TOML file, as written."""

    model_config = _STRICT

    name: str = Field(pattern=_NAME)
    version: int = Field(ge=1)
    description: str = ""
    pass_fraction: str = Field("pass", pattern=_NAME)
    co_ejection_tolerance: float = Field(0.15, ge=0.0, le=1.0, strict=False)
    prefer: Literal["purity", "balanced", "recovery"] = "balanced"
    pool_classes: bool = True
    fractions: dict[str, int] = Field(min_length=1)
    classes: dict[str, ClassRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> RecipeFile:
        if self.pass_fraction in self.fractions:
            raise ValueError(f"pass fraction {self.pass_fraction!r} must not have an actuator")
        for frac, act in self.fractions.items():
            if not 0 <= act <= 64:
                raise ValueError(f"fraction {frac!r}: actuator {act} outside 0..64")
        diverters = [a for a in self.fractions.values() if a > 0]
        if len(diverters) != len(set(diverters)):
            raise ValueError("two fractions share one diverter flap")
        for cls, rule in self.classes.items():
            to = rule.fraction
            if to is not None and to not in self.fractions and to != self.pass_fraction:
                raise ValueError(f"class {cls!r}: unknown fraction {rule.fraction!r}")
        return self


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated recipe bound to a model's class list (arrays indexed by class id).

    fraction_names:     (F,) output fractions with an actuator, index = fraction id.
    class_fraction:     (K,) int16 fraction id per class, -1 = pass through.
    threshold:          (K,) float64 combined probability needed to act.
    priority:           (K,) int64; battery is raised above every other class.
    fraction_actuator:  (F,) int16 actuator per fraction (0 = valve bar).
    pool:               (K, K) bool, row c: the classes whose probability counts
                        for c when no class meets its own threshold (c's
                        fraction, threshold <= c's); all False without
                        ``pool_classes``.
    """

    name: str
    version: int
    source: str
    class_names: tuple[str, ...]
    pass_fraction: str
    fraction_names: tuple[str, ...]
    class_fraction: np.ndarray
    threshold: np.ndarray
    priority: np.ndarray
    fraction_actuator: np.ndarray
    pool: np.ndarray
    pool_classes: bool
    co_ejection_tolerance: float
    prefer: Literal["purity", "balanced", "recovery"] = "balanced"

    def targets(self) -> dict[str, str]:
        """Class name -> fraction name, targeted classes only."""
        return {
            name: self.fraction_names[f]
            for name, f in zip(self.class_names, self.class_fraction.tolist(), strict=True)
            if f >= 0
        }

    @property
    def battery_id(self) -> int:
        """Class id of ``battery`` in the model's list, -1 when it has none."""
        return self.class_names.index(BATTERY) if BATTERY in self.class_names else -1

    @property
    def n_diverters(self) -> int:
        return int(self.fraction_actuator.max(initial=0))


def _bind(spec: RecipeFile, class_names: Sequence[str], source: str) -> Recipe:
    names = tuple(class_names)
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"model class list {names!r} is empty or has duplicates")
    for cls in spec.classes:
        if cls not in names:
            raise InputFileError(
                source, f"class {cls!r} is not known to the model {list(names)}", f"classes.{cls}"
            )
    fraction_names = tuple(spec.fractions)
    k = len(names)
    class_fraction = np.full(k, -1, np.int16)
    threshold = np.full(k, 0.5, np.float64)
    priority = np.zeros(k, np.int64)
    for cls, rule in spec.classes.items():
        i = names.index(cls)
        if rule.fraction is not None and rule.fraction != spec.pass_fraction:
            class_fraction[i] = fraction_names.index(rule.fraction)
        threshold[i] = rule.threshold
        priority[i] = rule.priority
    if BATTERY in names:  # battery always wins: above every other class
        priority[names.index(BATTERY)] = int(priority.max()) + 1
    pool = class_pools(class_fraction, threshold) if spec.pool_classes else np.zeros((k, k), bool)
    for arr in (class_fraction, threshold, priority, pool):
        arr.setflags(write=False)
    actuators = np.array([spec.fractions[f] for f in fraction_names], np.int16)
    actuators.setflags(write=False)
    return Recipe(
        name=spec.name,
        version=spec.version,
        source=source,
        class_names=names,
        pass_fraction=spec.pass_fraction,
        fraction_names=fraction_names,
        class_fraction=class_fraction,
        threshold=threshold,
        priority=priority,
        fraction_actuator=actuators,
        co_ejection_tolerance=spec.co_ejection_tolerance,
        prefer=spec.prefer,
        pool=pool,
        pool_classes=spec.pool_classes,
    )


def class_pools(class_fraction: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """(K, K) bool: row c holds the targeted classes of c's fraction whose threshold
    is at most c's (c itself included); rows of pass-through classes are empty."""
    frac = np.asarray(class_fraction, np.int64)
    thr = np.asarray(threshold, np.float64)
    same = (frac[:, None] == frac[None, :]) & (frac[:, None] >= 0)
    return same & (thr[None, :] <= thr[:, None])


def _builtin_text(name: str) -> tuple[str, str]:
    source = f"builtin:{name}"
    try:
        text = resources.files("control.recipes").joinpath(f"{name}.toml").read_text("utf-8")
    except (FileNotFoundError, ValueError):
        raise InputFileError(source, "no such built-in recipe") from None
    return text, source


def load_recipe(path_or_builtin: str | Path, class_names: Sequence[str]) -> Recipe:
    """Read and validate a recipe; ``"builtin:NAME"`` names one shipped in ``control/recipes``.

    Raises ``core.errors.InputFileError`` (one line: file, field, what is wrong).
    """
    if isinstance(path_or_builtin, str) and path_or_builtin.startswith("builtin:"):
        text, source = _builtin_text(path_or_builtin.removeprefix("builtin:"))
        data = parse_toml(text, source)
    else:
        source = str(path_or_builtin)
        data = read_toml(path_or_builtin)
    return _from_data(data, source, class_names)


def parse_recipe(text: str, source: str, class_names: Sequence[str]) -> Recipe:
    """A recipe from TOML text (e.g. sent to the status API); ``source`` names it
    in errors, which are the same one-line ``InputFileError`` as ``load_recipe``'s."""
    return _from_data(parse_toml(text, source), source, class_names)


def _from_data(data: dict[str, Any], source: str, class_names: Sequence[str]) -> Recipe:
    spec = model_from_data(RecipeFile, data, source)
    return _bind(spec, class_names, source)
