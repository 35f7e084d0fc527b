"""Image folders: the ImageNet subsets (class lists + an image-folder root) and any other tree of class folders."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch

from yoco.data.datasets.base import Finder, Splits, check_size, decode_image, first_line, register, some
from yoco.errors import YocoError
from yoco.progress import tqdm
from yoco.protocol import IMAGENET_MEAN, IMAGENET_RESOLUTION, IMAGENET_STD

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


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
                       len(skipped), split, some(skipped, 5))
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
                       "(they can loop or leave it)", folder, some(links, 5))
    return sorted(p.name for p in entries if not p.is_symlink())


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
            raise YocoError(f"{p}: cannot read the image ({type(exc).__name__}: {first_line(exc)})") from None
    return sizes, grey


def _load_images(paths: Sequence[Path], mode: str, size: int | None, shape: tuple[int, int], desc: str
                 ) -> torch.Tensor:
    """Decode ``paths`` into one uint8 ``[N, C, H, W]`` tensor, in a few threads (Pillow releases the GIL)."""
    channels = 1 if mode == "L" else 3
    check_size(len(paths), channels, *shape, desc)
    out = torch.empty((len(paths), channels, *shape), dtype=torch.uint8)
    workers = max(1, min(8, os.cpu_count() or 1))
    with (tqdm(total=len(paths), desc=desc, unit="img", disable=len(paths) < 1000, dynamic_ncols=True) as bar,
          ThreadPoolExecutor(workers) as pool):
        for i, a in enumerate(pool.map(lambda p: decode_image(p, mode, size), paths)):
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


@register("imagenet10", find=_imagenet_finder("imagenet10"), mean=IMAGENET_MEAN, std=IMAGENET_STD,
          description="ImageNet-10 (IDC's 10 classes), image folder resized to 224 (or --resolution)")


def load_imagenet10(folder: Path, resolution: int | None) -> Splits:
    """The 10 ImageNet classes IDC used, from ``train/<wnid>`` and ``val/<wnid>``."""
    return _load_imagenet(folder, "imagenet10", resolution)


@register("imagenet100", find=_imagenet_finder("imagenet100"), mean=IMAGENET_MEAN, std=IMAGENET_STD,
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


@register("imagefolder", find=_imagefolder_find,
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
        raise YocoError(f"{test_dir}: class folders {some(unknown)} are not in {train_dir}")
    missing = [c for c in classes if c not in test_classes]
    if missing:
        raise YocoError(f"{test_dir}: no folder for class(es) {some(missing)}, which {train_dir} has; every "
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
