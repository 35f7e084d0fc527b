"""``dual``: Difficulty and Uncertainty-Aware Lightweight pruning (Cho et al., ICLR 2025), as the authors' code
runs it (behaapyy/dual-pruning ``exp_cifar/importance_evaluation.py:110-119``, ``exp_cifar/data_subset.py:165-178``).

Score: over the first T epochs, for every window of W epochs, the standard deviation (x10) of the label's
probability times one minus its mean, averaged over the windows; high is uncertain and difficult, and the
authors keep the highest. Their ratio-adaptive Beta sampling (``dual_sample=beta``) draws the kept images at random
with probability proportional to ``Beta(y_a, y_b).pdf(mean prediction) * score``, where the mean prediction is over
the first T epochs, ``y_b = 15 (1 - anchor) (1 - r^c_D)``, ``y_a = 16 - y_b``, ``r`` the pruning ratio and
``anchor`` the mean prediction of the 10 highest-scoring images: at extreme ratios the draw moves toward easier
images. ``dual_sample=top`` keeps the highest scores.
"""

from __future__ import annotations

from typing import Any

import torch

from yoco import protocol
from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.protocol import DUAL_ANCHORS, DUAL_BETA_SCALE, DUAL_C_D, DUAL_SAMPLES, DUAL_STD_SCALE, DUAL_WINDOW
from yoco.scores.base import epoch_chunks
from yoco.selectors.base import Context, PruneContext, register_feature, register_selector, whole_option


@register_feature("label_probs")
def label_probs(dyn: Dynamics) -> torch.Tensor:
    """The probability of each image's label at every epoch of the run: float32 ``[N, runs, epochs]`` (the
    softmax of the recorded outputs, computed in float64)."""
    y = dyn.labels.view(1, -1, 1)
    rows = []
    for r in range(dyn.runs):
        parts = [torch.softmax(c.to(torch.float64), dim=-1).gather(-1, y.expand(len(c), -1, 1)).squeeze(-1)
                 for c in epoch_chunks(dyn, r, dyn.epochs)]
        rows.append(torch.cat(parts))
    return torch.stack(rows).permute(2, 0, 1).to(torch.float32).contiguous()


def dual_scores(probs: torch.Tensor, epochs: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DUAL's score and mean prediction of ``probs [m, runs, >= epochs]`` over the first ``epochs`` epochs, float64
    ``[m]`` each, the means over runs (one run: that run's)."""
    p = probs[..., :epochs].to(torch.float64)
    windows = p.unfold(-1, window, 1)  # [m, runs, epochs - window + 1, window]
    score = (windows.std(-1) * DUAL_STD_SCALE * (1 - windows.mean(-1))).mean(-1)
    return score.mean(-1), p.mean(-1).mean(-1)


def beta_weights(score: torch.Tensor, mean: torch.Tensor, prune_ratio: float, c_d: float) -> torch.Tensor:
    """DUAL's sampling weights ``Beta(y_a, y_b).pdf(mean) * score`` (float64 ``[m]``); NaN (a zero score at a
    pole of the density, or a degenerate Beta) counts as 0."""
    top = torch.sort(-score, stable=True).indices[:DUAL_ANCHORS]
    anchor = float(mean[top].mean())
    b = DUAL_BETA_SCALE * (1 - anchor) * (1 - prune_ratio ** c_d)
    a = DUAL_BETA_SCALE + 1 - b
    if b <= 0:
        return torch.zeros_like(score)
    a_t, b_t = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    log_norm = torch.lgamma(a_t) + torch.lgamma(b_t) - torch.lgamma(a_t + b_t)
    pdf = torch.exp(torch.special.xlogy(a_t - 1, mean) + torch.special.xlog1py(b_t - 1, -mean) - log_norm)
    return torch.nan_to_num(pdf * score, nan=0.0)


def _resolve(options: dict[str, Any], where: PruneContext) -> dict[str, Any]:
    return protocol.dual_defaults(where.dataset)


def _check(options: dict[str, Any]) -> None:
    t, w, c = options.get("dual_epochs"), options.get("dual_window"), options.get("dual_cd")
    if not whole_option(t) or t < 2:
        raise YocoError(f"dual_epochs (DUAL's first T epochs) must be a whole number >= 2, got {t!r}")
    if not whole_option(w) or not 2 <= w <= t:
        raise YocoError(f"dual_window must be a whole number between 2 and dual_epochs={t}, got {w!r}")
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not float(c) > 0:
        raise YocoError(f"dual_cd (DUAL's c_D) must be a positive number, got {c!r}")


@register_selector("dual", feature="label_probs", resolve=_resolve, check=_check, choices={"dual_sample": DUAL_SAMPLES},
                   epochs_option="dual_epochs",
                   options={"dual_epochs": protocol.DUAL_EPOCHS, "dual_window": DUAL_WINDOW, "dual_cd": DUAL_C_D,
                            "dual_sample": protocol.DUAL_SAMPLE})


def _dual(members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """DUAL: uncertainty times difficulty of the label's probability over the first T epochs, Beta-sampled.

    ``dual_sample=beta`` draws without replacement with probability proportional to the Beta weights (seeded);
    where fewer images than the budget have a positive weight (upstream's draw then fails), the rest are the
    highest-scoring of the others, ties to the lower index. ``top`` keeps the highest scores.
    """
    if ctx.features is None:
        raise YocoError("dual needs the per-epoch label probabilities")
    t, w = int(ctx.options["dual_epochs"]), int(ctx.options["dual_window"])
    held = ctx.features.shape[-1]
    if t > held:
        raise YocoError(f"dual_epochs={t} is longer than the {held} recorded epochs; record longer dynamics or set "
                        f"--option dual_epochs=N with N <= {held}")
    score, mean = dual_scores(ctx.features[members], t, w)
    by_score = torch.sort(-score, stable=True).indices
    if ctx.options["dual_sample"] == "top" or budget == len(members):
        return members[by_score[:budget]]
    weights = beta_weights(score, mean, 1 - budget / len(members), float(ctx.options["dual_cd"]))
    positive = (weights > 0).nonzero().flatten()
    drawn = positive[torch.multinomial(weights[positive], min(budget, len(positive)), replacement=False,
                                       generator=ctx.generator)] if len(positive) else positive
    if len(drawn) < budget:
        taken = torch.zeros(len(members), dtype=torch.bool)
        taken[drawn] = True
        rest = by_score[~taken[by_score]]
        drawn = torch.cat([drawn, rest[: budget - len(drawn)]])
    return members[drawn]
