"""``moderate``: moderate coreset (Xia et al., ICLR 2023), as the authors' code selects it (tmllab/Moderate-DS
``selection.py:13-77``)."""

from __future__ import annotations

import torch

from yoco.errors import YocoError
from yoco.selectors.base import Context, register_selector


def median_distances(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each image's Euclidean distance to its class's median embedding (per dimension; the mean of the two middle
    values for an even count, as ``np.median``), float64 ``[m]``."""
    x = x.to(torch.float64)
    out = torch.empty(len(x), dtype=torch.float64)
    for c in torch.unique(labels):
        inside = (labels == c).nonzero().flatten()
        s = torch.sort(x[inside], dim=0).values
        k = len(inside)
        median = (s[(k - 1) // 2] + s[k // 2]) / 2
        out[inside] = torch.linalg.vector_norm(x[inside] - median, dim=-1)
    return out


@register_selector("moderate", feature="embeddings")
def _moderate(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """Moderate coreset: keep the images whose distance to their class's median embedding is nearest the median.

    The distances in ascending order (ties to the lower index), the ``budget`` of them from position
    ``round((m - budget) / 2)`` (Python's rounding, as upstream's ``round(N * (0.5 - rate / 2))``); the band
    ends ``budget`` later, so the budget is met exactly. Per class for a balanced rule; over all images for an
    imbalanced one (the authors' selection), each image still measured against its own class's median.
    """
    if ctx.features is None:
        raise YocoError("moderate needs embeddings")
    dist = median_distances(ctx.features[members], ctx.labels[members])
    order = torch.sort(dist, stable=True).indices
    start = round((len(members) - budget) / 2)
    return members[order[start:start + budget]]
