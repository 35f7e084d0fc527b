"""yoco's ZCA whitening against kornia's ``ZCAWhitening``, the implementation MTT whitens CIFAR with.

The conventions, read from kornia 0.9's ``kornia/enhance/zca.py`` (``_zca_mean`` and ``linear_transform``):

- both flatten every image to a row and fit on the rows: mean ``mu``, covariance ``X_c^T X_c / (N - 1)``
  (kornia's ``unbiased=True``, its default and what MTT uses; yoco has no biased option, so the test keeps kornia's
  default rather than changing yoco);
- both add ``eps`` to the eigenvalues, ``T = U diag(1 / sqrt(S + eps)) U^T``, and transform ``(x - mu) T``; MTT
  passes ``eps=0.1`` (yoco's ``protocol.ZCA_EPS``), kornia's own default is ``1e-6``, so eps is always given;
- what differs: kornia decomposes the covariance with an SVD in the input's dtype (float32 for float32 images),
  yoco with ``eigh`` in float64 and clamps eigenvalues below zero to zero (the SVD returns their magnitude). Both
  only move the transform by rounding: the same to 1e-10 on float64 input, to float32's rounding on float32 input.
"""

from __future__ import annotations

import pytest
import torch

from yoco.data.zca import fit_zca
from yoco.protocol import ZCA_EPS

kornia = pytest.importorskip("kornia")


def _batch(n: int, shape: tuple[int, int, int], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Correlated, standardised-looking images: a smooth random field plus noise, so whitening has work to do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    x = x + torch.roll(x, 1, dims=-1) + torch.roll(x, 1, dims=-2) + 0.3 * torch.randn(n, *shape, generator=g,
                                                                                     dtype=torch.float64)
    return ((x - x.mean()) / x.std()).to(dtype)


@pytest.mark.parametrize("eps", [ZCA_EPS, 1e-3])
@pytest.mark.parametrize("n", [96, 20])  # more images than features (48), and fewer: a rank-deficient covariance
def test_fit_and_transform_equal_kornia_in_float64(n, eps):
    x = _batch(n, (3, 4, 4), seed=n, dtype=torch.float64)
    ours = fit_zca(x, eps=eps)
    theirs = kornia.enhance.ZCAWhitening(eps=eps, unbiased=True).fit(x)
    assert torch.allclose(ours.mean, theirs.mean_vector.flatten(), atol=1e-12)
    assert torch.allclose(ours.transform, theirs.transform_matrix, atol=1e-10)
    test = _batch(7, (3, 4, 4), seed=100 + n, dtype=torch.float64)
    # yoco's transform returns float32 (what a network trains on); kornia keeps the input's float64
    assert torch.allclose(ours(test).double(), theirs(test), atol=1e-5)


def test_float32_images_agree_to_float32_rounding():
    x = _batch(64, (1, 6, 6), seed=1)
    ours = fit_zca(x, eps=ZCA_EPS)
    theirs = kornia.enhance.ZCAWhitening(eps=ZCA_EPS).fit(x)  # kornia's defaults but eps: unbiased=True, dim=0
    test = _batch(8, (1, 6, 6), seed=2)
    a, b = ours(test), theirs(test)
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape == test.shape
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_the_biased_covariance_is_a_different_transform():
    """The option that would have to match: kornia's ``unbiased=False`` (divide by N) is not yoco's ZCA."""
    x = _batch(20, (1, 4, 4), seed=3, dtype=torch.float64)
    biased = kornia.enhance.ZCAWhitening(eps=ZCA_EPS, unbiased=False).fit(x)
    assert not torch.allclose(fit_zca(x, eps=ZCA_EPS).transform, biased.transform_matrix, atol=1e-6)
