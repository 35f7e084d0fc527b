"""ResNets: ResNet-AP-10 (IDC's ImageNet-subset network, average-pool downsampling) and ResNet-18."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from yoco.models.registry import Classifier, norm_layer, register_model


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut; the first conv strides when the stage downsamples (torchvision's block)."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = norm_layer(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), norm_layer(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
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
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1, norm))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.embed_dim = cin
        self.classifier = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


class APBlock(nn.Module):
    """IDC's ``resnet_ap.BasicBlock``: conv -> norm -> ReLU, then (when downsampling) a 2x2 average pool, conv ->
    norm, plus the shortcut (1x1 conv -> average pool -> norm when the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none")
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none")
        self.bn2 = norm_layer(norm, cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=norm == "none"),
                                            nn.AvgPool2d(stride, stride), norm_layer(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.stride != 1:
            out = F.avg_pool2d(out, self.stride, self.stride)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


def ap_stem_size(image_size: tuple[int, int]) -> str:
    """IDC's ``ResNetAP`` stem by input size (``net_size``): ``small`` up to 64 px (3x3 conv), ``mid`` up to 128
    (3x3 conv, 2x2 average pool), ``large`` above (7x7 conv with stride 1, 4x4 average pool: 224 -> 56)."""
    side = image_size[-1]  # IDC reads one side (its images are square)
    return "small" if side <= 64 else "mid" if side <= 128 else "large"


class ResNetAP(Classifier):
    """IDC's ``models/resnet_ap.py`` ``ResNetAP`` (ImageNet layout): every convolution has stride 1 and downsampling
    is average pooling, so gradients w.r.t. the input stay smooth for condensation.

    Stem by input size (:func:`ap_stem_size`): conv (7x7 for ``large``, else 3x3) -> norm -> ReLU -> average pool
    (4 for ``large``, 2 for ``mid``, none for ``small``); then stages of :class:`APBlock` at ``width`` x 1, 2, 4, 8
    channels, the first block of stages 2-4 pooling by 2; global average pool; linear classifier.
    Initialisation as IDC: conv weights ~ N(0, sqrt(2 / (k * k * out_channels))) (He, fan-out), norm weight 1 and
    bias 0, the linear layer PyTorch's default. IDC's ``width`` is a multiplier of 64; here it is the first stage's
    channel count (64 = IDC's 1.0).
    """

    def __init__(self, num_classes: int, channels: int, image_size: tuple[int, int], blocks: tuple[int, ...] = (1, 1, 1, 1),
                 width: int = 64, norm: str = "instance") -> None:
        super().__init__()
        self.stem_size = ap_stem_size(image_size)
        large = self.stem_size == "large"
        stem: list[nn.Module] = [nn.Conv2d(channels, width, 7 if large else 3, padding=3 if large else 1,
                                           bias=norm == "none"), norm_layer(norm, width), nn.ReLU(inplace=True)]
        if self.stem_size != "small":
            stem.append(nn.AvgPool2d(4 if large else 2, 4 if large else 2))
        self.layer0 = nn.Sequential(*stem)
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            stage = []
            for j in range(n):
                stage.append(APBlock(cin, cout, 2 if (j == 0 and i > 0) else 1, norm))
                cin = cout
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.embed_dim = cin
        self.classifier = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.stages(self.layer0(x)), 1).flatten(1)


@register_model("resnet10_ap")
def resnet10_ap(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ResNetAP:
    """IDC's ResNet-AP-10 with instance norm (ImageNet subsets): ``models/resnet_ap.py``, depth 10."""
    kw = {"blocks": (1, 1, 1, 1), "norm": "instance", **kw}
    return ResNetAP(num_classes, channels, image_size, **kw)


@register_model("resnet18")
def resnet18(num_classes: int, channels: int, image_size: tuple[int, int], **kw: object) -> ResNet:
    """ResNet-18 with batch norm, for cross-architecture checks."""
    kw = {"blocks": (2, 2, 2, 2), "norm": "batch", **kw}
    return ResNet(num_classes, channels, image_size, **kw)
