"""What every real dataset shares: :class:`RealDataset`, the registry of loaders (:func:`register`),
:func:`load_dataset`, and the checks and helpers the format families use.

Each dataset is one loader function registered with :func:`register`, which also records its normalisation
constants, whether horizontal flips are allowed, where its files live by default, how to find them and which
files it reads. A loader returns uint8 tensors; :func:`load_dataset` wraps them in a :class:`RealDataset`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from yoco.errors import YocoError
from yoco.files import sha256_of
from yoco.protocol import NO_FLIP
from yoco.registry import Registry

logger = logging.getLogger(__name__)

MAX_ARRAY_BYTES = 2 * 1024**3  # a file declaring a larger array is refused before memory is allocated for it
MAX_DATASET_BYTES = 64 * 1024**3  # a dataset's uint8 pixels (both splits, after resizing) may take at most this
DIGITS = tuple(str(d) for d in range(10))  # the class names of the digit datasets
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
            self._digests[split] = sha256_of([json.dumps([list(images.shape), str(images.dtype)]), images,
                                              labels.to(torch.int64)])
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
    files: tuple[str, ...] | None = None


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(name: str, *, find: Finder, description: str, mean: tuple[float, ...] | None = None,
             std: tuple[float, ...] | None = None, flip: bool | None = None, root: str | Path | None = None,
             hint: str = "", files: Sequence[str] | None = None) -> Callable[[Loader], Loader]:
    """Decorator that adds a loader to :data:`DATASETS` under ``name``.

    ``find(root)`` returns the folder holding the files (raising :class:`YocoError` naming what it expected);
    ``load(folder, resolution)`` reads them. ``mean``/``std`` of ``None`` mean "computed from the training
    images" (the loader fills them). ``root`` is a fixed default location; otherwise ``$YOCO_DATA/<name>``.
    ``flip`` None takes the protocol's rule (:data:`yoco.protocol.NO_FLIP`: no mirroring of digits). ``files``
    names every file the loader may read in its folder (None: the whole folder, an image tree), so no
    command ever writes one of them (:func:`dataset_inputs`).
    """

    def wrap(fn: Loader) -> Loader:
        mirror = name not in NO_FLIP if flip is None else flip
        DATASETS.add(name, DatasetSpec(name, fn, find, description, mean, std, mirror,
                                       Path(root) if root is not None else None, hint,
                                       tuple(files) if files is not None else None),
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
        hint = spec.hint or _download_hint(spec.name)
        raise YocoError(f"{exc}{'; ' + hint if hint else ''}") from None
    s = spec.load(folder, resolution)
    train, test = s.train_images, s.test_images
    if resolution is not None and tuple(train.shape[2:]) != (resolution, resolution):
        check_size(len(train) + len(test), train.shape[1], resolution, resolution, f"{spec.name} at {folder}")
        logger.info("%s: resizing %s images to %dx%d", spec.name, list(train.shape[2:]), resolution, resolution)
        train, test = resize_uint8(train, resolution), resize_uint8(test, resolution)
    mean = spec.mean if spec.mean is not None else s.mean
    std = spec.std if spec.std is not None else s.std
    if mean is None or std is None:
        mean, std = pixel_stats(train)
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
    return [folder] if spec.files is None else [folder / n for n in spec.files]


def check_size(n: int, channels: int, height: int, width: int, what: str) -> None:
    """Refuse, before allocating, ``n`` uint8 images that would take more than :data:`MAX_DATASET_BYTES`."""
    nbytes = n * channels * height * width
    if nbytes > MAX_DATASET_BYTES:
        raise YocoError(f"{what}: {n} images of {channels}x{height}x{width} pixels need {nbytes / 2**30:.3g} GiB, more "
                        f"than the {MAX_DATASET_BYTES / 2**30:g} GiB yoco allows for a dataset; use a smaller resolution")


# ----------------------------------------------------------------------------------------------------------
# Shared helpers of the format families


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 ``[N, C, H, W]`` to ``size`` x ``size``, chunked to bound memory."""
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].to(torch.float32)
        y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
        out[i : i + chunk] = y.round().clamp(0, 255).to(torch.uint8)
    return out


def pixel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
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


def open_data(path: Path) -> BinaryIO:
    """``path`` opened for reading, through gunzip when it starts with the gzip magic (whatever it is called).

    Reading the stream decompresses on demand, so a reader that bounds what it reads bounds memory too.
    """
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")  # the caller closes it


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, cut to 200 characters, for one-line errors."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else "no details"


def some(names: Any, limit: int = 10) -> str:
    """Up to ``limit`` of ``names``, sorted and comma-separated, for messages that must stay one short line."""
    shown = sorted(str(n) for n in names)
    return ", ".join(shown[:limit]) + (f", ... ({len(shown)} in all)" if len(shown) > limit else "")


def labels_of(values: Any, n_classes: int, path: Path) -> torch.Tensor:
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


def _download_hint(name: str) -> str:
    """What to run when a dataset yoco can download is missing (nothing is fetched unless asked)."""
    from yoco.data.download import SOURCES, download_root

    if name not in SOURCES:
        return ""
    return f"`yoco download {name}` fetches it from its official source, checksummed, into {download_root(name)}"


def finder(subfolders: Sequence[str], names: Sequence[str], what: str, where: str) -> Finder:
    """A finder: the first of ``root/<subfolder>`` (``""`` is ``root``) holding any file of ``names``; the error
    says ``what`` was missing and ``where`` (formatted with ``root``) it was looked for."""

    def find(root: Path) -> Path:
        for folder in (root / sub if sub else root for sub in subfolders):
            if any((folder / name).is_file() for name in names):
                return folder
        problem = "does not exist" if not root.exists() else f"holds no {what}"
        raise YocoError(f"{root} {problem}: expected {where.format(root=root)}")

    return find


def resize_center_crop(im: Any, size: int) -> Any:
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


def decode_image(path: Path, mode: str, size: int | None) -> np.ndarray:
    """One image file as uint8 pixels in Pillow ``mode`` (``RGB``, ``L``), resized and center-cropped to ``size``
    when given; a file Pillow cannot read is a one-line error naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None:
                im = resize_center_crop(im, size)
            a = np.asarray(im, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types (struct, index, EOF...) for a corrupt image
        raise YocoError(f"{path}: cannot read the image ({type(exc).__name__}: {first_line(exc)})") from None
    return a[:, :, None] if a.ndim == 2 else a
