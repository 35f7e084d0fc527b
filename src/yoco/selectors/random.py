"""``random``: a uniform random subset, the reference every rule's gain is measured against."""

from __future__ import annotations

import torch

from yoco.scores import uniform_scores
from yoco.selectors.base import Context, register_selector


@register_selector("random")
def _random(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """A uniform random subset: the lowest values of the seed's ``random`` score draw."""
    key = uniform_scores(len(ctx.labels), ctx.seed)[members]
    return members[torch.sort(key, stable=True).indices[:budget]]
