"""ResNets: ResNet-10-AP (IDC's ImageNet-subset network, average-pool downsampling) and ResNet-18."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yoco.models.registry import Classifier, norm_layer, register_model


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut. With ``avgpool`` the stride-2 downsampling is an average pool after
    the first conv (the "AP" variant), which keeps gradients smooth for condensation."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str, avgpool: bool) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2) if (avgpool and stride == 2) else nn.Identity()
        conv_stride = 1 if avgpool else stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=conv_stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = norm_layer(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            down: list[nn.Module] = []
            if avgpool and stride == 2:
                down += [nn.AvgPool2d(2), nn.Conv2d(cin, cout, 1, bias=False)]
            else:
                down += [nn.Conv2d(cin, cout, 1, stride=stride, bias=False)]
            self.shortcut = nn.Sequential(*down, norm_layer(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.pool(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """A ResNet of ``BasicBlock`` stages; a 7x7/stride-2 stem for inputs of 128 px and more, 3x3 otherwise."""

    def __init__(
        self,
        num_classes: int,
        channels: int,
        image_size: tuple[int, int],
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        width: int = 64,
        norm: str = "batch",
        avgpool: bool = False,
    ) -> None:
        super().__init__()
        big = min(image_size) >= 128
        stem: list[nn.Module] = [
            nn.Conv2d(channels, width, 7 if big else 3, stride=2 if big else 1, padding=3 if big else 1, bias=False),
            norm_layer(norm, width),
            nn.ReLU(inplace=True),
        ]
        if big:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        layers: list[nn.Module] = [nn.Sequential(*stem)]
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1, norm, avgpool))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.embed_dim = cin
        self.classifier = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


@register_model("resnet10_ap")
def resnet10_ap(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ResNet:
    """IDC's ResNet-10 with average-pool downsampling and instance norm (ImageNet subsets)."""
    kw = {"blocks": (1, 1, 1, 1), "norm": "instance", "avgpool": True, **kw}
    return ResNet(num_classes, channels, image_size, **kw)


@register_model("resnet18")
def resnet18(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ResNet:
    """ResNet-18 with batch norm, for cross-architecture checks."""
    kw = {"blocks": (2, 2, 2, 2), "norm": "batch", **kw}
    return ResNet(num_classes, channels, image_size, **kw)
