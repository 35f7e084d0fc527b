"""Area under the margin (Pleiss et al., NeurIPS 2020) on probabilities, summed over the run, as YOCO computes it."""

from __future__ import annotations

import torch

from yoco.dynamics import Dynamics
from yoco.scores.base import ScoreConfig, epoch_chunks, register_score


@register_score("aum", harder="low", default_direction="hard")
def aum(dyn: Dynamics, cfg: ScoreConfig) -> torch.Tensor:
    """Area under the margin: sum over all epochs of p(y) - max over k != y of p(k); a low margin is hard."""
    y = dyn.labels.unsqueeze(-1)
    rows = []
    for r in range(dyn.runs):
        total = torch.zeros(dyn.num_samples, dtype=torch.float64)
        for chunk in epoch_chunks(dyn, r, dyn.epochs):
            probs = torch.softmax(chunk.to(torch.float64), dim=-1)
            p_y = probs.gather(-1, y.expand(probs.shape[0], -1, 1)).squeeze(-1)
            others = probs.scatter(-1, y.expand(probs.shape[0], -1, 1), float("-inf")).amax(-1)
            total += (p_y - others).sum(0)
        rows.append(total)
    return torch.stack(rows)
