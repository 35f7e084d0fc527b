"""``ssp``: prototypes by k-means on the final model's embeddings (YOCO ``generate_importance_score.py:154-208``)."""

from __future__ import annotations

import torch

from yoco.errors import YocoError
from yoco.selectors.base import Context, register_selector
from yoco.selectors.embeddings import final_embeddings
from yoco.selectors.kmeans import kmeans

ssp_embeddings = final_embeddings  # SSP's features, by the name they had before they were shared


@register_selector("ssp", feature="embeddings")
def _ssp(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """Self-supervised prototypes: k-means with ``budget`` clusters, keep the image nearest each centroid.

    k-means as YOCO runs it (random-point start, float32, see :func:`kmeans`). Where two centroids share their
    nearest image, YOCO keeps the image twice (a smaller set); here the later centroid takes its nearest image
    not yet kept, so the budget is always met with distinct images.
    """
    if budget == len(members):
        return members
    if ctx.features is None:
        raise YocoError("ssp needs embeddings")
    x = ctx.features[members]
    centers, _ = kmeans(x, budget, generator=ctx.generator)
    dist = torch.cdist(centers, x)
    taken = torch.zeros(len(members), dtype=torch.bool)
    chosen = []
    for j in range(budget):
        p = int(dist[j].masked_fill(taken, float("inf")).argmin())
        taken[p] = True
        chosen.append(p)
    return members[torch.tensor(chosen, dtype=torch.int64)]
