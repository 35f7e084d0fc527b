"""The ``random`` score: a seeded uniform draw, the same one the ``random`` selector makes."""

from __future__ import annotations

import torch

from yoco.dynamics import Dynamics
from yoco.scores.base import ScoreConfig, register_score, uniform_scores


@register_score("random", harder="high", default_direction="easy", directional=False)
def random_uniform(dyn: Dynamics, cfg: ScoreConfig) -> torch.Tensor:
    """Uniform random values from ``seed`` (one row: the same draw the ``random`` rule makes with that seed)."""
    return uniform_scores(dyn.num_samples, cfg.seed).unsqueeze(0)
