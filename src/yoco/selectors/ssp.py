"""``ssp``: prototypes by k-means on the final model's embeddings (YOCO ``generate_importance_score.py:154-208``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.selectors.base import Context, register_selector
from yoco.selectors.kmeans import kmeans


def ssp_embeddings(dyn: Dynamics) -> torch.Tensor:
    """SSP's features: one run's final-model embeddings as they are (YOCO's k-means input, ``[N, D]``); for
    several runs (scores averaged over runs), each run's L2-normalised, concatenated (``[N, runs * D]``), so no
    run's scale dominates the distances."""
    if dyn.runs == 1:
        return dyn.embeddings[0].to(torch.float32)
    return torch.cat(list(F.normalize(dyn.embeddings, dim=-1)), dim=-1)


@register_selector("ssp", prepare=ssp_embeddings)
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
