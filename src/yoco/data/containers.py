"""Condensed sets in the containers the field now ships them in, and export to an image folder.

- ``imagefolder``: ``root/<class>/<image>.png`` (DD-Ranking and several authors). Folder names that are whole
  numbers are the class indices; names that match the dataset's class names take those indices; otherwise
  the sorted folder order. A ``condensed.json`` beside the folders (written by :func:`export_imagefolder`)
  restores the metadata (factor, method, IPC).
- ``hf``: a local Hugging Face ``datasets`` snapshot: parquet files (as on the Hub) or the ``.arrow`` files of
  ``save_to_disk``, with an image column (encoded PNG/JPEG bytes, as the ``Image`` feature stores them) and an
  integer label column (``label``, ``class_id`` and the other :data:`LABEL_KEYS`, or named). Class names come from
  the ``ClassLabel`` feature in the files' schema, ``dataset_info.json`` or the dataset card (``README.md``). Read
  with pyarrow (``pip install "yoco[hub]"``), offline.

Images are decoded to pixels in [0, 1] (PNG and JPEG hold 8-bit pixels, so these sets are unnormalised). Both
layouts are also written (:func:`export_imagefolder`, :func:`export_hf`) with yoco's ``condensed.json`` beside the
images: the metadata, the set's order, and the labels (hard and soft) in ``labels.safetensors`` or a column, so a
yoco export reads back as the same set, up to 8-bit pixels. Sets whose values are not pixels (ZCA-whitened) are
refused unless the caller accepts a lossy picture, whose metadata then drops the ZCA recipe.
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

from yoco.data.condensed import CondensedMeta, CondensedSet, content_sha256, normalize
from yoco.data.readers import Raw, Request, read_own_meta
from yoco.errors import YocoError
from yoco.files import atomic_folder, read_tensors, write_json, write_tensors, write_text
from yoco.provenance import PROVENANCE_KEY, provenance

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_IMAGES = 1_000_000
MAX_PIXELS = 4096 * 4096
IMAGE_KEYS = ("image", "img", "images", "pixel_values", "png", "jpg")
LABEL_KEYS = ("label", "labels", "class_id", "label_id", "target", "class", "fine_label", "y")
SOFT_KEY = "soft_label"  # the column of label distributions a yoco export writes for a soft-labelled set
META_FILE = "condensed.json"
LABELS_FILE = "labels.safetensors"  # hard (and soft) labels of an image-folder export, in the set's order
HF_SHARD = "data/train-00000-of-00001.parquet"


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


def read_imagefolder(path: Path, req: Request) -> Raw | CondensedSet:
    """Every image under ``path/<class>/``; ``condensed.json`` (from ``yoco export``) restores the set: its order,
    soft labels, metadata and recipe."""
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
    if saved and isinstance(saved.get("meta"), dict):  # an export of yoco's: the set as it was, up to 8-bit pixels
        order = _saved_order(saved, files, path)
    images = _stack([arrays[i] for i in order], str(path))
    ordered = torch.tensor([labels[i] for i in order])
    if saved and isinstance(saved.get("meta"), dict):
        hard, soft = _saved_labels(path, saved, len(ordered))
        if hard is not None and not torch.equal(hard, ordered):
            raise YocoError(f"{path}: the class folders disagree with {LABELS_FILE} (images moved between folders?); "
                            f"remove {META_FILE} to read the folders alone")
        return restored(images, ordered, soft, saved, path, "imagefolder")
    return Raw(images, ordered, {"classes_from_folders": {n: index[n] for n in classes}})


def _saved_order(saved: dict[str, Any], files: list[str], path: Path) -> list[int]:
    """The set's order as the export wrote it (``files``), when the folder still holds exactly those images."""
    listed = saved.get("files")
    if not isinstance(listed, list) or sorted(map(str, listed)) != sorted(files):
        raise YocoError(f"{path}: the images differ from the ones {META_FILE} lists (added, removed or renamed); "
                        f"remove {META_FILE} to read the folders alone")
    where = {f: i for i, f in enumerate(files)}
    return [where[str(f)] for f in listed]


