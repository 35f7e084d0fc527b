"""Lloyd's k-means as the k-means package YOCO calls for SSP runs it (``fast_pytorch_kmeans`` defaults)."""

from __future__ import annotations

import torch

from yoco.errors import YocoError
from yoco.protocol import KMEANS_MAX_ITER, KMEANS_TOL


def kmeans(
    x: torch.Tensor, k: int, *, generator: torch.Generator, max_iter: int = KMEANS_MAX_ITER, tol: float = KMEANS_TOL,
    init: str = "random",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means in float32: returns centroids ``[k, D]`` and assignments ``[N]``.

    ``init="random"`` starts from ``k`` distinct random points, as the k-means package YOCO calls for SSP
    (``fast_pytorch_kmeans.KMeans``, its defaults: random points, at most 100 rounds, stop when the squared
    centroid change is at most 1e-4); ``init="k-means++"`` seeds by D^2 sampling instead, which finds
    well-separated clusters more reliably. An empty cluster keeps its centroid.
    """
    x = x.to(torch.float32)
    m = len(x)
    if not 1 <= k <= m:
        raise YocoError(f"k-means needs 1 <= k <= {m} points, got k={k}")
    if init == "random":
        centers = x[torch.randperm(m, generator=generator)[:k]].clone()
    elif init == "k-means++":
        centers = x[_kmeans_pp(x, k, generator)].clone()
    else:
        raise YocoError(f"unknown k-means init {init!r}; choose random or k-means++")
    assign = torch.cdist(x, centers).argmin(1)
    for _ in range(max_iter):
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        filled = counts > 0
        new = centers.clone()
        new[filled] = sums[filled] / counts[filled].unsqueeze(1).to(torch.float32)
        shift = float((new - centers).pow(2).sum())
        centers = new
        assign = torch.cdist(x, centers).argmin(1)
        if shift <= tol:
            break
    return centers, assign


def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``k`` distinct k-means++ seeds (D^2 sampling; uniform among the rest once every point is taken)."""
    m = len(x)
    sq = (x * x).sum(1)

    def dist2(i: int) -> torch.Tensor:
        # ||x - x_i||^2 by one matrix-vector product: far cheaper than materialising x - x_i for wide features
        return (sq - 2 * (x @ x[i]) + sq[i]).clamp_min(0)

    taken = torch.zeros(m, dtype=torch.bool)
    nxt = int(torch.randint(m, (1,), generator=generator))
    picked = [nxt]
    taken[nxt] = True
    d2 = dist2(nxt).masked_fill(taken, 0.0)
    for _ in range(1, k):
        if float(d2.sum()) > 0:
            nxt = int(torch.multinomial(d2, 1, generator=generator))
        else:
            free = (~taken).nonzero().flatten()
            nxt = int(free[torch.randint(len(free), (1,), generator=generator)])
        picked.append(nxt)
        taken[nxt] = True
        d2 = torch.minimum(d2, dist2(nxt)).masked_fill(taken, 0.0)
    return torch.tensor(picked)
