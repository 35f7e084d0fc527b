"""Networks by name: ``create_model("convnet3", num_classes=10, channels=1, image_size=28)``."""

from yoco.models import convnet, densenet, resnet  # noqa: F401  (fill the registry)
from yoco.models.registry import create_model, model_names, register_model

__all__ = ["create_model", "model_names", "register_model"]
