"""Importers for the file formats that published condensed sets come in.

Each format is one reader function registered with :func:`register`; a reader opens the file and returns the
raw images and labels, and :func:`import_condensed` turns them into a validated :class:`CondensedSet` with
the format's defaults (multi-formation factor, normalisation) unless the caller overrides them.

Nothing in a file is ever executed: ``.pt`` files are opened with ``torch.load(weights_only=True)`` and
``.npz`` files with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
import math
import pickle
import re
import reprlib
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoco import protocol
from yoco.data import condensed
from yoco.data.condensed import CondensedMeta, CondensedSet
from yoco.data.readers import FORMATS, Raw, Request, read_own_meta, register
from yoco.data.zca import looks_whitened, neighbour_correlation
from yoco.errors import YocoError
from yoco.protocol import ZCA_EPS

logger = logging.getLogger(__name__)

KIP_IMAGE_KEYS = ("images", "x", "support_images", "x_train", "image")
KIP_LABEL_KEYS = ("labels", "y", "support_labels", "y_train", "label")
MAX_ARRAY_BYTES = 2 * 1024**3  # an archived array declaring more than this is refused before anything is read
# What the tensors of one .pt file may amount to once a reader materialises them (views counted at their full size,
# as float32 images / int64 labels); a stride-0 view of one stored number can claim terabytes.
MAX_LOAD_BYTES = 4 * 1024**3
MAX_VIEW_GROWTH, MAX_SMALL_VIEW = 16, 16 * 1024**2  # a view may read as 16x its storage (uint8 -> float32...)
MAX_LOAD_OBJECTS = 100_000  # containers and tensors in one .pt file (a published set holds a handful)
MAX_MTT_LR = 1.0  # MTT's learned learning rates are about 0.01; a larger one is a damaged or foreign file


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


@register(
    "idc",
    factor=2,
    normalized=False,
    default_file="data.pt",
    summary="IDC data.pt: [images, labels], unnormalised [0, 1] multi-formation images (factor 2; 3 for ImageNet)",
    factor_by_dataset={name: protocol.idc_preset(name)["factor"] for name in protocol.IMAGENET_SUBSETS},
)
def read_idc(path: Path, req: Request) -> Raw:
    """IDC's ``data.pt``: ``torch.save([images, labels])`` of the stored synthetic tensor.

    The pixels are *unnormalised* (about [0, 1], slightly outside where the last updates were not clamped):
    IDC's condense.py keeps them in [0, 1] and normalises on the way into the network, and its README says
    "all of our data are unnormalized, so normalization is required for training".
    """
    return _read_pair_file(path, "idc")


@register(
    "dream", factor=2, normalized=False, default_file="data.pt",
    summary="DREAM data.pt: same layout as IDC (unnormalised pixels)",
)
def read_dream(path: Path, req: Request) -> Raw:
    """DREAM's ``data.pt`` (built on IDC's code, same layout)."""
    return _read_pair_file(path, "dream")


def _read_pair_file(path: Path, fmt: str) -> Raw:
    obj = _torch_load(path)
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise YocoError(
            f"{path}: expected a list [images, labels] of two tensors, found {describe(obj)}{_hint(path, fmt)}"
        )
    return Raw(obj[0], obj[1])


@register(
    "mtt",
    factor=1,
    normalized=True,
    default_file="images_best.pt",
    uses=("labels_path",),
    summary="MTT images_best.pt + labels_best.pt (and lr_best.pt, the learned learning rate) beside it",
)
def read_mtt(path: Path, req: Request) -> Raw:
    """MTT's ``images_best.pt`` (a tensor) with ``labels_best.pt`` (and ``lr_best.pt``) from the same folder."""
    return _read_tensor_files(path, req, "mtt")


@register(
    "dd-ranking",
    factor=1,
    normalized=True,
    uses=("labels_path",),
    folder=True,
    summary="DD-Ranking's layout: a folder of images.pt, labels.pt (hard or soft) and lr.pt (the _best names too)",
)
def read_ddranking(path: Path, req: Request) -> Raw | CondensedSet:
    """DD-Ranking's files: ``images.pt`` (standardised ``[N, C, H, W]``), ``labels.pt`` (``[N]`` or soft ``[N, C]``)
    and ``lr.pt`` (the learned learning rate), or MTT's ``_best`` names; ``path`` is the folder or the images file.
    A ``condensed.json`` beside them (``yoco export --format dd-ranking``) restores yoco's metadata."""
    if path.is_dir():
        found = [path / name for name in IMAGE_FILES if (path / name).is_file()]
        if not found:
            raise YocoError(f"{path}: no {' or '.join(IMAGE_FILES)} in this folder (DD-Ranking's layout)")
        if len(found) > 1:
            raise YocoError(f"{path}: holds both {found[0].name} and {found[1].name}; pass the one to import as the "
                            "path")
        path = found[0]
    raw = _read_tensor_files(path, req, "dd-ranking")
    own = path.with_name(OWN_META)
    return from_own_meta(raw, own) if own.is_file() else raw


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


