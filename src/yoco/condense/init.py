"""The synthetic set's start: IDC's "mix" initialisation (the first real images of each class, downsampled and
tiled into the stored images), random real images, or noise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from yoco.condense.config import INITS, _hw
from yoco.data.condensed import (
    CondensedMeta,
    CondensedSet,
)
from yoco.errors import YocoError

if TYPE_CHECKING:
    from yoco.data.datasets import RealDataset


def init_synthetic(real: RealDataset, ipc: int, factor: int, init: str = "mix", *, random: bool = False,
                   generator: torch.Generator | None = None) -> CondensedSet:
    """Starting synthetic set: ``ipc`` stored images per class, class-major, in pixel space [0, 1].

    ``mix`` (IDC's multi-formation start): every stored image holds ``factor**2`` real images of its class,
    each downsampled by ``factor`` and tiled row-major, so decoding gives those real images back, blurred by
    the down/up-sampling. As IDC: the first ``ipc * factor**2`` images of the class in dataset order, tile
    ``k`` of stored image ``t`` holding image ``k * ipc + t``, nearest-neighbour downsampling. With ``random``:
    random images of the class (from ``generator``), tile ``k`` of stored image ``t`` holding pick
    ``t * factor**2 + k``, area-average downsampling. ``real``: ``ipc`` real images stored whole (the first ones,
    or random ones; IDC calls this ``random``). ``noise``: uniform noise.
    For ``mix`` and ``real``, ``meta.extra["source_indices"][j]`` is the real training index behind decoded
    image ``j`` (``real``: behind stored image ``j``).
    """
    if init not in INITS:
        raise YocoError(f"unknown init {init!r}; choose {', '.join(INITS)}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    k, c, h, w = real.num_classes, real.channels, *_hw(real)
    f = factor if init == "mix" else 1
    labels = torch.arange(k).repeat_interleave(ipc)
    extra: dict[str, Any] = {"init": init, "init_random": random}
    if init == "noise":
        images = torch.rand(k * ipc, c, h, w, generator=g)
    else:
        n = ipc * f * f
        picks = torch.cat([_sample(idx, n, g) if random else _first(idx, n, real.name)
                           for idx in real.class_indices("train")])
        if f > 1 and not random:
            # IDC's order: within a class, pick k * ipc + t goes to tile k of stored image t; reorder the picks
            # so that they read stored image by stored image, tile by tile, like decoding.
            order = torch.arange(n).view(f * f, ipc).T.reshape(-1)
            picks = torch.cat([picks[c0 * n:(c0 + 1) * n][order] for c0 in range(k)])
        x = real.train_images[picks].to(torch.float32) / 255.0
        if f > 1 and (h % f or w % f):
            x = _tile_uneven(x, f, random)
        elif f > 1:
            small = (F.avg_pool2d(x, f) if random else F.interpolate(x, size=(h // f, w // f), mode="nearest"))
            # Tile j of stored image i is pick i * f^2 + j; the reshape is decode_images' split, inverted.
            tiles = small.reshape(k * ipc, f, f, c, h // f, w // f)
            x = tiles.permute(0, 3, 1, 4, 2, 5).reshape(k * ipc, c, h, w)
        images = x
        extra["source_indices"] = picks.tolist()
    meta = CondensedMeta(dataset=real.name, num_classes=k, method=f"idc-init-{init}", ipc=ipc, factor=factor,
                         normalized=False, mean=tuple(real.mean), std=tuple(real.std), extra=extra)
    return CondensedSet(images.clamp(0, 1), labels, meta, source=f"{real.name}:idc-init-{init}")


def _tile_uneven(x: torch.Tensor, f: int, random: bool) -> torch.Tensor:
    """``x`` (``[n * f^2, C, H, W]``, pick ``i * f^2 + j`` for tile ``j`` of stored image ``i``) tiled into ``n``
    images when ``f`` does not divide the size: as IDC's ``Synthesizer.init`` (condense.py:64-84), tile rows and
    columns are ``H // f + 1`` pixels for the first ``H % f`` of them and ``H // f`` after (224, factor 3: 75, 75,
    74), each real image resized to its tile (nearest; area averaging for random picks)."""
    n, c, h, w = x.shape[0] // (f * f), *x.shape[1:]
    out = x.new_empty(n, c, h, w)
    sizes_h = [h // f + (1 if i < h % f else 0) for i in range(f)]
    sizes_w = [w // f + (1 if j < w % f else 0) for j in range(f)]
    picks = x.view(n, f * f, c, h, w)
    top = 0
    for i, th in enumerate(sizes_h):
        left = 0
        for j, tw in enumerate(sizes_w):
            part = picks[:, i * f + j]
            out[:, :, top:top + th, left:left + tw] = F.interpolate(part, size=(th, tw),
                                                                    mode="area" if random else "nearest")
            left += tw
        top += th
    return out


def _first(idx: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """The first ``n`` entries of a class's training indices (dataset order), as IDC's ``class_sample``."""
    if n > len(idx):
        raise YocoError(f"IDC init needs {n} real images per class but a class of {name} has {len(idx)}")
    return torch.sort(idx).values[:n]


def _sample(idx: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` entries of ``idx`` without replacement, cycling through fresh permutations if ``n > len(idx)``."""
    perms = [idx[torch.randperm(len(idx), generator=g)] for _ in range(-(-n // len(idx)))]
    return torch.cat(perms)[:n]
