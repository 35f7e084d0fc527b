"""Condensed sets in the containers the field now ships them in, and export to an image folder.

- ``imagefolder``: ``root/<class>/<image>.png`` (DD-Ranking and several authors). Folder names that are whole
  numbers are the class indices; names that match the dataset's class names take those indices; otherwise
  the sorted folder order. A ``condensed.json`` beside the folders (written by :func:`export_imagefolder`)
  restores the metadata (factor, method, IPC).
- ``hf``: a local Hugging Face ``datasets`` snapshot: parquet files (as on the Hub) or the ``.arrow`` files of
  ``save_to_disk``, with an image column (encoded PNG/JPEG bytes, as the ``Image`` feature stores them) and an
  integer label column. Read with pyarrow (``pip install "yoco[hub]"``), offline.

Images are decoded to pixels in [0, 1] (PNG and JPEG hold 8-bit pixels, so these sets are unnormalised).
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoco.data.condensed import CondensedMeta, CondensedSet
from yoco.data.formats import Raw, Request, register
from yoco.errors import YocoError
from yoco.files import atomic_folder, write_json

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_IMAGES = 1_000_000
MAX_PIXELS = 4096 * 4096
IMAGE_KEYS = ("image", "img", "images", "pixel_values")
LABEL_KEYS = ("label", "labels", "target", "class", "fine_label")
META_FILE = "condensed.json"


def _decode(data: bytes | Path, where: str) -> np.ndarray:
    """An 8-bit image as ``[H, W, C]`` uint8 (greyscale keeps one channel; alpha and palettes become RGB)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            if im.width * im.height > MAX_PIXELS:
                raise YocoError(f"{where}: image of {im.width}x{im.height} pixels is too large for a condensed set")
            im = im.convert("L" if im.mode in ("L", "1", "I;16", "I") else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except YocoError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a corrupt image
        raise YocoError(f"{where}: not a readable image ({type(exc).__name__}: {str(exc)[:80]})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def _stack(arrays: list[np.ndarray], where: str) -> torch.Tensor:
    if not arrays:
        raise YocoError(f"{where}: holds no images (no rows); a condensed set has at least one")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise YocoError(f"{where}: images differ in size or channels ({sorted(shapes)[:4]}); a condensed set has one")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def _class_index(names: list[str], dataset_classes: list[str] | None, where: str = "") -> dict[str, int]:
    """Folder name -> class index: whole numbers as themselves, else the dataset's class names (compared without
    case and punctuation, so ``T-shirt_top`` is ``T-shirt/top``, as ``yoco export --class-names`` writes it), else
    sorted order. Folder names of which only some are the dataset's classes are refused: sorted order would then
    relabel the others silently."""
    if all(re.fullmatch(r"\d+", n) for n in names):
        return {n: int(n) for n in names}
    if dataset_classes:
        lookup: dict[str, int] = {}
        for i, c in enumerate(dataset_classes):
            lookup.setdefault(_plain(c), i)
        known = {n: lookup[_plain(n)] for n in names if _plain(n) in lookup}
        if len(known) == len(names) and len(set(known.values())) == len(names):
            return known
        if known:
            unknown = sorted(set(names) - set(known))
            raise YocoError(f"{where}: class folders {unknown[:5]} are not among the dataset's classes, though "
                            f"{sorted(known)[:3]} are; rename them to the dataset's class names (or 0..C-1)")
        log.warning("%s: no class folder is named after a class of the dataset; classes follow the folders' sorted "
                    "order (%s)", where, ", ".join(f"{n}={i}" for i, n in enumerate(sorted(names[:10]))))
    return {n: i for i, n in enumerate(sorted(names))}


def _plain(name: str) -> str:
    """A class name without case and punctuation (``Ankle boot``, ``ankle_boot`` and ``Ankle-Boot`` are one)."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def _dataset_classes(dataset: str | None) -> list[str] | None:
    """The class names of a known dataset, read from its files when they are found (else None)."""
    if not dataset:
        return None
    try:
        from yoco.data.datasets import load_dataset

        return list(load_dataset(dataset).classes)
    except YocoError:
        return None


@register("imagefolder", factor=1, normalized=False, folder=True,
          summary="an image-folder tree root/<class>/<image>.png (DD-Ranking and several authors)")
def read_imagefolder(path: Path, req: Request) -> Raw | CondensedSet:
    """Every image under ``path/<class>/``; ``condensed.json`` (from ``yoco export``) restores the metadata."""
    if not path.is_dir():
        raise YocoError(f"{path}: an image-folder set is a folder of class folders, not a file")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.is_symlink() and not d.name.startswith("."))
    if not classes:
        raise YocoError(f"{path}: no class folders")
    saved = _saved_meta(path)
    index = _class_index(classes, saved.get("classes") if saved else _dataset_classes(req.dataset), str(path))
    arrays, labels, files = [], [], []
    for name in classes:
        images = sorted(f for f in (path / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                        and not f.is_symlink())
        if not images:
            raise YocoError(f"{path / name}: class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        for f in images:
            if len(arrays) >= MAX_IMAGES:
                raise YocoError(f"{path}: more than {MAX_IMAGES} images; not a condensed set")
            arrays.append(_decode(f, str(f)))
            labels.append(index[name])
            files.append(f"{name}/{f.name}")
    order = sorted(range(len(labels)), key=lambda i: (labels[i], files[i]))  # class-major, like every format
    images = _stack([arrays[i] for i in order], str(path))
    ordered = torch.tensor([labels[i] for i in order])
    if saved and isinstance(saved.get("meta"), dict):  # an export of yoco's: its metadata, pixels now 8-bit
        meta = CondensedMeta.from_dict({**saved["meta"], "normalized": False, "mean": None, "std": None},
                                       source=str(path / META_FILE))
        meta.extra = {**meta.extra, "imported_from": "imagefolder"}
        return CondensedSet(images, ordered, meta, source=str(path))
    return Raw(images, ordered, {"classes_from_folders": {n: index[n] for n in classes}})


def _saved_meta(path: Path) -> dict[str, Any] | None:
    file = path / META_FILE
    if not file.is_file():
        return None
    try:
        saved = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError):
        raise YocoError(f"{file}: not valid JSON") from None
    if not isinstance(saved, dict):
        raise YocoError(f"{file}: expected a JSON object")
    return saved


@register("hf", factor=1, normalized=False, folder=True,
          summary="a local Hugging Face datasets snapshot: parquet or .arrow files with image and label columns")
def read_hf(path: Path, req: Request) -> Raw:
    """Every row of the parquet (or ``save_to_disk`` ``.arrow``) files at ``path`` (a file or a folder)."""
    try:
        import pyarrow.parquet as pq
        from pyarrow import ipc
    except ImportError:
        raise YocoError("reading Hugging Face snapshots needs pyarrow: pip install 'yoco[hub]'") from None
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.suffix in (".parquet", ".arrow") and f.is_file() and not f.is_symlink())
    if not files:
        raise YocoError(f"{path}: no .parquet or .arrow files")
    arrays, labels = [], []
    for f in files:
        table = _read_table(f, pq, ipc)
        names = table.column_names
        ikey = next((k for k in IMAGE_KEYS if k in names), None)
        lkey = next((k for k in LABEL_KEYS if k in names), None)
        if ikey is None or lkey is None:
            raise YocoError(f"{f}: expected an image column ({'/'.join(IMAGE_KEYS)}) and a label column "
                            f"({'/'.join(LABEL_KEYS)}), found {names[:12]}")
        if len(arrays) + table.num_rows > MAX_IMAGES:
            raise YocoError(f"{path}: more than {MAX_IMAGES} images; not a condensed set")
        for i, (cell, label) in enumerate(zip(table.column(ikey).to_pylist(), table.column(lkey).to_pylist(),
                                              strict=True)):
            where = f"{f} row {i}"
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            if not isinstance(data, bytes):
                raise YocoError(f"{where}: the image cell holds no encoded image bytes")
            if isinstance(label, bool) or not isinstance(label, int) or label < 0:
                raise YocoError(f"{where}: label {label!r} is not a class index")
            arrays.append(_decode(data, where))
            labels.append(label)
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    return Raw(_stack([arrays[i] for i in order], str(path)), torch.tensor([labels[i] for i in order]),
               {"files": [str(f.relative_to(path)) if path.is_dir() else f.name for f in files][:20]})


def _read_table(f: Path, pq: Any, ipc: Any) -> Any:
    try:
        if f.suffix == ".parquet":
            return pq.read_table(f)
        with open(f, "rb") as fh:
            try:
                return ipc.open_stream(fh).read_all()
            except Exception:  # noqa: BLE001 - save_to_disk writes the stream format; try the file format too
                fh.seek(0)
                return ipc.open_file(fh).read_all()
    except YocoError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        raise YocoError(f"{f}: not a readable {f.suffix[1:]} file ({type(exc).__name__}: {str(exc)[:80]})") from None


def export_imagefolder(cs: CondensedSet, out: str | Path, class_names: list[str] | None = None) -> Path:
    """Write ``cs`` as ``out/<class>/<index>.png`` (stored images, pixel space clamped to [0, 1], quantised to 8
    bits: a lossy copy for other tools) and ``out/condensed.json`` with its metadata, so ``yoco import
    --format imagefolder`` restores factor, method and IPC. Folders are named by ``class_names`` or the index."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise YocoError(f"{out}: exists and is not empty (or not a folder); choose a new folder")
    if class_names is not None and len(class_names) != cs.num_classes:
        raise YocoError(f"{len(class_names)} class names for {cs.num_classes} classes")
    names = [re.sub(r"[^\w.-]+", "_", n) for n in class_names] if class_names else [str(c) for c in
                                                                                    range(cs.num_classes)]
    if len({_plain(n) for n in names}) != len(names):
        raise YocoError(f"class names {names} are not distinct once case and punctuation are set aside")
    pix = (cs.pixels().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    from PIL import Image

    # written into a temporary folder beside ``out`` and renamed into place: a full disk leaves no partial export
    with atomic_folder(out) as tmp:
        for i, (arr, label) in enumerate(zip(pix, cs.labels.tolist(), strict=True)):
            (tmp / names[label]).mkdir(exist_ok=True)
            Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(tmp / names[label] / f"{i:06d}.png",
                                                                            format="PNG")
        write_json(tmp / META_FILE, {"meta": cs.meta.to_dict(), "classes": names, "source": cs.source,
                                     "note": "8-bit PNG copy of the stored images (pixel space, clamped)"})
    return out
