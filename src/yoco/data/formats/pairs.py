"""IDC and DREAM: ``data.pt`` holding ``[images, labels]`` of unnormalised pixels."""

from __future__ import annotations

from pathlib import Path

from yoco import protocol
from yoco.data.formats.base import _hint, _torch_load, describe
from yoco.data.readers import Raw, Request, register
from yoco.errors import YocoError


@register(
    "idc",
    factor=2,
    normalized=False,
    default_file="data.pt",
    summary="IDC data.pt: [images, labels], unnormalised [0, 1] multi-formation images (factor 2; 3 for ImageNet)",
    factor_by_dataset={name: protocol.idc_preset(name)["factor"] for name in protocol.IMAGENET_SUBSETS},
)


def read_idc(path: Path, req: Request) -> Raw:
    """IDC's ``data.pt``: ``torch.save([images, labels])`` of the stored synthetic tensor.

    The pixels are *unnormalised* (about [0, 1], slightly outside where the last updates were not clamped):
    IDC's condense.py keeps them in [0, 1] and normalises on the way into the network, and its README says
    "all of our data are unnormalized, so normalization is required for training".
    """
    return _read_pair_file(path, "idc")


@register(
    "dream", factor=2, normalized=False, default_file="data.pt",
    summary="DREAM data.pt: same layout as IDC (unnormalised pixels)",
)


def read_dream(path: Path, req: Request) -> Raw:
    """DREAM's ``data.pt`` (built on IDC's code, same layout)."""
    return _read_pair_file(path, "dream")


def _read_pair_file(path: Path, fmt: str) -> Raw:
    obj = _torch_load(path)
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise YocoError(
            f"{path}: expected a list [images, labels] of two tensors, found {describe(obj)}{_hint(path, fmt)}"
        )
    return Raw(obj[0], obj[1])
