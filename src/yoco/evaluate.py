"""Evaluate a condensed set the way the field does: train a fresh network on it, test on the real test set.

IDC's protocol: ConvNet-3 (ImageNet subsets: ResNet-10-AP), batch 64, SGD lr 0.01 / momentum 0.9 / wd 5e-4,
lr x0.2 at 2/3 and 5/6, DSA ``color_crop_flip_scale_rotate`` + CutMix (p 0.5), epochs from
:func:`protocol_epochs`. Several repeats with different seeds, reported as mean ± std of the last test
accuracy (the honest headline) and of the best test accuracy seen at the test points (what the reference
code also logs).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from yoco.data.condensed import CondensedSet, decode, normalize
from yoco.data.datasets import RealDataset
from yoco.errors import YocoError
from yoco.models import create_model
from yoco.train import TrainConfig, accuracy, resolve_device, seeded, train

log = logging.getLogger(__name__)

IMAGENET_SUBSETS = ("imagenet10", "imagenet100")


def protocol_epochs(dataset: str, images_per_class: int, num_classes: int) -> int:
    """Training epochs of IDC's evaluation protocol for ``images_per_class`` decoded images per class.

    1000 for CIFAR, SVHN, MNIST and Fashion-MNIST; for ImageNet subsets a table by images per class
    (x2/3 for 100 classes), since fewer images need more epochs to see the same number of steps.
    """
    if dataset not in IMAGENET_SUBSETS:
        return 1000
    n = images_per_class
    epochs = 3000 if n <= 1 else 2000 if n <= 10 else 1500 if n <= 50 else 1000 if n <= 200 else 500 if n <= 500 else 300
    return epochs * 2 // 3 if num_classes >= 100 else epochs


def default_model(dataset: str) -> str:
    """ResNet-10-AP for ImageNet subsets, ConvNet-3 for everything else (IDC's choices)."""
    return "resnet10_ap" if dataset in IMAGENET_SUBSETS else "convnet3"


@dataclass
class EvalConfig:
    """How to evaluate; ``None`` fields follow the protocol for the dataset and set size."""

    model: str | None = None
    width: int | None = None
    epochs: int | None = None
    repeat: int = 3
    seed: int = 0
    batch_size: int = 64
    lr: float = 0.01
    dsa: str = "color_crop_flip_scale_rotate"
    mix: str = "cutmix"
    mix_p: float = 0.5
    test_points: int = 5
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_compatible(cs: CondensedSet, real: RealDataset) -> None:
    """Refuse before training when the condensed set cannot be tested on ``real``'s test set."""
    if cs.num_classes != real.num_classes:
        raise YocoError(f"{cs.source}: {cs.num_classes} classes, but {real.name} has {real.num_classes}")
    shape, want = tuple(cs.images.shape[1:]), (real.channels, *real.image_size)
    if shape != want:
        raise YocoError(f"{cs.source}: images are {list(shape)} (C, H, W) but {real.name} test images are {list(want)}")


def evaluate_condensed(cs: CondensedSet, real: RealDataset, cfg: EvalConfig, progress: bool = True) -> dict[str, Any]:
    """Train ``cfg.repeat`` fresh networks on the decoded ``cs`` and test each on ``real``'s test set.

    Returns a JSON-ready dict: one entry per run (seed, last and best test accuracy, the test curve,
    seconds), mean and std (population, ``np.std``) of last and best, and the resolved config.
    """
    check_compatible(cs, real)
    dec = decode(cs)
    counts = dec.class_counts()
    device = resolve_device(cfg.device)
    model_name = cfg.model or default_model(real.name)
    epochs = cfg.epochs or protocol_epochs(real.name, math.ceil(len(dec) / real.num_classes), real.num_classes)
    tcfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, dsa=cfg.dsa, flip=real.flip,
                       mix=cfg.mix, mix_p=cfg.mix_p)
    x = dec.normalized_images(real.mean, real.std).to(device)
    y = dec.labels.to(device)
    test_x = normalize(real.test_float(), real.mean, real.std).to(device)
    test_y = real.test_labels.to(device)
    points = sorted({max(1, round(epochs * (i + 1) / cfg.test_points)) - 1 for i in range(max(cfg.test_points, 1))})
    kw = {"width": cfg.width} if cfg.width else {}
    runs = []
    t_all = time.perf_counter()
    for r in range(cfg.repeat):
        seed = cfg.seed + r
        with seeded(seed):
            model = create_model(model_name, real.num_classes, real.channels, real.image_size, **kw).to(device)
        curve: list[tuple[int, float]] = []

        def test_point(epoch: int, m: torch.nn.Module, curve: list = curve) -> None:
            if epoch in points:
                curve.append((epoch + 1, accuracy(m, test_x, test_y)))

        t0 = time.perf_counter()
        train(model, x, y, dataclasses.replace(tcfg, seed=seed), on_epoch=test_point, progress=progress,
              desc=f"eval {r + 1}/{cfg.repeat}")
        last = curve[-1][1]
        runs.append({"seed": seed, "last": last, "best": max(a for _, a in curve), "curve": curve,
                     "seconds": time.perf_counter() - t0})
        log.info("run %d/%d: last %.2f%%, best %.2f%%", r + 1, cfg.repeat, 100 * last, 100 * runs[-1]["best"])
    lasts = np.array([r["last"] for r in runs])
    bests = np.array([r["best"] for r in runs])
    return {
        "source": cs.source,
        "dataset": real.name,
        "decoded_images": len(dec),
        "images_per_class": counts,
        "last_mean": float(lasts.mean()), "last_std": float(lasts.std()),
        "best_mean": float(bests.mean()), "best_std": float(bests.std()),
        "runs": runs,
        "config": {**cfg.to_dict(), "model": model_name, "train": tcfg.to_dict(), "device": str(device),
                   "condensed_meta": cs.meta.to_dict(), "test_points": [p + 1 for p in points]},
        "wall_seconds": time.perf_counter() - t_all,
    }

