"""What every reader of published sets shares: :func:`import_condensed` (a reader's :class:`Raw` made into a
checked :class:`CondensedSet`), format detection, ``torch.load`` bounded before anything is materialised, and the
conversions of images and labels."""

from __future__ import annotations

import logging
import pickle
import re
import reprlib
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoco.data import condensed
from yoco.data.condensed import CondensedMeta, CondensedSet
from yoco.data.readers import FORMATS, Raw, Request, read_own_meta
from yoco.data.zca import looks_whitened, neighbour_correlation
from yoco.errors import YocoError
from yoco.protocol import ZCA_EPS

logger = logging.getLogger(__name__)

MAX_ARRAY_BYTES = 2 * 1024**3  # an archived array declaring more than this is refused before anything is read
# What the tensors of one .pt file may amount to once a reader materialises them (views counted at their full size,
# as float32 images / int64 labels); a stride-0 view of one stored number can claim terabytes.
MAX_LOAD_BYTES = 4 * 1024**3
MAX_VIEW_GROWTH, MAX_SMALL_VIEW = 16, 16 * 1024**2  # a view may read as 16x its storage (uint8 -> float32...)
MAX_LOAD_OBJECTS = 100_000  # containers and tensors in one .pt file (a published set holds a handful)
MAX_MTT_LR = 1.0  # MTT's learned learning rates are about 0.01; a larger one is a damaged or foreign file


IMAGE_FILES = ("images.pt", "images_best.pt")  # DD-Ranking's names, then MTT's (DD-Ranking reads both)
OWN_META = "condensed.json"  # yoco's metadata, written beside what it exports


def companion_files(images: Path, labels_path: Path | None = None) -> tuple[Path, list[Path]]:
    """Where the labels and the learning rate of an images file are looked for: ``labels.pt``/``lr.pt`` beside
    ``images.pt``, ``labels_best.pt``/``lr_best.pt`` beside ``images_best.pt`` (the other spelling when the first
    is missing), the learning rate also beside a labels file given apart. Returns (labels, learning-rate files)."""
    first = "_best" if images.stem.endswith("_best") else ""
    order = [first, "" if first else "_best"]
    if labels_path is None:
        found = [images.with_name(f"labels{s}.pt") for s in order]
        labels_path = next((f for f in found if f.is_file()), found[0])
    folders = [images.parent] + ([labels_path.parent] if labels_path.parent != images.parent else [])
    return labels_path, [folder / f"lr{s}.pt" for folder in folders for s in order]


def from_own_meta(raw: Raw, meta_file: Path) -> CondensedSet:
    """A set that yoco exported, read back with the metadata it wrote beside it (``condensed.json``): the same
    tensors, labels (soft ones as the distributions they were) and recipe."""
    saved = read_own_meta(meta_file)
    src = str(meta_file.parent)
    images = _as_images(raw.images, src)
    labels, _, soft, _ = _as_labels(raw.labels, src)
    if not isinstance(saved.get("meta"), dict):
        raise YocoError(f"{meta_file}: holds no 'meta' object (not written by yoco export)")
    meta = CondensedMeta.from_dict(saved["meta"], source=str(meta_file))
    if soft is None:
        meta.extra.pop("soft_labels", None)
    meta.extra = {**meta.extra, "imported_from": saved.get("format", "yoco export")}
    return CondensedSet(images, labels, meta, source=src, soft=soft)


def format_names() -> list[str]:
    """Names accepted by :func:`import_condensed`, in registration order."""
    return FORMATS.names()


