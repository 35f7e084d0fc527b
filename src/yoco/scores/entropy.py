"""Entropy of the final model's prediction (Coleman et al., ICLR 2020), as YOCO computes it."""

from __future__ import annotations

import torch

from yoco.dynamics import Dynamics
from yoco.scores.base import ScoreConfig, register_score


@register_score("entropy", harder="high", default_direction="hard")
def entropy(dyn: Dynamics, cfg: ScoreConfig) -> torch.Tensor:
    """Entropy (natural log) of the final model's softmax on the un-augmented images."""
    probs = torch.softmax(dyn.final_log_probs.to(torch.float64), dim=-1)
    return torch.special.entr(probs).sum(-1)
