"""EL2N (Paul et al., NeurIPS 2021) as YOCO and CCS compute it: the error of the first epochs of one run."""

from __future__ import annotations

import torch

from yoco.dynamics import Dynamics
from yoco.scores.base import ScoreConfig, epoch_chunks, l2_error, need_epochs, register_score


@register_score("el2n", harder="high", default_direction="hard")
def el2n(dyn: Dynamics, cfg: ScoreConfig) -> torch.Tensor:
    """EL2N: the L2 error averaged over the first ``el2n_epochs`` epochs."""
    e = cfg.el2n_epochs
    need_epochs(dyn, e, "el2n")
    rows = []
    for r in range(dyn.runs):
        total = torch.zeros(dyn.num_samples, dtype=torch.float64)
        for chunk in epoch_chunks(dyn, r, e):
            total += l2_error(chunk, dyn.labels, dyn.targets).sum(0)
        rows.append(total / e)
    return torch.stack(rows)
