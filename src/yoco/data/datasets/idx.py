"""MNIST and Fashion-MNIST in the IDX format torchvision leaves on disk (gzipped or not)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from yoco.data.datasets.base import (
    DIGITS,
    MAX_ARRAY_BYTES,
    Finder,
    Splits,
    finder,
    labels_of,
    open_data,
    register,
)
from yoco.errors import YocoError
from yoco.protocol import NORMALIZATION

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801
IDX_NAMES = tuple(f"{s}{e}" for s in IDX_FILES for e in ("", ".gz"))


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not), checking its magic number and length.

    ``magic`` is 0x00000803 for image files ([N, H, W]) and 0x00000801 for label files ([N]). The header is
    checked before the data is read: a size above :data:`MAX_ARRAY_BYTES` is refused, so a corrupt or
    hostile header (or a gzip bomb) cannot make it allocate more.
    """
    path = Path(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    try:
        with open_data(path) as fh:
            head = fh.read(header)
            if len(head) < 4:
                raise YocoError(f"{path}: truncated IDX file ({len(head)} bytes, no header)")
            found = struct.unpack(">I", head[:4])[0]
            if found != magic:
                kind = "images" if magic == IDX_IMAGES else "labels"
                raise YocoError(f"{path}: IDX magic number is 0x{found:08x}, expected 0x{magic:08x} ({kind} as "
                                "unsigned bytes)")
            if len(head) < header:
                raise YocoError(f"{path}: truncated IDX file ({len(head)} bytes, the header alone needs {header})")
            dims = struct.unpack(f">{ndim}I", head[4:])
            size = math.prod(dims)
            if size > MAX_ARRAY_BYTES:
                raise YocoError(f"{path}: IDX header declares {' x '.join(map(str, dims))} = {size} bytes, more "
                                f"than the {MAX_ARRAY_BYTES} allowed; the file is corrupt")
            data = fh.read(size + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise YocoError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise YocoError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) != size:
        what = "truncated IDX file" if len(data) < size else "IDX file longer than its header says"
        found_size = f"{len(data)}" if len(data) <= size else "more"
        raise YocoError(f"{path}: {what}: header says {' x '.join(map(str, dims))} = {size} bytes of data, "
                        f"found {found_size}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims).copy()


def _idx_finder(torchvision_folder: str) -> Finder:
    """A finder for the four IDX files in ``root``, ``root/<torchvision_folder>/raw`` or ``root/raw``."""
    return finder(("", f"{torchvision_folder}/raw", "raw"), [f"{s}{e}" for s in IDX_FILES for e in ("", ".gz")],
                   "IDX files", f"{', '.join(IDX_FILES)} (each optionally .gz) in {{root}} or "
                   f"{{root}}/{torchvision_folder}/raw")


def _idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise YocoError(f"{folder / stem}: missing (neither {stem} nor {stem}.gz is in {folder})")


def _load_idx(folder: Path, classes: Sequence[str]) -> Splits:
    out = []
    for images_stem, labels_stem in ((IDX_FILES[0], IDX_FILES[1]), (IDX_FILES[2], IDX_FILES[3])):
        images_path, labels_path = _idx_file(folder, images_stem), _idx_file(folder, labels_stem)
        x = read_idx(images_path, IDX_IMAGES)
        y = read_idx(labels_path, IDX_LABELS)
        if len(x) != len(y):
            raise YocoError(f"{labels_path}: {len(y)} labels but {images_path.name} holds {len(x)} images")
        out += [torch.from_numpy(x).unsqueeze(1), labels_of(y, len(classes), labels_path)]
    return Splits(*out, classes=list(classes))


@register("fashion-mnist", find=_idx_finder("FashionMNIST"), files=IDX_NAMES,
          description="Fashion-MNIST, 28x28 grey, 10 classes",
          mean=NORMALIZATION["fashion-mnist"][0], std=NORMALIZATION["fashion-mnist"][1],
          root="/usr/share/datasets/fashion-mnist",
          hint="install the Debian package dataset-fashion-mnist or pass the folder holding the IDX files")


def load_fashion_mnist(folder: Path, resolution: int | None) -> Splits:
    """Fashion-MNIST from its four IDX files."""
    return _load_idx(folder, FASHION_MNIST_CLASSES)


@register("mnist", find=_idx_finder("MNIST"), files=IDX_NAMES, description="MNIST digits, 28x28 grey, 10 classes",
          mean=NORMALIZATION["mnist"][0], std=NORMALIZATION["mnist"][1])


def load_mnist(folder: Path, resolution: int | None) -> Splits:
    """MNIST from its four IDX files."""
    return _load_idx(folder, DIGITS)


