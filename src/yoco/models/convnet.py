"""ConvNet, the standard network of dataset condensation (DC, DSA, MTT, IDC).

Each of ``depth`` blocks is conv3x3 -> norm -> ReLU -> pool(2); a linear layer classifies the flattened
features. ConvNet-3 with width 128, instance norm and average pooling is IDC's evaluation network.
"""

from __future__ import annotations

import torch
from torch import nn

from yoco.errors import YocoError
from yoco.models.registry import Classifier, norm_layer, register_model


class ConvNet(Classifier):
    """``depth`` conv blocks then a linear classifier."""

    def __init__(
        self,
        num_classes: int,
        channels: int,
        image_size: tuple[int, int],
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        pooling: str = "avg",
    ) -> None:
        super().__init__()
        if pooling not in ("avg", "max", "none"):
            raise YocoError(f"unknown pooling {pooling!r}; choose avg, max or none")
        layers: list[nn.Module] = []
        h, w = image_size
        c = channels
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), norm_layer(norm, width), nn.ReLU(inplace=True)]
            if pooling != "none":
                layers.append(nn.AvgPool2d(2) if pooling == "avg" else nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = width
        if h < 1 or w < 1:
            raise YocoError(f"image size {image_size} is too small for a depth-{depth} ConvNet")
        self.body = nn.Sequential(*layers)
        self.embed_dim = width * h * w
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


@register_model("convnet")
def convnet(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ConvNet:
    """ConvNet with settable ``width``, ``depth``, ``norm`` and ``pooling``."""
    return ConvNet(num_classes, channels, image_size, **kw)


@register_model("convnet3")
def convnet3(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ConvNet:
    """IDC's ConvNet-3: width 128, instance norm, average pooling (``width`` may be overridden)."""
    kw = {"width": 128, "depth": 3, "norm": "instance", "pooling": "avg", **kw}
    return ConvNet(num_classes, channels, image_size, **kw)


@register_model("convnet4")
def convnet4(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ConvNet:
    """ConvNet-4, used for 64x64 inputs (e.g. low-resolution ImageNet subsets)."""
    kw = {"width": 128, "depth": 4, "norm": "instance", "pooling": "avg", **kw}
    return ConvNet(num_classes, channels, image_size, **kw)
