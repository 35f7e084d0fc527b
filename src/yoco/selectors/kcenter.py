"""``kcenter``: k-center greedy on the final model's embeddings, as DeepCore runs it (Sener and Savarese, ICLR
2018; PatrickZH/DeepCore ``deepcore/methods/kcentergreedy.py:8-65``)."""

from __future__ import annotations

import torch

from yoco.errors import YocoError
from yoco.selectors.base import Context, register_selector
from yoco.selectors.metrics import euclidean


@register_selector("kcenter", feature="embeddings", default_balance="balance")
def _kcenter(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """k-center greedy: a random first centre, then again and again the image farthest from every centre so far.

    As DeepCore: the first centre uniform at random (seeded), each next one the arg-max (first on ties) of the
    Euclidean distance to the nearest chosen centre; per class for a balanced rule (the default: DeepCore's
    ``main.py`` runs every method with ``--balance`` True), over all images otherwise.
    """
    if ctx.features is None:
        raise YocoError("kcenter needs embeddings")
    m = len(members)
    if budget >= m:
        return members
    x = ctx.features[members]
    first = int(torch.randint(m, (1,), generator=ctx.generator))
    chosen = [first]
    nearest = euclidean(x[first:first + 1], x)[0]
    nearest[first] = -1.0
    for _ in range(budget - 1):
        p = int(torch.argmax(nearest))
        chosen.append(p)
        nearest = torch.minimum(nearest, euclidean(x[p:p + 1], x)[0])
        nearest[p] = -1.0
    return members[torch.tensor(chosen, dtype=torch.int64)]
