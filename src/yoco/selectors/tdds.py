"""``tdds``: Temporal Dual-Depth Scoring (Zhang et al., CVPR 2024), as the authors' code computes it
(zhangxin-xd/Dataset-Pruning-TDDS ``importance_evaluation.py:27-66``).

First depth: each image's contribution between consecutive epochs, ``sum_c |p_t+1 (log(p_t+1 + 1e-8) -
log(p_t + 1e-8))|`` on the softmax of the training-pass outputs (the ``contributions`` feature, every epoch of the
run). Second depth: over the first T epochs, in every window of W epochs (W - 1 contributions), the L2 norm of the
contributions' deviations from the window's mean, weighted ``decay * (1 - decay)^(T - W - k)`` for window k and
summed. The authors keep the highest scores (``data_mask[int(rate * N):]`` of the ascending order,
``data_subset.py:39``): ``tdds_hard``, the default; ``tdds_easy`` keeps the lowest.
"""

from __future__ import annotations

from typing import Any

import torch

from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.protocol import TDDS_DECAY, TDDS_EPOCHS, TDDS_LOG_EPS, TDDS_WINDOW
from yoco.scores.base import epoch_chunks
from yoco.selectors.base import Context, register_feature, register_selector, whole_option


@register_feature("contributions")
def epoch_contributions(dyn: Dynamics) -> torch.Tensor:
    """TDDS's first depth for every pair of consecutive epochs: float32 ``[N, runs, epochs - 1]``.

    Column t is the contribution between epochs t and t + 1, ``sum_c |p_t+1 * (log(p_t+1 + 1e-8) -
    log(p_t + 1e-8))|``, with ``p`` the softmax of the recorded outputs (computed in float64).
    """
    rows = []
    for r in range(dyn.runs):
        parts = []
        last: tuple[torch.Tensor, torch.Tensor] | None = None  # the previous chunk's final (p, log(p + eps))
        for chunk in epoch_chunks(dyn, r, dyn.epochs):
            p = torch.softmax(chunk.to(torch.float64), dim=-1)
            logp = torch.log(p + TDDS_LOG_EPS)
            if last is not None:
                p, logp = torch.cat([last[0][None], p]), torch.cat([last[1][None], logp])
            if len(p) > 1:
                parts.append((p[1:] * (logp[1:] - logp[:-1])).abs().sum(-1))
            last = (p[-1], logp[-1])
        rows.append(torch.cat(parts) if parts else torch.zeros(0, dyn.num_samples, dtype=torch.float64))
    return torch.stack(rows).permute(2, 0, 1).to(torch.float32).contiguous()


def tdds_scores(contributions: torch.Tensor, epochs: int, window: int, decay: float) -> torch.Tensor:
    """TDDS's second depth of ``contributions [m, runs, >= epochs - 1]`` over the first ``epochs`` epochs: float64
    ``[m]``, the mean over runs (one run: that run's score)."""
    c = contributions[..., : epochs - 1].to(torch.float64)
    windows = c.unfold(-1, window - 1, 1)  # [m, runs, epochs - window + 1, window - 1]
    spread = torch.linalg.vector_norm(windows - windows.mean(-1, keepdim=True), dim=-1)
    k = torch.arange(epochs - window + 1, dtype=torch.float64)
    weights = decay * (1 - decay) ** (epochs - window - k)
    return (spread * weights).sum(-1).mean(-1)


def _check(options: dict[str, Any]) -> None:
    t, w, d = options.get("tdds_epochs"), options.get("tdds_window"), options.get("tdds_decay")
    if not whole_option(t) or t < 3:
        raise YocoError(f"tdds_epochs (TDDS's trajectory T) must be a whole number >= 3, got {t!r}")
    if w == 2:
        raise YocoError("tdds_window=2 holds one contribution, which has no variability (every score would be 0); "
                        "choose at least 3")
    if not whole_option(w) or not 3 <= w <= t:
        raise YocoError(f"tdds_window must be a whole number between 3 and tdds_epochs={t}, got {w!r}")
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 < float(d) <= 1.0:
        raise YocoError(f"tdds_decay must be in (0, 1], got {d!r}")


@register_selector("tdds", feature="contributions", check=_check, directional=True, default_direction="hard",
                   epochs_option="tdds_epochs",
                   options={"tdds_epochs": TDDS_EPOCHS, "tdds_window": TDDS_WINDOW, "tdds_decay": TDDS_DECAY})


def _tdds(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """TDDS: variability of each image's per-epoch contribution over sliding windows of the first T epochs.

    ``hard`` keeps the highest scores (the authors' choice), ``easy`` the lowest; ties go to the lower index.
    """
    if ctx.features is None:
        raise YocoError("tdds needs the per-epoch contributions")
    t, w, d = int(ctx.options["tdds_epochs"]), int(ctx.options["tdds_window"]), float(ctx.options["tdds_decay"])
    held = ctx.features.shape[-1] + 1
    if t > held:
        raise YocoError(f"tdds_epochs={t} is longer than the {held} recorded epochs; record longer dynamics or set "
                        f"--option tdds_epochs=N with N <= {held}")
    s = tdds_scores(ctx.features[members], t, w, d)
    order = torch.sort(-s if ctx.direction == "hard" else s, stable=True).indices
    return members[order[:budget]]
