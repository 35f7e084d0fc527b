"""The selector registry: :class:`Selector` (a selection method that is not a plain score order), what it reads
(:class:`Context`) and :func:`register_selector`. Each selector lives in its own file of this package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from yoco.dynamics import Dynamics
from yoco.registry import Registry


@dataclass(frozen=True)
class PruneContext:
    """Where a selection happens, for options whose default depends on it (CCS's hard cut)."""

    dataset: str
    source_ipc: int
    target_ipc: int


@dataclass
class Context:
    """What a selector reads: float64 score columns, labels, its features, its resolved options, a generator."""

    scores: dict[str, torch.Tensor]
    labels: torch.Tensor
    features: torch.Tensor | None
    options: dict[str, Any]
    generator: torch.Generator
    seed: int


SelectFn = Callable[[torch.Tensor, int, Context], torch.Tensor]


@dataclass(frozen=True)
class Selector:
    """A selection method that is not a plain score order.

    ``fn(group_indices, budget, context)`` picks ``budget`` distinct indices among ``group_indices`` (all images
    for an imbalanced rule, one class for a balanced one). ``columns`` are the score columns it reads;
    ``prepare(dynamics)`` makes the per-image features it needs (stored in the score table under the selector's
    name); ``options`` are its own options with their defaults, and ``resolve(options, where)`` fills the ones
    whose default depends on the dataset and the IPCs. ``version`` is raised when ``prepare``'s numbers change.
    """

    name: str
    fn: SelectFn
    columns: tuple[str, ...] = ()
    prepare: Callable[[Dynamics], torch.Tensor] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    resolve: Callable[[dict[str, Any], PruneContext], dict[str, Any]] | None = None
    check: Callable[[dict[str, Any]], None] | None = None
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    version: int = 1


SELECTORS: Registry[Selector] = Registry("selector")


def register_selector(
    name: str, *, columns: Sequence[str] = (), prepare: Callable[[Dynamics], torch.Tensor] | None = None,
    options: Mapping[str, Any] | None = None,
    resolve: Callable[[dict[str, Any], PruneContext], dict[str, Any]] | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
    version: int = 1,
) -> Callable[[SelectFn], SelectFn]:
    """Decorator registering ``fn(group_indices, budget, context) -> chosen indices`` as the rule ``name``.

    ``choices`` lists the values an option may take (checked before any selection, and shown in ``--help``).
    """

    def add(fn: SelectFn) -> SelectFn:
        SELECTORS.add(name, Selector(name, fn, tuple(columns), prepare, dict(options or {}), resolve, check,
                                     {k: tuple(v) for k, v in (choices or {}).items()}, version),
                      description=((fn.__doc__ or "").strip().splitlines() or [""])[0])
        return fn

    return add
