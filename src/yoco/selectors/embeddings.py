"""The ``embeddings`` feature: the final model's penultimate embeddings, computed once per score table and read
by every embedding rule (SSP, k-center greedy, herding, moderate coreset)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from yoco.dynamics import Dynamics
from yoco.selectors.base import register_feature


@register_feature("embeddings", formerly=("ssp",))
def final_embeddings(dyn: Dynamics) -> torch.Tensor:
    """One run's final-model embeddings as they are (``[N, D]``, what YOCO's SSP clusters and DeepCore's
    k-center, herding and Moderate-DS's median read); for several runs (scores averaged over runs), each run's
    L2-normalised, concatenated (``[N, runs * D]``), so no run's scale dominates the distances.

    Tables made before features were shared hold this tensor as ``ssp``; they are read as ``embeddings``.
    """
    if dyn.runs == 1:
        return dyn.embeddings[0].to(torch.float32)
    return torch.cat(list(F.normalize(dyn.embeddings, dim=-1)), dim=-1)
