"""SVHN's cropped digits in the ``.mat`` files of its official release (MATLAB v5, read without scipy's
general loader)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from yoco.data.datasets.base import DIGITS, MAX_ARRAY_BYTES, Splits, first_line, register, some
from yoco.errors import YocoError
from yoco.protocol import NORMALIZATION

SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


def _svhn_find(root: Path) -> Path:
    if any((root / f).is_file() for f in SVHN_FILES):
        return root
    problem = "does not exist" if not root.exists() else "holds no SVHN files"
    raise YocoError(f"{root} {problem}: expected {' and '.join(SVHN_FILES)} (the cropped-digits format) in {root}")


MAT_ITEMSIZE = {"logical": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
                "single": 4, "int64": 8, "uint64": 8, "double": 8}


def read_svhn_mat(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One SVHN split (``train_32x32.mat`` or ``test_32x32.mat``): uint8 images ``[N, 3, H, W]`` and int64
    labels (10, the digit 0, becomes 0).

    The variables' sizes are read from their headers first: a variable of the wrong kind, or one declaring more
    than :data:`MAX_ARRAY_BYTES`, is refused before anything is allocated for it.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise YocoError(f"{path}: missing (SVHN needs both {' and '.join(SVHN_FILES)})")
    try:
        declared = {name: (shape, kind) for name, shape, kind in scipy.io.whosmat(str(path))}
        if "X" not in declared or "y" not in declared:
            raise YocoError(f"{path}: expected variables X and y, found {some(declared) or 'none'}")
        for name, allowed in (("X", ("uint8",)), ("y", tuple(MAT_ITEMSIZE))):
            shape, kind = declared[name]
            if kind not in allowed:
                raise YocoError(f"{path}: variable {name} is a MATLAB {kind} array, expected {' or '.join(allowed)}")
            if math.prod(shape) * MAT_ITEMSIZE[kind] > MAX_ARRAY_BYTES:
                raise YocoError(f"{path}: variable {name} declares shape {list(shape)}, more than the "
                                f"{MAX_ARRAY_BYTES} bytes allowed; the file is corrupt")
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except YocoError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy raises many types (struct, zlib, index...) for a corrupt file
        raise YocoError(f"{path}: not a readable .mat file ({type(exc).__name__}: {first_line(exc)})") from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        found = f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
        raise YocoError(f"{path}: X must be uint8 [H, W, 3, N], found {found}")
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "biuf":
        raise YocoError(f"{path}: y must be a numeric array of labels")
    y = y.reshape(-1)
    if len(y) != x.shape[3]:
        raise YocoError(f"{path}: {len(y)} labels but {x.shape[3]} images")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise YocoError(f"{path}: labels must be whole numbers 1..10, found fractional, NaN or infinite values")
    if y.size and (y.min() < 0 or y.max() > 10):
        raise YocoError(f"{path}: labels span {y.min():g}..{y.max():g}, expected 1..10 (10 is the digit 0)")
    y = np.where(y == 10, 0, y)
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, torch.from_numpy(y.astype(np.int64))


@register("svhn", find=_svhn_find, files=SVHN_FILES, description="SVHN cropped digits, 32x32 colour, 10 classes",
          mean=NORMALIZATION["svhn"][0], std=NORMALIZATION["svhn"][1])


def load_svhn(folder: Path, resolution: int | None) -> Splits:
    """SVHN from ``train_32x32.mat`` and ``test_32x32.mat`` (label 10 is the digit 0)."""
    train_x, train_y = read_svhn_mat(folder / SVHN_FILES[0])
    test_x, test_y = read_svhn_mat(folder / SVHN_FILES[1])
    return Splits(train_x, train_y, test_x, test_y, DIGITS)


