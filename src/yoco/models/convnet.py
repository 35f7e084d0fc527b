"""ConvNet, the standard network of dataset condensation (DC, DSA, MTT, IDC).

Each of ``depth`` blocks is conv3x3 -> norm -> ReLU -> pool(2); a linear layer classifies the flattened
features. ConvNet-3 with width 128, instance norm and average pooling is IDC's evaluation network.

On one-channel input the first conv pads by 3 instead of 1, as IDC's ``models/convnet.py`` does
(``padding=3 if channel == 1 and d == 0``): 28x28 MNIST-like images become 32x32 after that conv, so every
dataset ends at the same 128x4x4 = 2048 features and the networks match the published ones.
"""

from __future__ import annotations

import torch
from torch import nn

from yoco import protocol
from yoco.errors import YocoError
from yoco.models.registry import Classifier, norm_layer, register_model


class ConvNet(Classifier):
    """``depth`` conv blocks then a linear classifier."""

    def __init__(
        self,
        num_classes: int,
        channels: int,
        image_size: tuple[int, int],
        width: int = protocol.CONVNET_WIDTH,
        depth: int = protocol.CONVNET_DEPTH,
        norm: str = "instance",
        pooling: str = "avg",
    ) -> None:
        super().__init__()
        if pooling not in ("avg", "max", "none"):
            raise YocoError(f"unknown pooling {pooling!r}; choose avg, max or none")
        layers: list[nn.Module] = []
        h, w = image_size
        c = channels
        for d in range(depth):
            pad = first_conv_padding(channels) if d == 0 else 1
            layers += [nn.Conv2d(c, width, 3, padding=pad), norm_layer(norm, width), nn.ReLU(inplace=True)]
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
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


def first_conv_padding(channels: int) -> int:
    """IDC pads the first conv of one-channel inputs by 3 (28 -> 32 px); every other conv pads by 1."""
    return 3 if channels == 1 else 1


@register_model("convnet")
def convnet(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ConvNet:
    """ConvNet with settable ``width``, ``depth``, ``norm`` and ``pooling``."""
    return ConvNet(num_classes, channels, image_size, **kw)


@register_model("convnet3")
def convnet3(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ConvNet:
    """IDC's ConvNet-3: width 128, instance norm, average pooling (``width`` may be overridden)."""
    kw = {"width": protocol.CONVNET_WIDTH, "depth": protocol.CONVNET_DEPTH, "norm": "instance", "pooling": "avg", **kw}
    return ConvNet(num_classes, channels, image_size, **kw)


@register_model("convnet4")
def convnet4(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ConvNet:
    """ConvNet-4, used for 64x64 inputs (e.g. low-resolution ImageNet subsets)."""
    kw = {"width": protocol.CONVNET_WIDTH, "depth": 4, "norm": "instance", "pooling": "avg", **kw}
    return ConvNet(num_classes, channels, image_size, **kw)
