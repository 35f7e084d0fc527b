"""Distances the embedding selectors share, as DeepCore computes them."""

from __future__ import annotations

import torch


def euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[len(x), len(y)]`` in float64, floored at 1e-6 as DeepCore's ``euclidean_dist``
    (``methods_utils/euclidean.py:5-12`` clamps the squared distance at 1e-12), so near-duplicates tie alike."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").pow(2).clamp_min(1e-12).sqrt()
