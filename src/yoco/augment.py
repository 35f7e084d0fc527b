"""Differentiable siamese augmentation (DSA) and CutMix, on whole batches with no per-image Python.

DSA follows IDC's arrangement: flip and colour are applied every call, then ONE geometric transform picked at
random from those in the strategy (crop, scale, rotate), then cutout. Parameters are drawn per sample from a
generator; passing ``seed`` makes the draw reproducible, so two batches augmented with the same seed get the
same transforms ("siamese", as gradient matching needs). With ``shared=True`` one parameter set is drawn and
applied to every image, so batches of different sizes (64 real vs 40 synthetic) also match exactly, as in the
reference DSA/IDC matching code. Everything is differentiable w.r.t. the images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from yoco.errors import YocoError

DSA_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
GEOMETRIC = ("crop", "scale", "rotate")


def parse_strategy(strategy: str, flip: bool = True) -> tuple[str, ...]:
    """Split ``"color_crop_cutout_flip_scale_rotate"`` into ops; drop ``flip`` when ``flip`` is False
    (digit datasets, where a mirrored 2 or 5 is another glyph)."""
    if strategy in ("", "none"):
        return ()
    ops = tuple(strategy.lower().split("_"))
    unknown = [o for o in ops if o not in DSA_OPS]
    if unknown:
        raise YocoError(f"unknown DSA op(s) {unknown} in {strategy!r}; known: {', '.join(DSA_OPS)}")
    return tuple(o for o in ops if o != "flip" or flip)


@dataclass(frozen=True)
class DSAParams:
    """The usual DSA ranges."""

    scale: float = 1.2
    rotate_deg: float = 15.0
    crop_pad: float = 0.125
    cutout: float = 0.5
    flip_p: float = 0.5


class DSA:
    """Batched DSA. ``aug(x)`` draws fresh parameters; ``aug(x, seed=s)`` draws them from seed ``s``."""

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", flip: bool = True,
                 params: DSAParams = DSAParams()) -> None:
        self.ops = parse_strategy(strategy, flip)
        self.geometric = tuple(o for o in self.ops if o in GEOMETRIC)
        self.p = params

    def __repr__(self) -> str:
        return f"DSA({'_'.join(self.ops) or 'none'})"

    def __call__(self, x: torch.Tensor, seed: int | None = None, generator: torch.Generator | None = None,
                 shared: bool = False) -> torch.Tensor:
        if not self.ops:
            return x
        g = generator
        if seed is not None:
            g = torch.Generator().manual_seed(int(seed))
        n, _, h, w = x.shape

        def rand(k: int) -> torch.Tensor:
            # Parameters are drawn on the CPU so a seed means the same thing on every device; in shared mode
            # one draw is broadcast over the batch.
            return torch.rand(1, generator=g).expand(k) if shared else torch.rand(k, generator=g)

        # Every parameter is drawn first, in a fixed order, and moved to the device in ONE non-blocking copy: a
        # blocking copy per parameter makes the host wait for the GPU's queue to drain each time.
        drawn: dict[str, torch.Tensor] = {}
        if "flip" in self.ops:
            drawn["flip"] = (rand(n) < self.p.flip_p).to(torch.float32)
        if "color" in self.ops:
            drawn["color"] = torch.stack([rand(n) - 0.5, rand(n) * 2.0, rand(n) + 0.5], 1)
        if self.geometric:
            op = self.geometric[int(torch.randint(len(self.geometric), (1,), generator=g))]
            drawn["theta"] = self._theta(op, n, h, w, rand).reshape(n, 6)
        if "cutout" in self.ops:
            drawn["cutout"] = torch.stack([torch.floor(rand(n) * h), torch.floor(rand(n) * w)], 1)
        cols = [t.reshape(n, -1) for t in drawn.values()]
        moved = to_device(torch.cat(cols, 1), x.device).to(x.dtype).split([c.shape[1] for c in cols], 1)
        par = dict(zip(drawn, moved))

        if "flip" in par:
            x = torch.where(par["flip"].view(n, 1, 1, 1) > 0.5, x.flip(3), x)
        if "color" in par:
            brightness, saturation, contrast = (c.view(n, 1, 1, 1) for c in par["color"].unbind(1))
            x = x + brightness
            m = x.mean(dim=1, keepdim=True)
            x = (x - m) * saturation + m
            m = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - m) * contrast + m
        if "theta" in par:
            grid = F.affine_grid(par["theta"].view(n, 2, 3), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if "cutout" in par:
            x = x * self._cutout_mask(x, par["cutout"])
        return x

    def _theta(self, op: str, n: int, h: int, w: int, rand) -> torch.Tensor:
        """The ``[n, 2, 3]`` affine matrices of one geometric op, on the CPU."""
        theta = torch.zeros(n, 2, 3)
        if op == "scale":
            lo = 1.0 / self.p.scale
            theta[:, 0, 0] = rand(n) * (self.p.scale - lo) + lo
            theta[:, 1, 1] = rand(n) * (self.p.scale - lo) + lo
        elif op == "rotate":
            a = (rand(n) - 0.5) * 2 * self.p.rotate_deg * math.pi / 180
            theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), -torch.sin(a)
            theta[:, 1, 0], theta[:, 1, 1] = torch.sin(a), torch.cos(a)
        else:
            # crop = translate by a whole number of pixels, up to crop_pad of the side, zero padded
            theta[:, 0, 0] = theta[:, 1, 1] = 1.0
            sx = torch.floor(rand(n) * (2 * int(w * self.p.crop_pad) + 1)) - int(w * self.p.crop_pad)
            sy = torch.floor(rand(n) * (2 * int(h * self.p.crop_pad) + 1)) - int(h * self.p.crop_pad)
            theta[:, 0, 2] = sx * 2.0 / w
            theta[:, 1, 2] = sy * 2.0 / h
        return theta

    def _cutout_mask(self, x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        ch, cw = int(h * self.p.cutout + 0.5), int(w * self.p.cutout + 0.5)
        cy, cx = (c.view(n, 1, 1) for c in centres.unbind(1))
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        inside = ((ys - cy).abs() < ch / 2) & ((xs - cx).abs() < cw / 2)
        return (~inside).unsqueeze(1).to(x.dtype)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a small CPU tensor to ``device``; to a GPU through pinned memory without waiting for its queue."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def cutmix(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, beta: float = 1.0
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Paste a random box from a shuffled copy of the batch into each image.

    Returns ``(mixed, y, y_shuffled, lam)`` where ``lam`` is the kept area fraction: the loss is
    ``lam * CE(out, y) + (1 - lam) * CE(out, y_shuffled)``.
    """
    n, _, h, w = x.shape
    lam = _beta(beta, generator)
    perm = to_device(torch.randperm(n, generator=generator), x.device)
    cut = math.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=generator))
    cx = int(torch.randint(w, (1,), generator=generator))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    mixed = x.clone()
    mixed[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return mixed, y, y[perm], lam


def mixup(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, beta: float = 1.0
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Blend each image with a shuffled partner; same return convention as :func:`cutmix`."""
    lam = _beta(beta, generator)
    perm = to_device(torch.randperm(x.shape[0], generator=generator), x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def _beta(beta: float, generator: torch.Generator | None) -> float:
    """One Beta(beta, beta) draw that follows ``generator`` (torch has no generator-aware Beta sampler)."""
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(beta, beta))