def import_condensed(
    path: str | Path,
    fmt: str,
    *,
    dataset: str,
    num_classes: int | None = None,
    factor: int | None = None,
    normalized: bool | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    experiment: int = 0,
    labels_path: str | Path | None = None,
    zca: bool = False,
    image_column: str | None = None,
    label_column: str | None = None,
) -> CondensedSet:
    """Read a published condensed set stored in format ``fmt`` (one of :func:`format_names`).

    ``factor`` and ``normalized`` default to what the format's reference code writes. When the set is
    normalised and ``mean``/``std`` are not given, the statistics of ``dataset`` are used. ``num_classes``
    defaults to the width of one-hot labels, else to the largest label + 1. ``experiment`` picks one run
    of a DSA/DC/DM results file; ``labels_path`` overrides where MTT's ``labels_best.pt`` (DD-Ranking's
    ``labels.pt``) is looked for; ``image_column``/``label_column`` name a Hugging Face snapshot's columns.
    ``zca`` records that the images are ZCA-whitened (MTT's CIFAR sets; the file does not say so): evaluation then
    whitens the test set the same way. The set's evaluation recipe (ZCA, MTT's learned ``lr_best.pt``) is kept
    in ``meta.extra["recipe"]``.
    Every problem raises :class:`YocoError` naming the file.
    """
    path = Path(path)
    spec = FORMATS.get(fmt.lower())
    if experiment != 0 and "experiment" not in spec.uses:
        raise YocoError(f"{path}: --experiment only applies to a DSA results file with several runs (format dsa)")
    if labels_path is not None and "labels_path" not in spec.uses:
        users = [n for n in FORMATS.names() if "labels_path" in FORMATS.get(n).uses]
        raise YocoError(f"{path}: a separate labels file (--labels) only applies to formats {', '.join(users)}")
    if (image_column or label_column) and "columns" not in spec.uses:
        raise YocoError(f"{path}: --image-column and --label-column only apply to format hf")
    if path.is_dir() and spec.default_file is not None:
        path = path / spec.default_file
    if spec.folder and not path.exists():
        raise YocoError(f"{path}: no such folder or file")
    if not spec.folder and not path.is_file():
        raise YocoError(f"{path}: no such file")
    if (mean is None) != (std is None):
        raise YocoError(f"{path}: give both --mean and --std, or neither")

    req = Request(experiment, Path(labels_path) if labels_path is not None else None, dataset, image_column,
                  label_column)
    try:
        found = spec.read(path, req)
    except YocoError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt file can make a third-party reader raise anything
        raise YocoError(f"{path}: cannot read as format {spec.name!r} ({type(exc).__name__}: "
                        f"{_first_line(exc)})") from None
    if isinstance(found, CondensedSet):
        return _check_own(found, dataset, num_classes, factor, normalized, mean, std)

    src = str(path)
    images = _as_images(found.images, src)
    labels, width, soft, soft_kind = _as_labels(found.labels, src)
    if width is not None and num_classes is not None and width != num_classes:
        raise YocoError(f"{src}: labels are one-hot over {width} classes but --num-classes is {num_classes}")
    if num_classes is None:
        num_classes = width if width is not None else _infer_num_classes(labels, src)
    is_normalized = spec.normalized if normalized is None else bool(normalized)
    if is_normalized and mean is None:
        mean, std = _dataset_stats(dataset, src)
    counts = torch.unique(labels, return_counts=True)[1]
    meta = CondensedMeta(
        dataset=dataset,
        num_classes=int(num_classes),
        method=spec.name,
        ipc=int(counts.max()) if counts.numel() else 0,
        factor=spec.factor_for(dataset) if factor is None else int(factor),
        normalized=is_normalized,
        mean=tuple(float(v) for v in mean) if mean is not None else None,
        std=tuple(float(v) for v in std) if std is not None else None,
        extra={"imported_from": spec.name, "file": path.name, **found.extra,
               **({"soft_labels": soft_kind} if soft_kind else {})},
    )
    if zca:
        if not is_normalized:
            raise YocoError(f"{src}: ZCA-whitened images are standardised first; --zca needs --normalized yes")
        meta.extra["recipe"] = {**meta.extra.get("recipe", {}), "zca": {"eps": ZCA_EPS}}
    cs = CondensedSet(images, labels, meta, source=src, soft=soft)
    if is_normalized and not zca and looks_whitened(images):
        logger.warning("%s: neighbouring pixels are barely correlated (%.2f; natural images: about 0.9), as in "
                       "ZCA-whitened images (MTT's CIFAR sets); if they are, import with --zca (zca=True "
                       "in Python) so that evaluation whitens the test set the same way", src,
                       neighbour_correlation(images))
    problem = condensed.normalisation_warning(cs)
    if problem:
        flip = "no" if is_normalized else "yes"
        logger.warning("%s: %s. The %s format is read as %s by default; if the file is the other kind, import it "
                       "with --normalized %s (normalized=%s in Python).", src, problem, spec.name,
                       "standardised" if is_normalized else "unnormalised [0, 1] pixels", flip, flip == "yes")
    logger.info(
        "imported %d %s images (%d classes, factor %d) from %s",
        len(cs),
        spec.name,
        meta.num_classes,
        meta.factor,
        src,
    )
    return cs


