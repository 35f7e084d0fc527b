"""``herding``: herding on the final model's embeddings, as DeepCore runs it (Welling, ICML 2009; PatrickZH/DeepCore
``deepcore/methods/herding.py:63-87``)."""

from __future__ import annotations

from typing import Any

import torch

from yoco.errors import YocoError
from yoco.protocol import HERDING_PICK, HERDING_PICKS
from yoco.selectors.base import Context, register_selector
from yoco.selectors.metrics import euclidean


@register_selector("herding", feature="embeddings", options={"herding_pick": HERDING_PICK},
                   choices={"herding_pick": HERDING_PICKS}, default_balance="balance")


def _herding(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """Herding: step i keeps the image at the extreme distance from ``(i + 1) * mean - sum(kept so far)``.

    ``herding_pick=farthest`` (the default) is DeepCore's code, which takes the arg-max of that distance;
    ``nearest`` is Welling's herding (and iCaRL's exemplars), the arg-min, which keeps the running mean of the
    kept images closest to the group's mean. Ties go to the lower index; the mean is the group's (one class for a
    balanced rule, the default as DeepCore's ``main.py`` runs it; every image otherwise).
    """
    if ctx.features is None:
        raise YocoError("herding needs embeddings")
    x = ctx.features[members].to(torch.float64)
    mean = x.mean(0)
    taken = torch.zeros(len(members), dtype=torch.bool)
    total = torch.zeros_like(mean)
    pick: Any = torch.argmax if ctx.options["herding_pick"] == "farthest" else torch.argmin
    for i in range(budget):
        free = (~taken).nonzero().flatten()
        dist = euclidean(((i + 1) * mean - total)[None], x[free])[0]
        p = int(free[int(pick(dist))])
        taken[p] = True
        total += x[p]
    return members[taken]
