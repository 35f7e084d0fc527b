"""Evaluate a condensed set the way the field does: train a fresh network on it, test on the real test set.

IDC's protocol (numbers in :mod:`yoco.protocol`): ConvNet-3 (ImageNet subsets: ResNet-10-AP), batch 64, SGD lr
0.01 / momentum 0.9 / wd 5e-4, lr x0.2 at 2/3 and 5/6, DSA ``color_crop_flip_scale_rotate`` + CutMix (p 0.5;
ImageNet subsets: the ImageNet augmentation and CutMix on every batch), tested 4 times. Several repeats with different seeds, reported as mean ± std of the last test
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

from yoco import protocol
from yoco.data.condensed import CondensedSet, content_sha256, decode, normalize
from yoco.data.datasets import RealDataset
from yoco.errors import YocoError
from yoco.models import create_model
from yoco.train import TrainConfig, accuracy, resolve_device, seeded, train

log = logging.getLogger(__name__)

@dataclass
class EvalConfig:
    """How to evaluate; ``None`` fields follow the protocol for the dataset and set size."""

    model: str | None = None
    width: int | None = None
    epochs: int | None = None
    repeat: int = protocol.EVAL_REPEATS
    seed: int = 0
    batch_size: int = protocol.BATCH_SIZE
    lr: float = protocol.LR
    dsa: str | None = None
    mix: str = protocol.MIX
    mix_p: float | None = None
    test_points: int = protocol.EVAL_TEST_POINTS
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
    model_name = cfg.model or protocol.eval_model(real.name)
    epochs = cfg.epochs or protocol.eval_epochs(real.name, math.ceil(len(dec) / real.num_classes), real.num_classes)
    aug = protocol.augmentation(real.name, "eval")
    tcfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, base_aug=aug["base_aug"],
                       dsa=aug["dsa"] if cfg.dsa is None else cfg.dsa, flip=real.flip, mix=cfg.mix,
                       mix_p=aug["mix_p"] if cfg.mix_p is None else cfg.mix_p, mean=real.mean, std=real.std)
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
        "sha256": content_sha256(cs),
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