def detect_format(path: str | Path) -> str:
    """The format of a file or folder, from its name, then its contents; a path that fits several formats (IDC's
    and DREAM's ``data.pt`` share one layout) or none is refused, naming the candidates."""
    path = Path(path)
    found = format_candidates(path)
    if len(found) == 1:
        return found[0]
    if found:
        flags = " or ".join(f"--format {f}" for f in found)
        raise YocoError(f"{path}: could be {' or '.join(found)} (the same layout, read with different defaults and "
                        f"score windows); say which with {flags}")
    if path.is_dir():
        raise YocoError(f"{path}: no known condensed-set layout in this folder; expected one of {format_names()}")
    if not path.exists():
        raise YocoError(f"{path}: no such file or folder")
    raise YocoError(f"{path}: cannot tell which format this is; expected one of {format_names()}")


def input_files(path: str | Path, fmt: str, labels_path: str | Path | None = None) -> list[Path]:
    """Every file (or folder) an import of ``path`` in format ``fmt`` reads, present or not: the file itself (a
    folder's default file), the labels and learning-rate files beside an images file, yoco's ``condensed.json``
    beside them, and ``labels_path``. A command writing any of them would destroy its input."""
    spec, path = FORMATS.get(fmt.lower()), Path(path)
    if path.is_dir() and spec.default_file is not None:
        path = path / spec.default_file
    given = [Path(labels_path)] if labels_path is not None else []
    if spec.name not in ("mtt", "dd-ranking"):
        return [path, *given]
    if path.is_dir():
        path = next((path / n for n in IMAGE_FILES if (path / n).is_file()), path / IMAGE_FILES[0])
    labels, lrs = companion_files(path, Path(labels_path) if labels_path is not None else None)
    others = [path.with_name(f"labels{s}.pt") for s in ("", "_best")]
    return list(dict.fromkeys([path, labels, *others, *lrs, path.with_name(OWN_META), *given]))


def format_candidates(path: Path) -> list[str]:
    """Every format ``path`` could be in, judged by its name and then (a file of no telling name) its contents."""
    name = path.name.lower()
    if path.is_dir():
        return _folder_candidates(path)
    if name.endswith(".safetensors"):
        return ["yoco"]
    if name.endswith(".npz"):
        return ["kip"]
    if name in ("images_best.pt", "labels_best.pt"):
        return ["mtt"]
    if name in ("images.pt", "labels.pt"):
        return ["dd-ranking"]
    if name.startswith("res_") and name.endswith(".pt"):
        return ["dsa"]
    if name == "data.pt":
        return ["idc", "dream"]
    if name.endswith((".parquet", ".arrow")):
        return ["hf"]
    if not path.is_file():
        return []
    guess = _guess_from_contents(path)
    return {"idc": ["idc", "dream"], "mtt": ["mtt", "dd-ranking"]}.get(guess or "", [guess] if guess else [])


