"""KIP: an ``.npz`` of images and one-hot labels, read member by member without pickle."""

from __future__ import annotations

import math
import reprlib
import zipfile
from pathlib import Path

import numpy as np

from yoco.data.formats.base import MAX_ARRAY_BYTES, _first_line, _hint
from yoco.data.readers import Raw, Request, register
from yoco.errors import YocoError

KIP_IMAGE_KEYS = ("images", "x", "support_images", "x_train", "image")
KIP_LABEL_KEYS = ("labels", "y", "support_labels", "y_train", "label")


@register(
    "kip",
    factor=1,
    normalized=True,
    summary=f"KIP .npz: images ({'/'.join(KIP_IMAGE_KEYS)}) NHWC or NCHW, one-hot labels "
    f"({'/'.join(KIP_LABEL_KEYS)})",
)


def read_kip(path: Path, req: Request) -> Raw:
    """KIP's ``.npz``: images (NHWC as JAX writes them, or NCHW) and one-hot, possibly centred, labels.

    Each array's ``.npy`` header is checked before the array is read: object arrays (pickles) are refused, and
    so is an array declaring more than :data:`MAX_ARRAY_BYTES` or a size its archive member does not hold.
    """
    if not zipfile.is_zipfile(path):
        raise YocoError(f"{path}: expected a .npz archive (zip of .npy arrays){_hint(path, 'kip')}")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename[: -len(".npy")]: info for info in zf.infolist()
                       if info.filename.endswith(".npy")}
            keys = list(members)
            ikey = next((k for k in KIP_IMAGE_KEYS if k in keys), None)
            lkey = next((k for k in KIP_LABEL_KEYS if k in keys), None)
            if ikey is None or lkey is None:
                found = f"{keys[:20]}{' ...' if len(keys) > 20 else ''}"
                raise YocoError(
                    f"{path}: expected an image array named one of {list(KIP_IMAGE_KEYS)} and a label array "
                    f"named one of {list(KIP_LABEL_KEYS)}, found keys {found}{_hint(path, 'kip')}"
                )
            images, labels = _read_npy(zf, members[ikey], path), _read_npy(zf, members[lkey], path)
    except YocoError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib and numpy raise many types for a corrupt archive
        raise YocoError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {_first_line(exc)})") from None
    if images.ndim == 3:  # grayscale without a channel axis
        images = images[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):  # NHWC as JAX writes it; wins when both axes fit
        images = images.transpose(0, 3, 1, 2)
    elif images.ndim == 4 and images.shape[1] not in (1, 3):
        raise YocoError(
            f"{path}: cannot find the channel axis (size 1 or 3, first or last) in images of "
            f"shape {list(images.shape)}"
        )
    return Raw(images, labels, {"images_key": ikey, "labels_key": lkey})


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One ``.npy`` member of an archive; its header is checked before memory is allocated for the array."""
    name, npy = info.filename, np.lib.format
    with zf.open(info) as fh:
        version = npy.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise YocoError(f"{path}: {name} is a .npy file of version {version}, expected 1.0 or 2.0")
        shape, _, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(fh)
        data_size = info.file_size - fh.tell()
    if dtype.hasobject:
        raise YocoError(f"refusing to execute code from {path}: {name} holds pickled objects")
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise YocoError(f"{path}: {name} holds {str(dtype)[:60]} values; expected an array of plain numbers")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise YocoError(f"{path}: {name} declares a {dtype} array of shape {reprlib.repr(list(shape))}, "
                        f"{nbytes / 2**30:.3g} GiB, more than the {MAX_ARRAY_BYTES / 2**30:g} GiB allowed; "
                        "refusing to read it")
    if nbytes != data_size:
        raise YocoError(f"{path}: {name} declares {nbytes} bytes of array data but its archive member holds "
                        f"{data_size}; the archive is corrupt")
    with zf.open(info) as fh:
        return npy.read_array(fh, allow_pickle=False)
