"""A small DenseNet-BC (three dense blocks, growth rate 12) for cross-architecture checks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yoco.errors import YocoError
from yoco.models.registry import Classifier, register_model


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bottleneck, 4k channels) then BN-ReLU-conv3x3 (k channels), concatenated to the input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.net(x)], 1)


class DenseNet(Classifier):
    """Dense blocks of ``layers`` layers each, halving channels and resolution between blocks.

    ``width`` is the stem's channel count, twice the growth rate (the knob ``--width`` turns on every model).
    """

    def __init__(
        self,
        num_classes: int,
        channels: int,
        image_size: tuple[int, int],
        width: int = 24,
        layers: tuple[int, ...] = (6, 6, 6),
    ) -> None:
        super().__init__()
        if width < 2:
            raise YocoError(f"DenseNet width must be at least 2, got {width}")
        growth = width // 2
        c = 2 * growth
        mods: list[nn.Module] = [nn.Conv2d(channels, c, 3, padding=1, bias=False)]
        for i, n in enumerate(layers):
            for _ in range(n):
                mods.append(DenseLayer(c, growth))
                c += growth
            if i < len(layers) - 1:
                mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
                c //= 2
        mods += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*mods)
        self.embed_dim = c
        self.classifier = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


@register_model("densenet")
def densenet(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> DenseNet:
    """Small DenseNet-BC (depth 40 style, growth 12: ``width`` 24)."""
    return DenseNet(num_classes, channels, image_size, **kw)
