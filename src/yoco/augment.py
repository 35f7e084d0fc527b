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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from yoco import protocol
from yoco.errors import YocoError

DSA_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
GEOMETRIC = ("crop", "scale", "rotate")
_GEOMETRIC_DRAWS = {"crop": 2, "scale": 2, "rotate": 1}  # uniforms per image each geometric op takes


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

    scale: float = protocol.DSA_SCALE
    rotate_deg: float = protocol.DSA_ROTATE_DEG
    crop_pad: float = protocol.DSA_CROP
    cutout: float = protocol.DSA_CUTOUT
    flip_p: float = protocol.DSA_FLIP_P


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
        n, _, h, w = x.shape
        return self.apply(x, self.draw(n, h, w, seed=seed, generator=generator, shared=shared))

    def draw(self, n: int, h: int, w: int, *, seed: int | None = None, generator: torch.Generator | None = None,
             shared: bool = False) -> dict[str, torch.Tensor]:
        """The parameters of ``n`` transforms of ``h x w`` images, on the CPU, one row per image (``shared``: one
        image's draw repeated). Draws of several calls can be concatenated row-wise and applied in one :meth:`apply`,
        which gives each image exactly what its own call would have (how matching augments all classes at once)."""
        g = torch.Generator().manual_seed(int(seed)) if seed is not None else generator
        if shared:
            # the numbers a one-image draw takes, one transform for the whole batch
            return {k: v.repeat(n, 1) for k, v in self.draw_many(1, h, w, [g])[0].items()}
        return self.draw_many(n, h, w, [g])[0]

    def draw_many(self, n: int, h: int, w: int, generators: Sequence[torch.Generator | None], extra: int = 0
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """:meth:`draw` for each of ``generators`` at once: rows ``i * n .. (i + 1) * n`` are what ``draw`` gives
        from ``generators[i]`` alone, number for number; plus ``[len(generators), extra]`` uniforms each generator
        draws right after its parameters (a mixing coin). Per generator, in this order: flip, colour (brightness,
        saturation, contrast), the geometric op's index, its numbers, cutout's centres, the extras; drawn in three
        calls per generator (a generator's uniforms are the same drawn in one call or several), the arithmetic
        done once for all: how a batched step of many networks draws without ~60 small CPU operations each."""
        m = len(generators)
        n_first = n * (("flip" in self.ops) + 3 * ("color" in self.ops))
        first = _rows([torch.rand(n_first, generator=g) for g in generators]).view(m, -1, n)
        picks = [self.geometric[int(torch.randint(len(self.geometric), (1,), generator=g))] if self.geometric
                 else "" for g in generators]
        after = 2 * n * ("cutout" in self.ops) + extra
        tails = [torch.rand(_GEOMETRIC_DRAWS.get(op, 0) * n + after, generator=g)
                 for op, g in zip(picks, generators, strict=True)]
        drawn: dict[str, torch.Tensor] = {}
        cols = iter(first.unbind(1))
        if "flip" in self.ops:
            drawn["flip"] = (next(cols) < self.p.flip_p).to(torch.float32).reshape(m * n, 1)
        if "color" in self.ops:
            drawn["color"] = torch.stack([next(cols) - 0.5, next(cols) * 2.0, next(cols) + 0.5], 2).reshape(m * n, 3)
        if self.geometric:
            groups = {op: [i for i, o in enumerate(picks) if o == op] for op in dict.fromkeys(picks)}
            parts = {op: self._theta(op, _rows([tails[i][: _GEOMETRIC_DRAWS[op] * n] for i in rows]).view(
                len(rows), -1, n), h, w) for op, rows in groups.items()}
            if len(parts) == 1:
                theta = next(iter(parts.values()))
            else:
                theta = torch.empty(m, n, 2, 3)
                for op, rows in groups.items():
                    theta[rows] = parts[op]
            drawn["theta"] = theta.reshape(m * n, 6)
        rest = _rows([t[t.numel() - after:] for t in tails])
        if "cutout" in self.ops:
            # the square's centre row/column, drawn as IDC's cutout_fn does: 0 .. side-1 (+1 for an even square)
            (ch, cw), cover = self._cutout_size(h, w), lambda side, s: side + (1 - s % 2)
            u = rest[:, : 2 * n].view(m, 2, n)
            drawn["cutout"] = torch.stack([torch.floor(u[:, 0] * cover(h, ch)), torch.floor(u[:, 1] * cover(w, cw))],
                                          2).reshape(m * n, 2)
        return drawn, rest[:, rest.shape[1] - extra:]

    @staticmethod
    def moved(drawn: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype = torch.float32
              ) -> dict[str, torch.Tensor]:
        """:meth:`draw`'s parameters on ``device`` as ``dtype``, all in ONE non-blocking copy (a blocking copy per
        parameter makes the host wait for the GPU's queue to drain each time); as they are if already there."""
        cols = list(drawn.values())
        if all(c.device == device and c.dtype == dtype for c in cols):
            return drawn
        moved = to_device(torch.cat(cols, 1), device).to(dtype).split([c.shape[1] for c in cols], 1)
        return dict(zip(drawn, moved))

    def apply(self, x: torch.Tensor, drawn: dict[str, torch.Tensor]) -> torch.Tensor:
        """Transform ``x`` (``[n, C, H, W]``) with the parameters of :meth:`draw` (``n`` rows), differentiably."""
        if not drawn:
            return x
        n = x.shape[0]
        par = self.moved(drawn, x.device, x.dtype)
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

    def _theta(self, op: str, u: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The ``[m, n, 2, 3]`` affine matrices of one geometric op from its uniforms ``u`` (``[m, k, n]``, k per
        :data:`_GEOMETRIC_DRAWS`), on the CPU."""
        m, _, n = u.shape
        theta = torch.zeros(m, n, 2, 3)
        if op == "scale":
            lo = 1.0 / self.p.scale
            theta[..., 0, 0] = u[:, 0] * (self.p.scale - lo) + lo
            theta[..., 1, 1] = u[:, 1] * (self.p.scale - lo) + lo
        elif op == "rotate":
            a = (u[:, 0] - 0.5) * 2 * self.p.rotate_deg * math.pi / 180
            # cos and sin row by row: a vectorised kernel may round its last few elements another way, and each
            # row must be what a draw of its own gives
            cos, sin = _rows([r.cos() for r in a]), _rows([r.sin() for r in a])
            theta[..., 0, 0], theta[..., 0, 1] = cos, -sin
            theta[..., 1, 0], theta[..., 1, 1] = sin, cos
        else:
            # crop = translate by a whole number of pixels, up to round(crop_pad x side) (4 px at 28 and at 32, as
            # IDC's crop_fn), zero padded
            theta[..., 0, 0] = theta[..., 1, 1] = 1.0
            rx, ry = int(w * self.p.crop_pad + 0.5), int(h * self.p.crop_pad + 0.5)
            sx = torch.floor(u[:, 0] * (2 * rx + 1)) - rx
            sy = torch.floor(u[:, 1] * (2 * ry + 1)) - ry
            theta[..., 0, 2] = sx * 2.0 / w
            theta[..., 1, 2] = sy * 2.0 / h
        return theta

    def _cutout_size(self, h: int, w: int) -> tuple[int, int]:
        return int(h * self.p.cutout + 0.5), int(w * self.p.cutout + 0.5)

    def _cutout_mask(self, x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Zero a ``side x side`` square starting ``side // 2`` before the drawn centre, clipped to the image."""
        n, _, h, w = x.shape
        ch, cw = self._cutout_size(h, w)
        top, left = (c.view(n, 1, 1) - s // 2 for c, s in zip(centres.unbind(1), (ch, cw)))
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
        return (~inside).unsqueeze(1).to(x.dtype)


class ImageNetAug:
    """IDC's ImageNet training augmentation on whole batches of standardised images, per-sample parameters.

    Random-resized crop (area 0.5-1, aspect 3/4-4/3, resized back bilinearly), horizontal flip, colour jitter
    (brightness, contrast, saturation, each 0.4, in a random order per image) and AlexNet lighting noise (0.1),
    applied in pixel space: the batch is de-standardised with ``mean``/``std`` and standardised again after.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...],
                 scale: tuple[float, float] = protocol.IMAGENET_CROP_AREA, jitter: float = protocol.IMAGENET_JITTER,
                 lighting: float = protocol.IMAGENET_LIGHTING, flip: bool = True) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self.scale, self.jitter, self.lighting, self.flip = scale, jitter, lighting, flip

    def __repr__(self) -> str:
        return f"ImageNetAug(scale={self.scale}, jitter={self.jitter}, lighting={self.lighting})"

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        g = generator
        theta = self._crops(n, h, w, g)
        flip = (torch.rand(n, generator=g) < 0.5) & self.flip
        factors = (torch.rand(n, 3, generator=g) * 2 - 1) * self.jitter  # brightness, contrast, saturation
        order = torch.rand(n, 3, generator=g).argsort(1)
        light = torch.randn(n, 3, generator=g) * self.lighting
        rgb = (light * torch.tensor(protocol.LIGHTING_EIGVAL)) @ torch.tensor(protocol.LIGHTING_EIGVEC).T
        cols = [theta.reshape(n, 6), flip.float().view(n, 1), factors, order.float(), rgb]
        moved = to_device(torch.cat(cols, 1), x.device).to(x.dtype).split([6, 1, 3, 3, 3], 1)
        theta, flip, factors, order, rgb = moved
        m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        x = x * s + m
        grid = F.affine_grid(theta.view(n, 2, 3), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        x = torch.where(flip.view(n, 1, 1, 1) > 0.5, x.flip(3), x)
        for step in range(3):
            for op in range(3):
                pick = (order[:, step] == op).view(n, 1, 1, 1)
                x = torch.where(pick, self._jitter(x, op, factors[:, op].view(n, 1, 1, 1)), x)
        if c == 3:
            x = x + rgb.view(n, 3, 1, 1)
        return (x - m) / s

    def _crops(self, n: int, h: int, w: int, g: torch.Generator | None) -> torch.Tensor:
        """Affine maps of torchvision's RandomResizedCrop boxes: 10 tries per image, else the whole image."""
        tries = 10
        area = (torch.rand(n, tries, generator=g) * (self.scale[1] - self.scale[0]) + self.scale[0]) * h * w
        log_ratio = torch.rand(n, tries, generator=g) * (math.log(4 / 3) - math.log(3 / 4)) + math.log(3 / 4)
        ratio = log_ratio.exp()
        cw, ch = (area * ratio).sqrt().round(), (area / ratio).sqrt().round()
        fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
        u = torch.rand(n, 2, generator=g)
        rows = torch.arange(n)
        bw = torch.where(first >= 0, cw[rows, first.clamp_min(0)], torch.full((n,), float(w)))
        bh = torch.where(first >= 0, ch[rows, first.clamp_min(0)], torch.full((n,), float(h)))
        top = torch.floor(u[:, 0] * (h - bh + 1))
        left = torch.floor(u[:, 1] * (w - bw + 1))
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = bw / w, bh / h
        theta[:, 0, 2] = (left + bw / 2) / w * 2 - 1
        theta[:, 1, 2] = (top + bh / 2) / h * 2 - 1
        return theta

    @staticmethod
    def _jitter(x: torch.Tensor, op: int, alpha: torch.Tensor) -> torch.Tensor:
        """IDC's jitter ops, each ``x + alpha * (target - x)``: towards black, the mean grey, the grey image."""
        grey = (x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(
            1, keepdim=True) if x.shape[1] == 3 else x
        if op == 0:
            target = torch.zeros_like(x)
        elif op == 1:
            target = grey.mean((1, 2, 3), keepdim=True).expand_as(x)
        else:
            target = grey.expand_as(x)
        return x + alpha * (target - x)


def _rows(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(tensors)``, without the copy for a single tensor (one network's draws, every step)."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a small CPU tensor to ``device``; to a GPU through pinned memory without waiting for its queue."""
    if t.device == device:
        return t
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@dataclass(frozen=True)
class MixPlan:
    """One batch's CutMix or mixup draw, on the CPU: each image's partner (``perm``), the pasted box
    ``(y0, y1, x0, x1)`` (CutMix; None for mixup) and ``lam``, the weight of the images' own labels."""

    perm: torch.Tensor
    box: tuple[int, int, int, int] | None
    lam: float


def cutmix_plan(n: int, h: int, w: int, generator: torch.Generator | None = None, beta: float = 1.0) -> MixPlan:
    """Draw a CutMix of ``n`` images of ``h x w``: a Beta(beta, beta) area, a partner order and the box's centre;
    ``lam`` is the kept area fraction of the box as clipped to the image."""
    lam = _beta(beta, generator)
    perm = torch.randperm(n, generator=generator)
    cut = math.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=generator))
    cx = int(torch.randint(w, (1,), generator=generator))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    return MixPlan(perm, (y0, y1, x0, x1), 1.0 - (y1 - y0) * (x1 - x0) / (h * w))


def mixup_plan(n: int, h: int, w: int, generator: torch.Generator | None = None, beta: float = 1.0) -> MixPlan:
    """Draw a mixup of ``n`` images (``h``, ``w`` unused, for one signature with :func:`cutmix_plan`)."""
    lam = _beta(beta, generator)
    return MixPlan(torch.randperm(n, generator=generator), None, lam)


def mix(x: torch.Tensor, y: torch.Tensor, plan: MixPlan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Apply a :class:`MixPlan`: returns ``(mixed, y, y_partner, lam)``, and the loss is
    ``lam * CE(out, y) + (1 - lam) * CE(out, y_partner)``."""
    perm = to_device(plan.perm, x.device)
    if plan.box is None:
        return plan.lam * x + (1 - plan.lam) * x[perm], y, y[perm], plan.lam
    y0, y1, x0, x1 = plan.box
    mixed = x.clone()
    mixed[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    return mixed, y, y[perm], plan.lam


def cutmix(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, beta: float = 1.0
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Paste a random box from a shuffled copy of the batch into each image (:func:`cutmix_plan`, :func:`mix`)."""
    n, _, h, w = x.shape
    return mix(x, y, cutmix_plan(n, h, w, generator, beta))


def mixup(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None, beta: float = 1.0
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Blend each image with a shuffled partner (:func:`mixup_plan`, :func:`mix`)."""
    n, _, h, w = x.shape
    return mix(x, y, mixup_plan(n, h, w, generator, beta))


def _beta(beta: float, generator: torch.Generator | None) -> float:
    """One Beta(beta, beta) draw that follows ``generator`` (torch has no generator-aware Beta sampler)."""
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(beta, beta))