def _folder_candidates(path: Path) -> list[str]:
    """The formats a folder's files fit: a folder of DD-Ranking/MTT tensors, a published file, parquet shards, or
    class folders of images."""
    files = {p.name for p in path.iterdir() if p.is_file()}
    if files & {"images.pt"}:
        return ["dd-ranking"]
    if "images_best.pt" in files:
        return ["mtt"]
    if "data.pt" in files:
        return ["idc", "dream"]
    if any(f.endswith((".parquet", ".arrow")) for f in files) or (path / "data").is_dir():
        return ["hf"]
    if any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return ["imagefolder"]
    return []


def _guess_from_contents(path: Path) -> str | None:
    """Open the file the safe ways we know (safetensors, npz, weights-only torch) and look at its layout."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if len(head) == 8 and int.from_bytes(head, "little") < 100_000_000:  # a safetensors header length
        try:
            condensed.load(path)
            return "yoco"
        except YocoError:
            pass
    try:
        with zipfile.ZipFile(path) as zf:
            npz = any(n.endswith(".npy") for n in zf.namelist())
    except Exception:  # noqa: BLE001 - a corrupt zip directory can raise anything; it is just not a .npz
        npz = False
    if npz:
        return "kip"
    try:
        obj = _torch_load(path)
    except YocoError:
        return None
    if isinstance(obj, dict) and "data" in obj:
        return "dsa"
    if isinstance(obj, (list, tuple)) and len(obj) == 2:
        return "idc"
    if torch.is_tensor(obj) and obj.dim() == 4:
        return "mtt"
    return None


def _hint(path: Path, fmt: str) -> str:
    """Suggest another format when the file's contents (not its name, which misled us) fit one."""
    guess = _guess_from_contents(path)
    return f" (this looks like a {guess!r} file; try that format)" if guess not in (None, fmt) else ""


def describe(obj: Any) -> str:
    """A short description of what a file held, for error messages."""
    if torch.is_tensor(obj) or isinstance(obj, np.ndarray):
        return f"{type(obj).__name__} of shape {list(obj.shape)} ({obj.dtype})"
    if isinstance(obj, dict):
        keys = list(obj)[:8]
        return f"dict with keys {keys}{' ...' if len(obj) > 8 else ''}"
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(describe(v) for v in obj[:3])
        return f"{type(obj).__name__} of {len(obj)} item(s) [{inner}{', ...' if len(obj) > 3 else ''}]"
    return type(obj).__name__