def _saved_labels(path: Path, saved: dict[str, Any], n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The hard and soft labels an image-folder export wrote beside the images (None where it wrote none)."""
    name = saved.get("labels_file")
    if name is None:
        return None, None
    if name != LABELS_FILE:
        raise YocoError(f"{path / META_FILE}: labels_file must be {LABELS_FILE!r}, got {str(name)[:60]!r}")
    file = path / LABELS_FILE
    if not file.is_file():
        raise YocoError(f"{file}: missing; {META_FILE} says the set's labels are kept there")
    _, tensors = read_tensors(file, "labels file")
    hard, soft = tensors.get("labels"), tensors.get("soft_labels")
    for what, t in (("labels", hard), ("soft_labels", soft)):
        if t is not None and (t.dim() == 0 or t.shape[0] != n):
            raise YocoError(f"{file}: {what} hold {t.shape[0] if t.dim() else 0} rows for {n} images")
    return (hard.to(torch.int64) if hard is not None else None), soft


def restored(images: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None, saved: dict[str, Any],
             path: Path, fmt: str) -> CondensedSet:
    """A set yoco exported as 8-bit pictures, read back with its saved metadata: standardised again when it was
    stored standardised; no metadata claims what the pictures no longer hold (soft labels that were not kept, ZCA)."""
    meta = CondensedMeta.from_dict(saved["meta"], source=str(path / META_FILE))
    extra = {**meta.extra, "imported_from": fmt}
    recipe = extra.get("recipe")
    if isinstance(recipe, dict) and "zca" in recipe:  # only a hand-edited export says so: pictures are not ZCA values
        log.warning("%s: %s names a ZCA recipe, but 8-bit pictures cannot hold ZCA-whitened values; dropped",
                    path, META_FILE)
        extra["recipe"] = {k: v for k, v in recipe.items() if k != "zca"}
        meta.normalized = False
    if soft is None:
        extra.pop("soft_labels", None)
    meta.extra = extra
    if meta.normalized and meta.mean is not None and meta.std is not None:
        images = normalize(images, meta.mean, meta.std)
    else:
        meta.normalized = False
    return CondensedSet(images, labels, meta, source=str(path), soft=soft)


def export_record(cs: CondensedSet, fmt: str, meta: dict[str, Any]) -> dict[str, Any]:
    """What every export's ``condensed.json`` says of where it came from: the layout, the set's metadata, its
    source and content sha256, and the export's own provenance (which yoco, torch and machine wrote it, when)."""
    return {"format": fmt, "meta": meta, "source": cs.source, "source_sha256": content_sha256(cs),
            PROVENANCE_KEY: provenance()}


def _saved_meta(path: Path) -> dict[str, Any] | None:
    file = path / META_FILE
    if not file.is_file():
        return None
    return read_own_meta(file)


def read_hf(path: Path, req: Request) -> Raw | CondensedSet:
    """Every row of the parquet (or ``save_to_disk`` ``.arrow``) files at ``path`` (a file or a folder).

    The image and label columns are ``req.image_column``/``req.label_column`` when given, else the first of
    :data:`IMAGE_KEYS`/:data:`LABEL_KEYS` present. Class names are read from the ``ClassLabel`` feature (the files'
    schema, ``dataset_info.json``, or the card's ``dataset_info``) into ``meta.extra["class_names"]``; a yoco
    export's ``condensed.json`` restores the set (order, soft labels, metadata)."""
    try:
        import pyarrow.parquet as pq
        from pyarrow import ipc
    except ImportError:
        raise YocoError("reading Hugging Face snapshots needs pyarrow: pip install 'yoco[hub]'") from None
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob("*") if f.suffix in (".parquet", ".arrow") and f.is_file() and not f.is_symlink())
    if not files:
        raise YocoError(f"{path}: no .parquet or .arrow files")
    root = path if path.is_dir() else path.parent
    arrays, labels, softs, names, lkey = [], [], [], None, None
    for f in files:
        table = _read_table(f, pq, ipc)
        ikey, lkey = _columns(table.column_names, req, f)
        names = names or _class_names_in_schema(table.schema, lkey)
        if len(arrays) + table.num_rows > MAX_IMAGES:
            raise YocoError(f"{path}: more than {MAX_IMAGES} images; not a condensed set")
        soft_col = table.column(SOFT_KEY).to_pylist() if SOFT_KEY in table.column_names else None
        for i, (cell, label) in enumerate(zip(table.column(ikey).to_pylist(), table.column(lkey).to_pylist(),
                                              strict=True)):
            where = f"{f} row {i}"
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            if not isinstance(data, bytes):
                raise YocoError(f"{where}: the image cell of column {ikey!r} holds no encoded image bytes; name the "
                                "image column with --image-column")
            if isinstance(label, bool) or not isinstance(label, int) or label < 0:
                raise YocoError(f"{where}: label {label!r} in column {lkey!r} is not a class index; name the label "
                                "column with --label-column")
            arrays.append(_decode(data, where))
            labels.append(label)
            if soft_col is not None:
                softs.append(soft_col[i])
    names = names or _class_names_in_folder(root, lkey)
    saved = _saved_meta(root) if path.is_dir() else None
    if saved and isinstance(saved.get("meta"), dict):  # a yoco export: rows in the set's order, soft labels kept
        soft = torch.tensor(softs, dtype=torch.float32) if softs else None
        return restored(_stack(arrays, str(path)), torch.tensor(labels), soft, saved, path, "hf")
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    extra: dict[str, Any] = {"files": [str(f.relative_to(path)) if path.is_dir() else f.name for f in files][:20],
                             "columns": {"image": ikey, "label": lkey}}
    if names:
        extra["class_names"] = names
    return Raw(_stack([arrays[i] for i in order], str(path)), torch.tensor([labels[i] for i in order]), extra)


