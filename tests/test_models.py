"""Every registered model: forward pass and embedding for any channel count and resolution."""

from __future__ import annotations

import pytest
import torch

from yoco.errors import YocoError
from yoco.models import create_model, model_names

SHAPES = [(1, 28), (3, 32), (3, 64)]


def test_registry_lists_the_models_the_protocols_need() -> None:
    assert {"convnet", "convnet3", "convnet4", "resnet10_ap", "resnet18", "densenet"} <= set(model_names())


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize(("channels", "size"), SHAPES)
def test_forward_and_features(name: str, channels: int, size: int) -> None:
    if name == "convnet4" and size < 32:
        pytest.skip("four 2x poolings need at least 16 px; 28 is covered by the too-small test")
    torch.manual_seed(0)
    model = create_model(name, 7, channels=channels, image_size=size, width=8)
    x = torch.randn(3, channels, size, size)
    logits = model(x)
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    emb = model.features(x)
    assert emb.dim() == 2 and emb.shape[0] == 3
    assert torch.allclose(model.classifier(emb), logits, atol=1e-5)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_convnet3_is_idcs_network() -> None:
    model = create_model("convnet3", 10, channels=3, image_size=32)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 128, 128]
    assert sum(isinstance(m, torch.nn.GroupNorm | torch.nn.InstanceNorm2d) for m in model.modules()) == 3
    assert model.classifier.in_features == 128 * 4 * 4


def test_bad_model_requests_are_clear() -> None:
    with pytest.raises(YocoError, match="unknown model 'vit'.*known models: .*convnet3"):
        create_model("vit", 10)
    with pytest.raises(YocoError, match="too small for a depth-5 ConvNet"):
        create_model("convnet", 10, channels=1, image_size=16, depth=5)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_convnet3_ends_at_2048_features_for_28px_grey_and_32px_colour(channels: int, size: int) -> None:
    # IDC's models/convnet.py pads the first conv of one-channel input by 3 (28 -> 32), so MNIST-like data and
    # CIFAR both reach 128 x 4 x 4 features.
    model = create_model("convnet3", 10, channels=channels, image_size=size)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.padding == ((3, 3) if channels == 1 else (1, 1))
    assert model.classifier.in_features == 2048
    assert model.features(torch.randn(2, channels, size, size)).shape == (2, 2048)
