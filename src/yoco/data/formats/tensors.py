"""MTT (``images_best.pt`` + ``labels_best.pt``, maybe ``lr_best.pt``) and DD-Ranking (``images.pt``, ``labels.pt``,
``lr.pt``, or the ``_best`` names)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from yoco.data.condensed import CondensedSet
from yoco.data.formats.base import (
    IMAGE_FILES,
    MAX_MTT_LR,
    OWN_META,
    _hint,
    _torch_load,
    companion_files,
    describe,
    from_own_meta,
)
from yoco.data.readers import Raw, Request, register
from yoco.errors import YocoError


@register(
    "mtt",
    factor=1,
    normalized=True,
    default_file="images_best.pt",
    uses=("labels_path",),
    summary="MTT images_best.pt + labels_best.pt (and lr_best.pt, the learned learning rate) beside it",
)


def read_mtt(path: Path, req: Request) -> Raw:
    """MTT's ``images_best.pt`` (a tensor) with ``labels_best.pt`` (and ``lr_best.pt``) from the same folder."""
    return _read_tensor_files(path, req, "mtt")


@register(
    "dd-ranking",
    factor=1,
    normalized=True,
    uses=("labels_path",),
    folder=True,
    summary="DD-Ranking's layout: a folder of images.pt, labels.pt (hard or soft) and lr.pt (the _best names too)",
)


def read_ddranking(path: Path, req: Request) -> Raw | CondensedSet:
    """DD-Ranking's files: ``images.pt`` (standardised ``[N, C, H, W]``), ``labels.pt`` (``[N]`` or soft ``[N, C]``)
    and ``lr.pt`` (the learned learning rate), or MTT's ``_best`` names; ``path`` is the folder or the images file.
    A ``condensed.json`` beside them (``yoco export --format dd-ranking``) restores yoco's metadata."""
    if path.is_dir():
        found = [path / name for name in IMAGE_FILES if (path / name).is_file()]
        if not found:
            raise YocoError(f"{path}: no {' or '.join(IMAGE_FILES)} in this folder (DD-Ranking's layout)")
        if len(found) > 1:
            raise YocoError(f"{path}: holds both {found[0].name} and {found[1].name}; pass the one to import as the "
                            "path")
        path = found[0]
    raw = _read_tensor_files(path, req, "dd-ranking")
    own = path.with_name(OWN_META)
    return from_own_meta(raw, own) if own.is_file() else raw


def _read_tensor_files(path: Path, req: Request, fmt: str) -> Raw:
    """An images tensor file with its labels file and, where there is one, its learned learning rate."""
    if path.stem.startswith("labels") and req.labels_path is None:
        raise YocoError(f"{path}: this is a labels file; pass the images file ({' or '.join(IMAGE_FILES)}) or its "
                        "folder as the path")
    labels_path, lr_paths = companion_files(path, req.labels_path)
    if not labels_path.is_file():
        raise YocoError(f"{labels_path}: labels file not found beside {path.name}; name it with --labels FILE "
                        "(labels_path in Python)")
    images = _torch_load(path)
    if not torch.is_tensor(images):
        raise YocoError(
            f"{path}: expected an image tensor [N, C, H, W], found {describe(images)}{_hint(path, fmt)}"
        )
    labels = _torch_load(labels_path)
    if not torch.is_tensor(labels) or labels.dim() == 0:
        raise YocoError(f"{labels_path}: expected a label tensor [N], found {describe(labels)}")
    if images.dim() > 0 and labels.shape[0] != images.shape[0]:
        raise YocoError(f"{path}: {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels")
    extra: dict[str, Any] = {"labels_file": labels_path.name}
    lr_path = next((f for f in lr_paths if f.is_file()), None)
    if lr_path is not None:  # MTT learns the evaluation learning rate with the images
        extra["recipe"] = {"lr": _read_lr(lr_path), "lr_file": lr_path.name}
    return Raw(images, labels, extra)


def _read_lr(path: Path) -> float:
    lr = _torch_load(path)
    if not torch.is_tensor(lr) or lr.numel() != 1 or lr.is_complex():
        raise YocoError(f"{path}: expected one positive learning rate, found {describe(lr)}")
    value = float(lr)
    if not (math.isfinite(value) and 0 < value <= MAX_MTT_LR):
        raise YocoError(f"{path}: learning rate {value:g} is outside (0, {MAX_MTT_LR:g}] (MTT learns about "
                        "0.01); refusing to train with it: remove the file or fix it")
    return value
