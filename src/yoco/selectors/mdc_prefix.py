"""``mdc_prefix``: an MDC set cut by its own order (He et al., "Multisize Dataset Condensation", ICLR 2024).

MDC condenses so that the subset "IPC k" of every class, its first ``k * f**2`` decoded images in IDC's crop-major
decoded order (``condense_reg.py:505-512``), is a good set by itself; its code evaluates the subsets so
(``test.py:474-504``, ``Cx_Cy``: the first ``ipcy * f**2`` decoded images of each class). This rule keeps exactly
those images, per class, so a ladder compares "MDC's subsets" with YOCO's rule on the same set. It reads neither
scores nor features, only the set's metadata (``extra["nested_subsets"]``, written by ``yoco condense --method mdc``),
and refuses a set without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from yoco.errors import YocoError
from yoco.protocol import MDC_NESTED_ORDER
from yoco.selectors.base import Context, register_selector


def check_mdc_set(meta: Mapping[str, Any]) -> None:
    """Refuse a set whose metadata is not that of an MDC set as MDC made it (no nested record, or pruned since)."""
    name = meta.get("source") or "the set"
    nested = (meta.get("extra") or {}).get("nested_subsets")
    if not isinstance(nested, dict) or nested.get("order") != MDC_NESTED_ORDER:
        raise YocoError(f"mdc_prefix: {name} is not an MDC set (its metadata records no nested subsets); only a set "
                        "made by `yoco condense --method mdc` has them")
    ipc, factor = meta.get("ipc"), meta.get("factor")
    if nested.get("ipc") != ipc or not isinstance(ipc, int) or not isinstance(factor, int) or factor < 1:
        raise YocoError(f"mdc_prefix: {name} holds IPC {ipc} at factor {factor}, not the IPC {nested.get('ipc')} set "
                        "MDC made (pruned or changed since); cut the MDC set itself")


@register_selector("mdc_prefix", default_balance="balance", check_set=check_mdc_set)
def _mdc_prefix(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """MDC's own subsets of an MDC set: per class, the decoded images its subset of the target IPC holds.

    Images are taken in order of their position in their class's crop-major order (ties, across classes, to the
    lower index), so the imbalanced variant keeps the same images as the balanced one: the first ``n`` of every class.
    """
    key = nested_positions(ctx)[members]
    return members[torch.sort(key, stable=True).indices[:budget]]


def nested_positions(ctx: Context) -> torch.Tensor:
    """Every decoded image's position in its class's crop-major order: tile ``t`` of the class's ``r``-th stored image
    (yoco's decoded index ``i * f**2 + t``) is at ``t * ipc + r``. Refuses a set that is not an MDC set as made."""
    meta = dict(ctx.set_meta or {})
    check_mdc_set(meta)
    name, ipc, factor = meta.get("source") or "the set", meta["ipc"], meta["factor"]
    f2 = factor * factor
    labels = ctx.labels
    stored = labels[::f2]
    if len(labels) != len(stored) * f2 or not torch.equal(labels, stored.repeat_interleave(f2)):
        raise YocoError(f"mdc_prefix: {name}'s decoded labels do not come in blocks of {f2} (factor {factor})")
    counts = torch.bincount(stored)
    if bool((counts[counts > 0] != ipc).any()):
        raise YocoError(f"mdc_prefix: {name} does not hold {ipc} stored images in every class")
    rank = torch.empty_like(stored)
    for c in torch.unique(stored):
        where = (stored == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    j = torch.arange(len(labels))
    return (j % f2) * ipc + rank[j // f2]