def _torch_load(path: Path) -> Any:
    """``torch.load`` that only rebuilds tensors and plain containers, with errors naming the file.

    Nothing is materialised beyond :data:`MAX_LOAD_BYTES`: a zip-format file's members are checked before it is
    read and its storages are memory-mapped, and what the tensors would take once a reader copies them (a stride-0
    view of one stored number counts at its full size) is added up before any reader touches them.
    """
    if not path.is_file():
        raise YocoError(f"{path}: no such file")
    zipped = zipfile.is_zipfile(path)
    if zipped:
        _check_members(path)
    elif path.stat().st_size > MAX_LOAD_BYTES:
        raise YocoError(f"{path}: {path.stat().st_size} bytes, more than the {MAX_LOAD_BYTES / 2**30:g} GiB a "
                        "condensed-set file may hold")
    try:
        with warnings.catch_warnings():  # torch's own advice (multi-line warnings) is not for our users
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as exc:
        # The weights-only unpickler names a blocked callable or class; other messages mean a corrupt file or a
        # plain pickle. Either way torch's advice (load with weights_only=False) would execute the file: not quoted.
        m = re.search(r"GLOBAL (\S+)", str(exc))
        if m or re.search(r"allowlist|reduce for", str(exc)):
            what = f" (it references {m.group(1)})" if m else ""
            raise YocoError(f"refusing to execute code from {path}: it holds objects other than tensors and plain "
                            f"containers{what}") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        why = f" ({detail.group(1).strip()[:120]})" if detail else ""
        raise YocoError(f"{path}: not a readable PyTorch file{why}; yoco reads only tensors and plain containers, "
                        "without executing anything") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file makes torch.load raise anything
        raise YocoError(
            f"{path}: not a readable PyTorch file ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    _check_materialised(obj, path)
    return obj


def _check_members(path: Path) -> None:
    """Refuse a zip-format ``.pt`` whose members would unpack to more than :data:`MAX_LOAD_BYTES`."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except Exception as exc:  # noqa: BLE001 - a corrupt zip directory can raise anything
        raise YocoError(f"{path}: not a readable PyTorch file ({type(exc).__name__}: {_first_line(exc)})") from None
    total = sum(info.file_size for info in infos)
    if total > MAX_LOAD_BYTES:
        raise YocoError(f"{path}: its parts unpack to {total / 2**30:.3g} GiB, more than the "
                        f"{MAX_LOAD_BYTES / 2**30:g} GiB yoco reads from one file")


def _check_materialised(obj: Any, path: Path) -> None:
    """Refuse what ``torch.load`` returned when copying its tensors would take more than :data:`MAX_LOAD_BYTES`.

    Each tensor counts ``numel`` elements of at least 4 bytes (floats become float32) and integers 8 (int64 labels),
    whatever its storage holds, so views that repeat one stored value are counted as what a reader makes of them; and
    no tensor may read as more than :data:`MAX_VIEW_GROWTH` times the bytes it stores (beyond a small view), so a
    file's contents cost about its size. Walked without recursion, so deep nesting cannot overflow the stack."""
    total, count, todo, views = 0, 0, [obj], []
    while todo:
        item = todo.pop()
        count += 1
        if count > MAX_LOAD_OBJECTS:
            raise YocoError(f"{path}: holds more than {MAX_LOAD_OBJECTS} objects; not a condensed set")
        if torch.is_tensor(item):
            width = 4 if item.is_floating_point() or item.is_complex() else 8
            size = item.numel() * max(width, item.element_size())
            if item.layout == torch.strided:  # sparse and other layouts are refused by the readers themselves
                views.append((item, size))
            total += size
        elif isinstance(item, np.ndarray):
            total += item.size * max(8, item.itemsize)
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
    if total > MAX_LOAD_BYTES:
        raise YocoError(f"{path}: its tensors would take {total / 2**30:.3g} GiB once read (views counted at full "
                        f"size), more than the {MAX_LOAD_BYTES / 2**30:g} GiB yoco allows; refusing to read it")
    for item, size in views:
        stored = item.untyped_storage().nbytes()
        if size > max(MAX_VIEW_GROWTH * stored, MAX_SMALL_VIEW):
            raise YocoError(f"{path}: holds a tensor of {item.numel()} values that repeats {stored} stored bytes "
                            f"({size / 2**20:.3g} MiB once read: an expanded or overlapping view); refusing to read "
                            "it (save the tensor with .contiguous())")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else "no details"


def _from_numpy(a: np.ndarray) -> torch.Tensor:
    """A tensor of ``a`` in native byte order (torch refuses big-endian arrays, which numpy files may hold)."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return torch.from_numpy(np.ascontiguousarray(a))


def _dense(obj: Any, src: str, what: str, shape: str) -> torch.Tensor:
    """``obj`` as a dense torch tensor (numpy arrays converted), or a YocoError saying what was found."""
    if isinstance(obj, np.ndarray):
        obj = _from_numpy(obj)
    if not torch.is_tensor(obj):
        raise YocoError(f"{src}: expected {what} tensor {shape}, found {describe(obj)}")
    if obj.layout != torch.strided:
        raise YocoError(f"{src}: expected a dense {what.split()[-1]} tensor, found a {obj.layout} one")
    return obj


def _as_images(obj: Any, src: str) -> torch.Tensor:
    obj = _dense(obj, src, "an image", "[N, C, H, W]")
    if not obj.is_floating_point():
        raise YocoError(f"{src}: expected floating-point images, found {describe(obj)}")
    if obj.dim() != 4:
        raise YocoError(f"{src}: expected images of shape [N, C, H, W], found {describe(obj)}")
    return obj.detach().to(torch.float32)


def _as_labels(obj: Any, src: str) -> tuple[torch.Tensor, int | None, torch.Tensor | None, str | None]:
    """``(labels [N], class count, soft [N, C] or None, how the soft labels were read)`` of a label tensor.

    ``[N, C]`` labels are one-hot-like (every row the same high value at its class and the same low value
    elsewhere: one-hot, or KIP's centred one-hot regression targets), which are plain classes; or label distributions (non-negative rows summing to 1),
    kept as soft labels; or anything else, read as logits and kept as ``softmax`` (temperature 1).
    """
    obj = _dense(obj, src, "a label", "[N] or [N, C]").detach()
    if obj.dim() == 2 and obj.shape[1] == 1:
        obj = obj[:, 0]
    if obj.dim() == 2:
        if obj.shape[1] == 0:
            raise YocoError(f"{src}: expected labels of shape [N] or [N, C], found {describe(obj)}")
        q = obj.to(torch.float32)
        if not torch.isfinite(q).all():
            raise YocoError(f"{src}: labels contain NaN or infinite values")
        hard, width = q.argmax(dim=1), int(obj.shape[1])
        # one-hot-like: every row is the same two values, one high at the class and one low elsewhere
        code = torch.where(torch.nn.functional.one_hot(hard, width).bool(), q[0, hard[0]], q[0].min())
        if bool(((q == q.gather(1, hard[:, None])).sum(1) == 1).all()) and torch.equal(q, code):
            return hard, width, None, None
        if bool((q >= 0).all()) and torch.allclose(q.sum(1), torch.ones(len(q)), atol=1e-3):
            q = q / q.sum(1, keepdim=True)
            return q.argmax(1), width, q, "label distributions"
        q = torch.softmax(q, dim=1)
        return q.argmax(1), width, q, "logits, read as softmax (temperature 1)"
    if obj.dim() != 1:
        raise YocoError(f"{src}: expected labels of shape [N] or [N, C], found {describe(obj)}")
    if obj.is_floating_point() and not (torch.isfinite(obj).all() and torch.equal(obj, obj.round())):
        raise YocoError(f"{src}: 1-D labels must be whole class indices, found {describe(obj)}")
    return obj.to(torch.int64), None, None, None


def _infer_num_classes(labels: torch.Tensor, src: str) -> int:
    """Largest label + 1; refuses a count that would leave classes empty (also bounds memory)."""
    if labels.numel() == 0:
        return 1
    top = int(labels.max())
    if top >= labels.numel():
        raise YocoError(
            f"{src}: labels reach {top} but there are only {labels.numel()} images, so some classes would "
            f"have no images; check the file or pass --num-classes"
        )
    return top + 1


def _dataset_stats(dataset: str, src: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from yoco.data.datasets import normalization

    try:
        return normalization(dataset)
    except YocoError as exc:
        raise YocoError(
            f"{src}: the images are normalised but {dataset!r} is not a known dataset ({exc}); "
            f"give --mean and --std (one value per channel) yourself"
        ) from None


def _check_own(
    cs: CondensedSet,
    dataset: str,
    num_classes: int | None,
    factor: int | None,
    normalized: bool | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> CondensedSet:
    """A yoco file carries its own metadata: the caller's values may confirm it, never silently change it."""
    m = cs.meta
    given = {
        "dataset": (dataset, m.dataset, dataset.lower() == m.dataset.lower()),
        "num_classes": (num_classes, m.num_classes, num_classes in (None, m.num_classes)),
        "factor": (factor, m.factor, factor in (None, m.factor)),
        "normalized": (normalized, m.normalized, normalized in (None, m.normalized)),
        "mean": (mean, m.mean, mean is None or tuple(mean) == m.mean),
        "std": (std, m.std, std is None or tuple(std) == m.std),
    }
    for key, (want, have, ok) in given.items():
        if not ok:
            raise YocoError(f"{cs.source}: the file says {key}={reprlib.repr(have)} but --{key.replace('_', '-')} "
                            f"{reprlib.repr(want)} was given")
    return cs
