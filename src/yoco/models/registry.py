"""Name -> model constructor registry, so every stage builds networks the same way (``create_model``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from yoco.errors import YocoError
from yoco.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make ``fn(num_classes, channels, image_size, **kw)`` available as ``name``."""
    return MODELS.register(name)


def model_names() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(MODELS.names())


def create_model(
    name: str, num_classes: int, channels: int = 3, image_size: int | tuple[int, int] = 32, **kwargs: object
) -> nn.Module:
    """Build the network registered as ``name`` for the given input shape and number of classes.

    Every model exposes ``features(x) -> [B, D]`` (penultimate embedding) and ``classifier``.
    """
    build = MODELS.get(name)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    return build(num_classes=num_classes, channels=channels, image_size=size, **kwargs)


class Classifier(nn.Module):
    """Base for all models: ``forward(x) = classifier(features(x))``."""

    classifier: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate embedding ``[B, D]``; each model defines it."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation layers the condensation literature uses: instance (GroupNorm with one group per
    channel, affine, as in DC/DSA/IDC), batch, or none."""
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise YocoError(f"unknown norm {kind!r}; choose instance, batch or none")
