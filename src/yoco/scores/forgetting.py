"""Forgetting events (Toneva et al., ICLR 2019) over the whole run, as YOCO counts them."""

from __future__ import annotations

import torch

from yoco.dynamics import Dynamics
from yoco.scores.base import ScoreConfig, epoch_chunks, register_score


@register_score("forgetting", harder="high", default_direction="hard")
def forgetting(dyn: Dynamics, cfg: ScoreConfig) -> torch.Tensor:
    """Forgetting events: epochs where the prediction goes from correct to wrong (argmax vs label), whole run."""
    rows = []
    for r in range(dyn.runs):
        correct = torch.cat([c.argmax(-1) == dyn.labels for c in epoch_chunks(dyn, r, dyn.epochs)])
        rows.append((correct[:-1] & ~correct[1:]).sum(0).to(torch.float64))
    return torch.stack(rows)
