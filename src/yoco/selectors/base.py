"""The selector registry: :class:`Selector` (a selection method that is not a plain score order), what it reads
(:class:`Context`) and :func:`register_selector`; and the feature registry: :class:`Feature`, a per-image
feature prepared once from the dynamics into the score table and shared by every selector that names it
(:func:`register_feature`). Each selector lives in its own file of this package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from yoco.dynamics import Dynamics
from yoco.registry import Registry

PrepareFn = Callable[[Dynamics], torch.Tensor]


@dataclass(frozen=True)
class PruneContext:
    """Where a selection happens, for options whose default depends on it (CCS's hard cut)."""

    dataset: str
    source_ipc: int
    target_ipc: int


@dataclass
class Context:
    """What a selector reads: float64 score columns, labels, its features, its resolved options, a generator,
    the seed, the rule's direction (``"easy"``/``"hard"`` for a selector that takes one, else None), and, when the
    selection is of a condensed set (:func:`yoco.rules.prune`), that set's metadata as it is stored
    (``CondensedMeta.to_dict()`` and ``source``), for a selector that reads the set's own order."""

    scores: dict[str, torch.Tensor]
    labels: torch.Tensor
    features: torch.Tensor | None
    options: dict[str, Any]
    generator: torch.Generator
    seed: int
    direction: str | None = None
    set_meta: Mapping[str, Any] | None = None


SelectFn = Callable[[torch.Tensor, int, Context], torch.Tensor]


@dataclass(frozen=True)
class Feature:
    """A per-image feature made once per score table from the dynamics, ``prepare(dynamics) -> [N, ...]``.

    The score table stores it under ``name``; every selector that names it reads the same tensor. ``version`` is
    raised when ``prepare``'s numbers change (tables holding the older one compute it again); ``formerly`` are the
    names older tables stored it under (read as this feature).
    """

    name: str
    prepare: PrepareFn
    version: int = 1
    formerly: tuple[str, ...] = ()


FEATURES: Registry[Feature] = Registry("feature")


def register_feature(name: str, *, version: int = 1, formerly: Sequence[str] = ()) -> Callable[[PrepareFn], PrepareFn]:
    """Decorator registering ``prepare(dynamics) -> [N, ...]`` as the shared feature ``name``."""

    def add(fn: PrepareFn) -> PrepareFn:
        FEATURES.add(name, Feature(name, fn, version, tuple(formerly)), aliases=tuple(formerly))
        return fn

    return add


@dataclass(frozen=True)
class Selector:
    """A selection method that is not a plain score order.

    ``fn(group_indices, budget, context)`` picks ``budget`` distinct indices among ``group_indices`` (all images
    for an imbalanced rule, one class for a balanced one). ``columns`` are the score columns it reads;
    ``feature`` names the shared :class:`Feature` it reads, or ``prepare(dynamics)`` makes a feature of its own
    (stored in the score table under the selector's name, ``version`` raised when its numbers change);
    ``options`` are its own options with their defaults, and ``resolve(options, where)`` fills the ones whose
    default depends on the dataset and the IPCs. A ``directional`` selector orders images and takes a rule's
    ``easy``/``hard`` direction (``default_direction`` when the rule names none), passed in ``Context.direction``.
    ``default_balance`` is the class handling of a rule named without one (imbalanced, as the published baselines,
    unless the method is per class by nature). ``check_set(set_meta)`` refuses, before any work, a set the method
    cannot select from (``mdc_prefix`` on a set that is not MDC's). ``epochs_option`` names the option that says how
    many of the dynamics' first epochs the method reads (TDDS's T, DUAL's T), so a ladder whose dynamics record fewer
    is refused before it records them.
    """

    name: str
    fn: SelectFn
    columns: tuple[str, ...] = ()
    prepare: PrepareFn | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    resolve: Callable[[dict[str, Any], PruneContext], dict[str, Any]] | None = None
    check: Callable[[dict[str, Any]], None] | None = None
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    version: int = 1
    feature: str | None = None
    directional: bool = False
    default_direction: str = "hard"
    default_balance: str = "imbalance"
    check_set: Callable[[Mapping[str, Any]], None] | None = None
    epochs_option: str | None = None

    @property
    def feature_name(self) -> str | None:
        """The score-table feature this selector reads: the shared one it names, its own, or None."""
        return self.feature or (self.name if self.prepare is not None else None)


SELECTORS: Registry[Selector] = Registry("selector")


def register_selector(
    name: str, *, columns: Sequence[str] = (), prepare: PrepareFn | None = None, feature: str | None = None,
    options: Mapping[str, Any] | None = None,
    resolve: Callable[[dict[str, Any], PruneContext], dict[str, Any]] | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    version: int = 1, directional: bool = False, default_direction: str = "hard", default_balance: str = "imbalance",
    check_set: Callable[[Mapping[str, Any]], None] | None = None, epochs_option: str | None = None,
) -> Callable[[SelectFn], SelectFn]:
    """Decorator registering ``fn(group_indices, budget, context) -> chosen indices`` as the rule ``name``.

    ``feature`` names a shared feature (:func:`register_feature`); ``prepare`` gives the selector a feature of its
    own instead. ``choices`` lists the values an option may take (checked before any selection, and shown in
    ``--help``).
    """
    if prepare is not None and feature is not None:
        raise ValueError(f"selector {name!r}: give a shared feature or a prepare function, not both")
    if default_direction not in ("easy", "hard"):
        raise ValueError(f"selector {name!r}: default_direction must be easy or hard")
    if default_balance not in ("balance", "imbalance"):
        raise ValueError(f"selector {name!r}: default_balance must be balance or imbalance")

    def add(fn: SelectFn) -> SelectFn:
        SELECTORS.add(name, Selector(name, fn, tuple(columns), prepare, dict(options or {}), resolve, check,
                                     {k: tuple(v) for k, v in (choices or {}).items()}, version, feature,
                                     directional, default_direction, default_balance, check_set, epochs_option),
                      description=((fn.__doc__ or "").strip().splitlines() or [""])[0])
        return fn

    return add


def whole_option(value: Any) -> bool:
    """Whether a selector option's value is a whole number (an ``int``, not a ``bool``), for options' checks."""
    return isinstance(value, int) and not isinstance(value, bool)


def features() -> dict[str, Feature]:
    """Every feature a score table holds: the shared ones, then each selector's own (``prepare=``)."""
    out = {name: FEATURES.get(name) for name in FEATURES.names()}
    for name in SELECTORS.names():
        sel = SELECTORS.get(name)
        if sel.prepare is not None:
            out[name] = Feature(name, sel.prepare, sel.version)
    return out


def get_feature(name: str) -> Feature:
    """The feature stored as ``name`` (or a former name of it); an unknown name is a :class:`YocoError`."""
    if name not in FEATURES and name in SELECTORS and SELECTORS.get(name).prepare is not None:
        sel = SELECTORS.get(name)
        return Feature(name, sel.prepare, sel.version)
    return FEATURES.get(name)


def canonical_feature(name: str) -> str:
    """The current name of a feature stored as ``name`` (a table made before features were shared holds SSP's
    embeddings as ``ssp``); names no feature knows are returned as they are."""
    return FEATURES.canonical(name) if name in FEATURES else name
