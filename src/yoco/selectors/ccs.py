"""``ccs``: coverage-centric coreset selection on EL2N (Zheng et al., ICLR 2023), as YOCO's code runs it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from yoco import protocol
from yoco.errors import YocoError
from yoco.protocol import CCS_DEFAULT_HARD_CUT, CCS_PICK, CCS_PICKS, CCS_STRATA, CCS_TOP
from yoco.selectors.base import Context, PruneContext, register_selector


def _ccs_resolve(options: dict[str, Any], where: PruneContext) -> dict[str, Any]:
    return {"hard_cut": protocol.ccs_hard_cut(where.dataset, where.source_ipc, where.target_ipc)}


def _ccs_check(options: dict[str, Any]) -> None:
    cut = options.get("hard_cut")
    if isinstance(cut, bool) or not isinstance(cut, (int, float)) or not 0.0 <= float(cut) < 1.0:
        raise YocoError(f"CCS hard-cut ratio must be in [0, 1), got {cut!r}")


@register_selector("ccs", columns=("el2n",), options={"hard_cut": CCS_DEFAULT_HARD_CUT, "pick": CCS_PICK},
                   resolve=_ccs_resolve, check=_ccs_check, choices={"pick": CCS_PICKS})


def _ccs(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """Coverage-centric: drop the hardest ``hard_cut`` by EL2N, then stratified sampling over 50 score bins.

    The cut is ``floor(hard_cut * m)`` of the ``m`` candidates (with a 1e-9 guard so that 0.3 * 10 is 3),
    hardest first, ties cut at the lower index first; it is reduced to ``m - budget`` when fewer than
    ``budget`` images would remain, so the budget is always met. Within a bin, ``pick="highest"`` (the default,
    as YOCO's code runs it) keeps the highest-EL2N members, ties to the lower index; ``pick="random"`` (upstream
    CCS) a seeded random permutation's first ones. The hard cut defaults to YOCO's table for (dataset, source
    IPC, target IPC) when pruning a set (:func:`yoco.protocol.ccs_hard_cut`), else 0.1.
    """
    s = ctx.scores["el2n"][members]
    m = len(members)
    cut = min(math.floor(float(ctx.options["hard_cut"]) * m + 1e-9), m - budget)
    rest = torch.sort(torch.sort(-s, stable=True).indices[cut:]).values
    rest_scores = s[rest]
    bins = strata(rest_scores, CCS_STRATA)
    sizes = torch.bincount(bins, minlength=CCS_STRATA).tolist()
    chosen = []
    for b, quota in enumerate(allocate(sizes, budget)):
        if quota:
            inside = rest[(bins == b).nonzero().flatten()]
            if ctx.options["pick"] == "highest":  # rest is in index order, so ties keep the lower index
                order = torch.sort(-s[inside], stable=True).indices
            else:
                order = torch.randperm(len(inside), generator=ctx.generator)
            chosen.append(inside[order[:quota]])
    return members[torch.cat(chosen)] if chosen else members[:0]


def strata(values: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin of each value among ``bins`` equal-width bins over ``[min, 1.0001 * max)``, as CCS's
    ``stratified_sampling`` (the factor keeps the maximum inside the last bin). For a maximum of zero or below,
    where that factor would not, the top edge is the maximum plus 1e-4 of the range instead."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return torch.zeros(len(values), dtype=torch.int64)
    top = hi * CCS_TOP if hi > 0 else hi + (CCS_TOP - 1) * (hi - lo)
    step = (top - lo) / bins
    return ((values - lo) / step).floor().to(torch.int64).clamp(0, bins - 1)


def allocate(sizes: Sequence[int], budget: int) -> list[int]:
    """CCS's budget split: visit non-empty bins from the smallest up, each taking min(size, left // bins left).

    Ties in size are visited in bin order. The integer division leaves the remainder to later (larger) bins,
    and the last non-empty bin takes everything still left, so the total is exactly ``budget`` whenever the bins
    hold at least that many (if a bin cannot give its share, the share passes on to the larger bins).
    """
    if budget > sum(sizes):
        raise YocoError(f"cannot draw {budget} images from strata holding {sum(sizes)}")
    order = sorted((b for b in range(len(sizes)) if sizes[b] > 0), key=lambda b: (sizes[b], b))
    quota = [0] * len(sizes)
    left = budget
    for i, b in enumerate(order):
        quota[b] = min(sizes[b], left // (len(order) - i))
        left -= quota[b]
    return quota
