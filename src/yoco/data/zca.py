"""ZCA whitening, as MTT applies it to CIFAR (kornia's ``ZCAWhitening(eps=0.1)``).

Fitted on the standardised real training images, flattened: ``W = U diag(1 / sqrt(S + eps)) U^T`` from the
eigen-decomposition of their (unbiased) covariance, then ``zca(x) = (x - mean) W``. A set condensed in ZCA space
is trained on as stored, and the test set goes through the same transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from yoco.errors import YocoError
from yoco.protocol import ZCA_EPS


@dataclass
class ZCA:
    """A fitted ZCA transform for images of one shape."""

    mean: torch.Tensor
    transform: torch.Tensor
    shape: tuple[int, int, int]

    def __call__(self, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """Whiten ``[N, C, H, W]`` images (standardised, like the ones it was fitted on)."""
        if tuple(x.shape[1:]) != self.shape:
            raise YocoError(f"ZCA was fitted on {list(self.shape)} images, got {list(x.shape[1:])}")
        t, m = self.transform.to(x.device), self.mean.to(x.device)
        out = [((part.flatten(1).double() - m) @ t).float() for part in x.split(batch)]
        return torch.cat(out).view(-1, *self.shape)


def fit_zca(x: torch.Tensor, eps: float = ZCA_EPS, batch: int = 4096) -> ZCA:
    """Fit ZCA whitening on ``[N, C, H, W]`` images (float64 accumulation, in chunks)."""
    n = x.shape[0]
    if n < 2:
        raise YocoError("ZCA needs at least two images to fit")
    d = x[0].numel()
    mean = torch.zeros(d, dtype=torch.float64)
    for part in x.split(batch):
        mean += part.flatten(1).double().sum(0)
    mean /= n
    cov = torch.zeros(d, d, dtype=torch.float64)
    for part in x.split(batch):
        centred = part.flatten(1).double() - mean
        cov += centred.T @ centred
    cov /= n - 1
    s, u = torch.linalg.eigh(cov)
    transform = u @ torch.diag(1.0 / torch.sqrt(s.clamp_min(0) + eps)) @ u.T
    return ZCA(mean, transform, tuple(x.shape[1:]))


WHITENED_CORRELATION = 0.5  # natural images: neighbouring pixels correlate at about 0.9; MTT's ZCA (eps 0.1): 0.2-0.4


def neighbour_correlation(images: torch.Tensor) -> float:
    """Mean correlation between horizontally neighbouring values of ``[N, C, H, W]`` images, each image and channel
    centred on its own mean. Natural (and condensed) images score high; ZCA whitening removes most of it, so a low
    score says the values were whitened. NaN-free: 0 for constant images or fewer than two columns."""
    if images.dim() != 4 or images.shape[-1] < 2:
        return 0.0
    x = images.double()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    left, right = x[..., :-1].flatten(), x[..., 1:].flatten()
    denom = float(left.norm() * right.norm())
    return float(left @ right) / denom if denom > 0 else 0.0


def looks_whitened(images: torch.Tensor) -> bool:
    """Whether images at least 8 pixels wide look ZCA-whitened (:func:`neighbour_correlation` below
    :data:`WHITENED_CORRELATION`)."""
    return images.dim() == 4 and images.shape[-1] >= 8 and neighbour_correlation(images) < WHITENED_CORRELATION
