"""Random real images as a "condensed" set: the baseline every condensation paper reports."""

from __future__ import annotations

import torch

from yoco.data.condensed import CondensedMeta, CondensedSet
from yoco.data.datasets import RealDataset
from yoco.errors import YocoError


def random_real_subset(real: RealDataset, ipc: int, seed: int = 0) -> CondensedSet:
    """``ipc`` random training images per class, in pixel space, class by class (factor 1)."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c, idx in enumerate(real.class_indices("train")):
        if ipc < 1 or ipc > len(idx):
            raise YocoError(f"{real.name}: cannot take {ipc} images of class {c}, which has {len(idx)}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:ipc]])
    keep = torch.cat(picks)
    meta = CondensedMeta(dataset=real.name, num_classes=real.num_classes, method="random-real", ipc=ipc, factor=1,
                         normalized=False, extra={"seed": seed})
    images = real.train_images[keep].to(torch.float32) / 255.0
    return CondensedSet(images, real.train_labels[keep], meta, source=f"{real.name}:random-real-ipc{ipc}-seed{seed}")