def _read_tensor_files(path: Path, req: Request, fmt: str) -> Raw:
    """An images tensor file with its labels file and, where there is one, its learned learning rate."""
    if path.stem.startswith("labels") and req.labels_path is None:
        raise YocoError(f"{path}: this is a labels file; pass the images file ({' or '.join(IMAGE_FILES)}) or its "
                        "folder as the path")
    labels_path, lr_paths = companion_files(path, req.labels_path)
    if not labels_path.is_file():
        raise YocoError(f"{labels_path}: labels file not found beside {path.name}; name it with --labels FILE "
                        "(labels_path in Python)")
    images = _torch_load(path)
    if not torch.is_tensor(images):
        raise YocoError(
            f"{path}: expected an image tensor [N, C, H, W], found {describe(images)}{_hint(path, fmt)}"
        )
    labels = _torch_load(labels_path)
    if not torch.is_tensor(labels) or labels.dim() == 0:
        raise YocoError(f"{labels_path}: expected a label tensor [N], found {describe(labels)}")
    if images.dim() > 0 and labels.shape[0] != images.shape[0]:
        raise YocoError(f"{path}: {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels")
    extra: dict[str, Any] = {"labels_file": labels_path.name}
    lr_path = next((f for f in lr_paths if f.is_file()), None)
    if lr_path is not None:  # MTT learns the evaluation learning rate with the images
        extra["recipe"] = {"lr": _read_lr(lr_path), "lr_file": lr_path.name}
    return Raw(images, labels, extra)


def _read_lr(path: Path) -> float:
    lr = _torch_load(path)
    if not torch.is_tensor(lr) or lr.numel() != 1 or lr.is_complex():
        raise YocoError(f"{path}: expected one positive learning rate, found {describe(lr)}")
    value = float(lr)
    if not (math.isfinite(value) and 0 < value <= MAX_MTT_LR):
        raise YocoError(f"{path}: learning rate {value:g} is outside (0, {MAX_MTT_LR:g}] (MTT learns about "
                        "0.01); refusing to train with it: remove the file or fix it")
    return value


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


@register(
    "dsa",
    factor=1,
    normalized=True,
    uses=("experiment",),
    summary="DC/DSA/DM res_*.pt: {'data': [(images, labels), ...]}, one pair per experiment",
)
def read_dsa(path: Path, req: Request) -> Raw:
    """The DC/DSA/DM results file: a dict whose ``data`` lists one ``(images, labels)`` pair per experiment."""
    obj = _torch_load(path)
    if not isinstance(obj, dict) or "data" not in obj:
        raise YocoError(f"{path}: expected a dict with key 'data', found {describe(obj)}{_hint(path, 'dsa')}")
    runs = obj["data"]
    if not isinstance(runs, (list, tuple)) or not runs:
        raise YocoError(
            f"{path}: expected 'data' to be a non-empty list of (images, labels), found {describe(runs)}"
        )
    if not 0 <= req.experiment < len(runs):
        raise YocoError(
            f"{path}: experiment {req.experiment} requested but the file holds "
            f"{len(runs)} (0..{len(runs) - 1})"
        )
    pair = runs[req.experiment]
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise YocoError(
            f"{path}: expected data[{req.experiment}] to be (images, labels), found {describe(pair)}"
        )
    extra: dict[str, Any] = {"experiment": req.experiment, "experiments_in_file": len(runs)}
    m = re.match(r"res_([A-Za-z]+)_", path.name)
    if m:
        extra["reference_method"] = m.group(1).lower()
    return Raw(pair[0], pair[1], extra)


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


@register("yoco", factor=1, normalized=False, summary="yoco's own .safetensors file")
def read_yoco(path: Path, req: Request) -> CondensedSet:
    """The project's own safetensors file (metadata included)."""
    return condensed.load(path)


from yoco.data import containers  # noqa: F401  (registers the image-folder and Hugging Face readers)
