"""LBPE, YOCO's score (He, Xiao and Zhou, NeurIPS 2023; YOCO ``generate_importance_score.py:289-345``)."""

from __future__ import annotations

import torch

from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.scores.base import ScoreConfig, l2_error, need_epochs, register_score


@register_score("lbpe", harder="high", default_direction="easy", default_balance="balance")
def lbpe(dyn: Dynamics, cfg: ScoreConfig) -> torch.Tensor:
    """YOCO's logit-based prediction error: L2 error summed over the K best-accuracy epochs of the first E.

    Per run, the K epochs with the highest training accuracy among the first E are chosen (ties go to the
    earlier epoch), so the score reads the network when it fits the set best rather than at a fixed time.
    """
    e, k = cfg.lbpe_epochs, cfg.lbpe_top_k
    need_epochs(dyn, e, "lbpe")
    if not 1 <= k <= e:
        raise YocoError(f"lbpe's top-K must be between 1 and the window E={e}, got K={k}")
    rows = []
    for r in range(dyn.runs):
        acc = dyn.train_acc[r, :e].to(torch.float64)
        top = torch.sort(-acc, stable=True).indices[:k]
        rows.append(l2_error(dyn.log_probs[r, top], dyn.labels, dyn.targets).sum(0))
    return torch.stack(rows)