def _columns(names: list[str], req: Request, f: Path) -> tuple[str, str]:
    """The image and label column of a table: the ones named in the request, else the first known alias."""
    ikey = req.image_column or next((k for k in IMAGE_KEYS if k in names), None)
    lkey = req.label_column or next((k for k in LABEL_KEYS if k in names), None)
    for flag, key, given in (("--image-column", ikey, req.image_column), ("--label-column", lkey, req.label_column)):
        if given is not None and given not in names:
            raise YocoError(f"{f}: no column {given!r} ({flag}); its columns are {names[:12]}")
    if ikey is None or lkey is None:
        raise YocoError(f"{f}: expected an image column ({'/'.join(IMAGE_KEYS)}) and a label column "
                        f"({'/'.join(LABEL_KEYS)}), found {names[:12]}; name them with --image-column and "
                        "--label-column")
    return ikey, lkey


def _class_names_in_schema(schema: Any, column: str) -> list[str] | None:
    """The ``ClassLabel`` names of ``column`` in the ``huggingface`` metadata that ``datasets`` writes into the
    schema of its parquet and arrow files."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        info = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    features = (info.get("info") or {}).get("features") if isinstance(info, dict) else None
    return _label_names(features, column)


def _label_names(features: Any, column: str) -> list[str] | None:
    feature = features.get(column) if isinstance(features, dict) else None
    names = feature.get("names") if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" else None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def _class_names_in_folder(root: Path, column: str | None) -> list[str] | None:
    """Class names from a snapshot's ``dataset_info.json`` (``save_to_disk``) or its card (``README.md``)."""
    if column is None:
        return None
    info = root / "dataset_info.json"
    if info.is_file():
        try:
            names = _label_names(json.loads(info.read_text()).get("features"), column)
        except (OSError, ValueError, RecursionError, AttributeError):
            names = None
        if names:
            return names
    card = root / "README.md"
    return card_class_names(card.read_text(errors="replace"), column) if card.is_file() else None


def card_class_names(card: str, column: str) -> list[str] | None:
    """The ``class_label`` names of feature ``column`` in a dataset card's YAML front matter (``dataset_info``),
    in either spelling the Hub writes (``'0': airplane`` entries, or a list). Read line by line: no YAML library
    needed, and nothing but names is taken from the card."""
    m = re.match(r"---\s*\n(.*?)\n---", card, re.DOTALL)
    if not m:
        return None
    lines = m.group(1).splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(rf"\s*-\s*name:\s*['\"]?{re.escape(column)}['\"]?\s*", line):
            indent = len(line) - len(line.lstrip())
            block = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and (len(nxt) - len(nxt.lstrip()) <= indent):
                    break
                block.append(nxt)
            return _names_block(block)
    return None


def _scalar(text: str) -> str:
    """A YAML scalar as written on one line: plain, 'single-quoted' ('' is a quote) or "double-quoted"."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def _names_block(block: list[str]) -> list[str] | None:
    start = next((i for i, line in enumerate(block) if line.strip() == "names:"), None)
    if start is None:
        return None
    numbered, listed = {}, []
    for line in block[start + 1:]:
        if (m := re.fullmatch(r"\s*['\"]?(\d+)['\"]?\s*:\s*(.*?)\s*", line)):
            numbered[int(m.group(1))] = _scalar(m.group(2))
        elif (m := re.fullmatch(r"\s*-\s*(.*?)\s*", line)):
            listed.append(_scalar(m.group(1)))
        elif line.strip():
            break
    if numbered and sorted(numbered) == list(range(len(numbered))):
        return [numbered[k] for k in range(len(numbered))]
    return listed or None


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


def pictures(cs: CondensedSet, lossy: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """``cs``'s stored images as 8-bit pictures ``[N, H, W, C]`` and the metadata that describes them truthfully.

    Values are taken to pixel space and clamped to [0, 1] (a warning says how many were clamped). ZCA-whitened
    values are not pixels: refused unless ``lossy``, and then the metadata drops the ZCA recipe and says so."""
    meta = cs.meta.to_dict()
    recipe = cs.meta.extra.get("recipe") if isinstance(cs.meta.extra.get("recipe"), dict) else {}
    if "zca" in recipe:
        if not lossy:
            raise YocoError(f"{cs.source}: the images are ZCA-whitened values, not pixels, and an 8-bit picture "
                            "cannot hold them; export --format dd-ranking keeps the tensors and the recipe, or pass "
                            "--lossy for clamped pictures that lose the ZCA recipe (lossy=True in Python)")
        log.warning("%s: writing ZCA-whitened values as clamped 8-bit pictures (--lossy): they are not the set, and "
                    "their metadata drops the ZCA recipe", cs.source)
        meta["extra"] = {**meta["extra"], "recipe": {k: v for k, v in recipe.items() if k != "zca"},
                         "lossy_export": "ZCA-whitened values written as clamped 8-bit pictures"}
        meta.update(normalized=False, mean=None, std=None)
    pix = cs.pixels()
    outside = float(((pix < -0.5 / 255) | (pix > 1 + 0.5 / 255)).float().mean())
    if outside > 0:
        log.warning("%s: %.2f%% of the values lie outside [0, 1] in pixel space and are clamped in the 8-bit pictures",
                    cs.source, 100 * outside)
    arr = (pix.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return arr, meta


def _folder_names(cs: CondensedSet, class_names: list[str] | None) -> list[str]:
    if class_names is not None and len(class_names) != cs.num_classes:
        raise YocoError(f"{len(class_names)} class names for {cs.num_classes} classes")
    names = [re.sub(r"[^\w.-]+", "_", n) for n in class_names] if class_names else [str(c) for c in
                                                                                    range(cs.num_classes)]
    if len({_plain(n) for n in names}) != len(names):
        raise YocoError(f"class names {names} are not distinct once case and punctuation are set aside")
    return names


def _new_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise YocoError(f"{out}: exists and is not empty (or not a folder); choose a new folder")


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


def export_imagefolder(cs: CondensedSet, out: str | Path, class_names: list[str] | None = None,
                       lossy: bool = False) -> Path:
    """Write ``cs`` as ``out/<class>/<index>.png`` (stored images in pixel space, 8-bit; :func:`pictures`), its
    labels (hard and soft, in the set's order) in ``out/labels.safetensors``, and ``out/condensed.json`` naming
    them with the metadata, recipe and order, so ``yoco import --format imagefolder`` restores the set. Folders are
    named by ``class_names`` or the index."""
    out = Path(out)
    _new_folder(out)
    names = _folder_names(cs, class_names)
    pix, meta = pictures(cs, lossy)
    files = [f"{names[label]}/{i:06d}.png" for i, label in enumerate(cs.labels.tolist())]
    # written into a temporary folder beside ``out`` and renamed into place: a full disk leaves no partial export
    with atomic_folder(out) as tmp:
        for arr, name in zip(pix, files, strict=True):
            (tmp / name).parent.mkdir(exist_ok=True)
            (tmp / name).write_bytes(_png(arr))
        tensors = {"labels": cs.labels} | ({"soft_labels": cs.soft} if cs.soft is not None else {})
        write_tensors(tmp / LABELS_FILE, tensors, {"yoco_labels": "1"})
        write_json(tmp / META_FILE, {**export_record(cs, "imagefolder", meta), "classes": names, "files": files,
                                     "labels_file": LABELS_FILE,
                                     "note": "8-bit PNG copy of the stored images (pixel space, clamped); labels "
                                             f"(hard, and soft where the set has them) in {LABELS_FILE}"})
    return out


def export_hf(cs: CondensedSet, out: str | Path, class_names: list[str] | None = None, lossy: bool = False) -> Path:
    """Write ``cs`` as a Hugging Face ``datasets`` snapshot: ``out/data/train-00000-of-00001.parquet`` with an
    ``image`` column (the ``Image`` feature: PNG bytes and a path), a ``label`` column (``ClassLabel`` with the
    class names) and, for a soft-labelled set, a ``soft_label`` column of distributions; the features in the
    schema's ``huggingface`` metadata and in the card (``README.md``), as ``datasets`` writes and reads them; and
    yoco's ``condensed.json`` (metadata and recipe), so ``yoco import --format hf`` restores the set."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise YocoError("writing Hugging Face snapshots needs pyarrow: pip install 'yoco[hub]'") from None
    out = Path(out)
    _new_folder(out)
    names = list(class_names) if class_names else [str(c) for c in range(cs.num_classes)]
    if len(names) != cs.num_classes:
        raise YocoError(f"{len(names)} class names for {cs.num_classes} classes")
    pix, meta = pictures(cs, lossy)
    features: dict[str, Any] = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    columns: dict[str, Any] = {
        "image": pa.array([{"bytes": _png(a), "path": f"{i:06d}.png"} for i, a in enumerate(pix)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "label": pa.array(cs.labels.tolist(), pa.int64()),
    }
    if cs.soft is not None:
        features[SOFT_KEY] = {"feature": {"dtype": "float32", "_type": "Value"}, "_type": "Sequence"}
        columns[SOFT_KEY] = pa.array(cs.soft.tolist(), pa.list_(pa.float32()))
    schema = pa.schema([(k, v.type) for k, v in columns.items()],
                       metadata={"huggingface": json.dumps({"info": {"features": features}})})
    table = pa.Table.from_arrays(list(columns.values()), schema=schema)
    with atomic_folder(out) as tmp:
        (tmp / HF_SHARD).parent.mkdir()
        pq.write_table(table, tmp / HF_SHARD)
        write_text(tmp / "README.md", dataset_card(cs, names, meta))
        write_json(tmp / META_FILE, {**export_record(cs, "hf", meta), "classes": names,
                                     "note": "8-bit PNG copy of the stored images (pixel space, clamped)"})
    return out


def dataset_card(cs: CondensedSet, names: list[str], meta: dict[str, Any]) -> str:
    """A dataset card (``README.md``) whose YAML front matter declares the features and the data files as the Hub
    does, and whose text says what the set is and how to train on it."""
    def quoted(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    lines = ["---", "dataset_info:", "  features:", "  - name: image", "    dtype: image", "  - name: label",
             "    dtype:", "      class_label:", "        names:"]
    lines += [f"          '{i}': {quoted(n)}" for i, n in enumerate(names)]
    if cs.soft is not None:
        lines += [f"  - name: {SOFT_KEY}", "    sequence: float32"]
    lines += ["  splits:", "  - name: train", f"    num_examples: {len(cs)}", "configs:", "- config_name: default",
              "  data_files:", "  - split: train", "    path: data/train-*", "tags:", "- dataset-condensation",
              "- dataset-distillation", "---", ""]
    m = cs.meta
    recipe = meta["extra"].get("recipe") or {}
    text = [f"# {m.dataset}, condensed by {m.method} ({m.ipc} images per class)", "",
            (f"{len(cs)} images of {m.num_classes} classes, written by `yoco export --format hf` as 8-bit PNG in "
             "pixel space (train on them standardised with the dataset's mean and std).")]
    if m.factor > 1:
        text.append(f"Each image stores {m.factor}x{m.factor} multi-formation tiles: split it and resize each tile "
                    "back to full size before training (`yoco import` then yoco's decoding does this).")
    if cs.soft is not None:
        text.append(f"`{SOFT_KEY}` holds each image's label distribution; `label` is its arg-max class.")
    if "lr" in recipe:
        text.append(f"The set was published with a learned evaluation learning rate of {recipe['lr']:g}.")
    text += ["", "Load with `datasets.load_dataset(\"parquet\", data_dir=...)` or `yoco import DIR --format hf "
             "--dataset " + m.dataset + "` (which reads `condensed.json` and restores the set)."]
    return "\n".join(lines + text) + "\n"
