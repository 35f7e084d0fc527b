"""The condensed-set type, its safe file format, and IDC multi-formation decoding.

A condensed set is images ``[N, C, H, W]`` (float32), labels ``[N]`` (int64) and metadata. The project's own
file is a safetensors file (no pickle, nothing executes on load) whose header carries the metadata as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from yoco.errors import YocoError
from yoco.files import read_tensors, sha256_of, write_tensors
from yoco.provenance import without_provenance

FORMAT_VERSION = "1"

MAX_CLASSES = 100_000  # more classes than any real dataset; bounds what a file's metadata can make us allocate
MAX_COUNT = 10**9  # bound for ipc and factor: keeps every number a message may print short
MAX_CHANNELS = 4096  # bound on the length of mean/std
MAX_NAME = 1000  # bound on the length of the dataset and method strings


@dataclass
class CondensedMeta:
    """What a condensed set is: where it came from and how its images are stored."""

    dataset: str
    num_classes: int
    method: str = "unknown"
    ipc: int = 0
    factor: int = 1
    normalized: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    allow_empty_classes: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = list(self.mean) if self.mean is not None else None
        d["std"] = list(self.std) if self.std is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "<metadata>") -> CondensedMeta:
        """Metadata from its JSON form, every field type-checked and bounded; unknown keys are ignored.

        Raises :class:`YocoError` naming ``source`` for a missing or ill-typed field, before anything is
        allocated from the values (a file claiming 50 million classes is refused here).
        """
        if not isinstance(d, dict):
            raise YocoError(f"{source}: metadata must be a JSON object, found {_json_kind(d)}")
        kw: dict[str, Any] = {}
        for key in ("dataset", "num_classes"):
            if key not in d:
                raise YocoError(f"{source}: metadata has no {key!r}")
        for key, check in _META_FIELDS.items():
            if key in d:
                kw[key] = check(d[key], key, source)
        return cls(**kw)


def _json_kind(value: Any) -> str:
    """A short name for a JSON value's type, for messages (never the value itself, which may be huge)."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _brief(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a message never embeds a huge value."""
    if isinstance(value, (list, dict)) and len(value) > 8:
        return f"{_json_kind(value)} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _meta_str(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise YocoError(f"{source}: metadata {key} must be a string of at most {MAX_NAME} characters, "
                        f"got {_json_kind(value)} {_brief(value)}")
    return value


def _meta_int(low: int, high: int) -> Callable[[Any, str, str], int]:
    def check(value: Any, key: str, source: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise YocoError(f"{source}: metadata {key} must be an integer in {low}..{high}, "
                            f"got {_json_kind(value)} {_brief(value)}")
        return value

    return check


def _meta_bool(value: Any, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise YocoError(f"{source}: metadata {key} must be true or false, got {_json_kind(value)} {_brief(value)}")
    return value


def _meta_stats(value: Any, key: str, source: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    ok = (isinstance(value, list) and 0 < len(value) <= MAX_CHANNELS
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if not ok:
        raise YocoError(f"{source}: metadata {key} must be null or a list of 1..{MAX_CHANNELS} finite numbers "
                        f"(one per channel), got {_json_kind(value)} {_brief(value)}")
    return tuple(float(v) for v in value)


def _meta_dict(value: Any, key: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise YocoError(f"{source}: metadata {key} must be a JSON object, got {_json_kind(value)} {_brief(value)}")
    return value


_META_FIELDS: dict[str, Callable[[Any, str, str], Any]] = {
    "dataset": _meta_str,
    "num_classes": _meta_int(1, MAX_CLASSES),
    "method": _meta_str,
    "ipc": _meta_int(0, MAX_COUNT),
    "factor": _meta_int(1, MAX_COUNT),
    "normalized": _meta_bool,
    "mean": _meta_stats,
    "std": _meta_stats,
    "allow_empty_classes": _meta_bool,
    "extra": _meta_dict,
}


@dataclass
class CondensedSet:
    """Images, labels and metadata of one condensed (or pruned) set.

    ``images`` are stored as the method produced them: in pixel space ``[0, 1]`` when
    ``meta.normalized`` is false, otherwise standardised with ``meta.mean``/``meta.std``.
    ``labels`` are class indices ``[N]``; a set with soft labels (MTT/DATM and later methods learn a label
    distribution per image) also holds them as ``soft`` ``[N, C]`` (rows sum to 1), and ``labels`` is then each
    row's arg-max class, which is what class balance and the test labels use.
    """

    images: torch.Tensor
    labels: torch.Tensor
    meta: CondensedMeta
    source: str = "<memory>"
    soft: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.images = torch.as_tensor(self.images).detach().to(torch.float32).contiguous()
        labels = torch.as_tensor(self.labels).detach()
        if labels.dim() > 1 and labels.shape[1:].numel() != 1:
            raise YocoError(f"{self.source}: labels must be class indices [N], got shape {list(labels.shape)} "
                            "(pass label distributions as soft=[N, C])")
        if labels.is_floating_point() and not torch.equal(labels, labels.round()):
            raise YocoError(f"{self.source}: labels must be whole class indices, got fractional values")
        self.labels = labels.to(torch.int64).reshape(-1).contiguous()
        if self.soft is not None:
            self.soft = torch.as_tensor(self.soft).detach().to(torch.float32).contiguous()
        validate(self)

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    def class_counts(self) -> list[int]:
        """Number of stored images per class."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def pixels(self) -> torch.Tensor:
        """Images in pixel space (de-standardised when the set is stored normalised)."""
        if not self.meta.normalized:
            return self.images
        mean, std = _stats(self.meta, self.images.shape[1], self.source)
        return self.images * std + mean

    def normalized_images(self, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
        """Images standardised with the given per-channel statistics, ready for a network."""
        if self.meta.normalized:
            own = (tuple(self.meta.mean or ()), tuple(self.meta.std or ()))
            if own == (tuple(mean), tuple(std)):
                return self.images
        return normalize(self.pixels(), mean, std)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Standardise ``[N, C, H, W]`` pixels per channel: ``(x - mean) / std``."""
    c = x.shape[1]
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    return (x - m) / s


def _stats(meta: CondensedMeta, channels: int, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    if meta.mean is None or meta.std is None:
        raise YocoError(f"{source}: images are marked normalised but the metadata has no mean/std")
    mean = torch.tensor(meta.mean, dtype=torch.float32).view(1, channels, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float32).view(1, channels, 1, 1)
    return mean, std


def validate(cs: CondensedSet) -> None:
    """Raise :class:`YocoError` naming ``cs.source`` if shapes, labels or metadata are inconsistent."""
    src, x, y, m = cs.source, cs.images, cs.labels, cs.meta
    if x.dim() != 4:
        raise YocoError(f"{src}: images must be [N, C, H, W], got shape {list(x.shape)}")
    if x.shape[0] != y.shape[0]:
        raise YocoError(f"{src}: {x.shape[0]} images but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise YocoError(f"{src}: the set holds no images")
    if x.shape[1] == 0:
        raise YocoError(f"{src}: images have no channels (shape {list(x.shape)}; expected [N, C, H, W] with C >= 1)")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise YocoError(f"{src}: images are empty, {x.shape[2]}x{x.shape[3]} pixels (shape {list(x.shape)})")
    if not 1 <= m.num_classes <= MAX_CLASSES:
        raise YocoError(f"{src}: num_classes must lie in 1..{MAX_CLASSES}, got {_brief(m.num_classes)}")
    if int(y.min()) < 0 or int(y.max()) >= m.num_classes:
        raise YocoError(
            f"{src}: labels must lie in [0, {m.num_classes - 1}], got range [{int(y.min())}, {int(y.max())}]"
        )
    empty = [c for c, n in enumerate(torch.bincount(y, minlength=m.num_classes).tolist()) if n == 0]
    if empty and not m.allow_empty_classes:
        shown = ", ".join(map(str, empty[:10])) + (f", ... ({len(empty)} in all)" if len(empty) > 10 else "")
        raise YocoError(f"{src}: class(es) [{shown}] have no images")
    if not 1 <= m.factor <= MAX_COUNT:
        raise YocoError(f"{src}: factor must lie in 1..{MAX_COUNT}, got {_brief(m.factor)}")
    problem = factor_problem(*x.shape[-2:], m.factor)
    if problem:
        raise YocoError(f"{src}: {problem}")
    if not torch.isfinite(x).all():
        raise YocoError(f"{src}: images contain NaN or infinite values")
    if m.normalized and (m.mean is None or m.std is None):
        raise YocoError(f"{src}: images are marked normalised but the metadata has no mean/std")
    for key in ("mean", "std"):
        v = getattr(m, key)
        if v is not None and len(v) != x.shape[1]:
            raise YocoError(f"{src}: metadata {key} has {len(v)} values for {x.shape[1]} channels")
        if v is not None and not all(math.isfinite(s) for s in v):
            raise YocoError(f"{src}: metadata {key} holds NaN or infinite values")
    if cs.soft is not None:
        _check_soft(cs)
    _check_claims(cs)
    if m.std is not None and min(m.std) <= 0:
        channel = min(range(len(m.std)), key=lambda i: m.std[i])
        raise YocoError(f"{src}: metadata std must be positive, got {m.std[channel]:g} for channel {channel}")
    lo, hi = pixel_range(cs)
    if lo < -PIXEL_LIMIT or hi > 1 + PIXEL_LIMIT:
        stored = "standardised images" if m.normalized else "pixels declared in [0, 1]"
        hint = " (0-255 pixels? divide by 255)" if not m.normalized and hi > 20 else ""
        raise YocoError(f"{src}: {stored} reach [{lo:.4g}, {hi:.4g}] in pixel space, far outside the expected "
                        f"[0, 1] (give or take {PIXEL_LIMIT:g}){hint}")


def _check_soft(cs: CondensedSet) -> None:
    """Soft labels: ``[N, num_classes]`` distributions whose arg-max is the hard label."""
    src, q = cs.source, cs.soft
    if q.dim() != 2 or q.shape != (len(cs.labels), cs.meta.num_classes):
        raise YocoError(f"{src}: soft labels must be [N={len(cs.labels)}, C={cs.meta.num_classes}], "
                        f"got {list(q.shape)}")
    if not torch.isfinite(q).all() or (q < 0).any() or not torch.allclose(q.sum(1), torch.ones(len(q)), atol=1e-3):
        raise YocoError(f"{src}: soft labels must be probability distributions (non-negative rows summing to 1)")
    if not torch.equal(q.argmax(1), cs.labels):
        raise YocoError(f"{src}: labels must be the arg-max class of the soft labels")


def _check_claims(cs: CondensedSet) -> None:
    """Metadata may not claim what the data does not have: soft labels it does not hold, or a ZCA recipe for
    values that are not standardised (ZCA whitening is applied to standardised images)."""
    extra, src = cs.meta.extra, cs.source
    if cs.soft is None and extra.get("soft_labels"):
        raise YocoError(f"{src}: the metadata says the set has soft labels ({_brief(extra['soft_labels'])}) but it "
                        "holds none; the labels file was lost on the way")
    recipe = extra.get("recipe")
    if isinstance(recipe, dict) and "zca" in recipe and not cs.meta.normalized:
        raise YocoError(f"{src}: the metadata's recipe says the images are ZCA-whitened but they are declared as "
                        "[0, 1] pixels; ZCA values are standardised, not pixels")


PIXEL_LIMIT = 10.0  # how far outside [0, 1] a pixel may stray before the set is refused as corrupt or mislabelled
PLAUSIBLE = (-0.5, 1.5)  # a pixel-space range outside this is suspicious (normalisation declared wrong?)


def pixel_range(cs: CondensedSet) -> tuple[float, float]:
    """The (min, max) of the set's images in pixel space, where real images lie in [0, 1]."""
    if not cs.meta.normalized:
        return float(cs.images.min()), float(cs.images.max())
    mean, std = _stats(cs.meta, cs.images.shape[1], cs.source)
    # the map x * std + mean is increasing per channel (std > 0), so the channel extremes give the range
    lo = cs.images.amin((0, 2, 3), keepdim=True) * std + mean
    hi = cs.images.amax((0, 2, 3), keepdim=True) * std + mean
    return float(lo.min()), float(hi.max())


def normalisation_warning(cs: CondensedSet) -> str | None:
    """A sentence when the stored values contradict the declared normalisation, else None.

    Pixels declared in [0, 1] that go well outside it look standardised; standardised images that never go
    below zero look like [0, 1] pixels (every real dataset's mean is above its darkest pixel).
    """
    lo, hi = pixel_range(cs)
    if not cs.meta.normalized and (lo < PLAUSIBLE[0] or hi > PLAUSIBLE[1]):
        return (f"images are declared as [0, 1] pixels but range over [{lo:.3g}, {hi:.3g}]: they look standardised "
                "(mean/std) already")
    if cs.meta.normalized and float(cs.images.min()) >= 0.0:
        return (f"images are declared standardised but no value is below 0 (range [{float(cs.images.min()):.3g}, "
                f"{float(cs.images.max()):.3g}]): they look like unnormalised [0, 1] pixels")
    return None


def factor_problem(h: int, w: int, factor: int) -> str | None:
    """Why ``factor`` cannot multi-form an ``h`` x ``w`` image, or None when it can.

    A factor that divides both sides cuts equal tiles. Any other follows IDC's padding rule (``decode_zoom``,
    condense.py:102-122): the image is padded right and bottom with mid-grey to the next multiple of the factor and
    cut into tiles of ``ceil(side / factor)`` (224 px, factor 3: 225, tiles of 75). IDC reads one side for both, so
    the rule needs a square image, and no tile may be padding alone.
    """
    if h % factor == 0 and w % factor == 0:
        return None
    if h == w and (factor - 1) * math.ceil(h / factor) < h:
        return None
    return (f"factor {factor} neither divides the image size {h}x{w} nor fits IDC's padding rule (square images "
            f"padded right and bottom to a multiple of the factor, no tile all padding)")


def decode(cs: CondensedSet, *, bound: int | None = None) -> CondensedSet:
    """Split every stored image into ``factor**2`` tiles and upsample each back to full size (bilinear).

    Tiles are taken row by row (top-left, top-right, bottom-left, bottom-right for factor 2); decoded
    image ``i * f**2 + t`` is tile ``t`` of stored image ``i``, and its label is stored label ``i``. A size the
    factor does not divide is padded first with mid-grey pixels, as IDC does (:func:`decode_images`).
    A set with factor 1 is returned unchanged.

    ``bound`` is IDC's "bound" multi-formation (``decode_zoom_bound``, used while condensing ImageNet at IPC >= 20):
    each class decodes to at most ``bound`` images, its first stored images at the full factor and the rest at
    smaller ones (:func:`bound_plan`); the decoded set is then class by class. Evaluation decodes without it, as
    IDC's test.py and YOCO do.
    """
    f = cs.meta.factor
    if f == 1:
        return cs
    pad = pixel_pad(cs)
    if bound is None:
        images = decode_images(cs.images, f, pad=pad)
        parent = torch.arange(len(cs)).repeat_interleave(f * f)
        extra = {**cs.meta.extra, "decoded_from_factor": f}
    else:
        parts, parents = [], []
        for c in range(cs.num_classes):
            rows = (cs.labels == c).nonzero().flatten()
            if len(rows):
                dec, which = decode_bound_images(cs.images[rows], f, bound, pad=pad)
                parts.append(dec)
                parents.append(rows[which])
        images, parent = torch.cat(parts), torch.cat(parents)
        extra = {**cs.meta.extra, "decoded_from_factor": f, "decode": "bound", "decode_bound": bound}
    soft = cs.soft[parent] if cs.soft is not None else None
    meta = dataclasses.replace(cs.meta, factor=1, extra=extra)
    return CondensedSet(images, cs.labels[parent], meta, source=cs.source, soft=soft)


def pixel_pad(cs: CondensedSet) -> float | tuple[float, ...]:
    """The value IDC pads with, as ``cs`` stores it: 0.5 in pixel space (IDC pads its unnormalised ``data.pt``
    images; normalisation comes later, in the loader's transform or the matching augmentation), so
    ``(0.5 - mean) / std`` per channel for a set stored standardised."""
    if not cs.meta.normalized:
        return DECODE_PAD
    mean, std = _stats(cs.meta, cs.images.shape[1], cs.source)
    return tuple(((DECODE_PAD - mean) / std).flatten().tolist())


DECODE_PAD = 0.5  # IDC decode_zoom pads with value=0.5 (condense.py:110, test.py:144; YOCO utils/img_loader.py:110)


def decode_images(images: torch.Tensor, factor: int, pad: float | tuple[float, ...] = DECODE_PAD) -> torch.Tensor:
    """Differentiable multi-formation decoding of ``[N, C, H, W]`` into ``[N * f^2, C, H, W]`` (image-major).

    When ``factor`` does not divide the size, the images are first padded right and bottom with ``pad`` (one
    value, or one per channel) to the next multiple of it, as IDC's ``decode_zoom`` does (:func:`factor_problem`).
    """
    n, c, h, w = images.shape
    problem = factor_problem(h, w, factor)
    if problem:
        raise YocoError(problem)
    if h % factor or w % factor:
        images = _pad_right_bottom(images, factor - h % factor, pad)
    th, tw = images.shape[2] // factor, images.shape[3] // factor
    tiles = images.reshape(n, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n * factor * factor, c, th, tw)
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def _pad_right_bottom(x: torch.Tensor, p: int, pad: float | tuple[float, ...]) -> torch.Tensor:
    """``x`` with ``p`` columns on the right and ``p`` rows at the bottom of value ``pad`` (per channel allowed)."""
    if isinstance(pad, (int, float)):
        return F.pad(x, (0, p, 0, p), value=float(pad))
    n, c, h, w = x.shape
    fill = torch.tensor(pad, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    x = torch.cat([x, fill.expand(n, c, h, p)], 3)
    return torch.cat([x, fill.expand(n, c, p, w + p)], 2)


def bound_plan(n: int, factor: int, bound: int) -> list[tuple[int, int]]:
    """IDC's ``decode_zoom_bound`` split of one class's ``n`` stored images: ``(factor, count)`` pairs, largest
    factor first, so that the class decodes to at most about ``bound`` images (condense.py:136-168).

    Starting from ``room = bound - n``, each factor k > 1 takes ``min(room // k^2, images left)`` images, after
    which ``room = bound - decoded so far - images left``; factor 1 takes whatever is left. ImageNet at IPC 20 with
    factor 3 and bound 128: 12 images at factor 3, 3 at factor 2, 5 at factor 1 (125 decoded images).
    """
    plan, left, done, room = [], n, 0, bound - n
    for k in range(factor, 0, -1):
        take = min(room // (k * k), left) if k > 1 else left
        if take > 0:
            plan.append((k, take))
        left -= max(take, 0)
        done += max(take, 0) * k * k
        room = bound - done - left
        if left == 0:
            break
    return plan


def decode_bound_images(images: torch.Tensor, factor: int, bound: int, pad: float | tuple[float, ...] = DECODE_PAD
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """One class's stored images decoded by :func:`bound_plan` (differentiable): the decoded images and, for
    each, the row of ``images`` it came from. Factor 1 keeps an image whole."""
    out, parent, start = [], [], 0
    for k, count in bound_plan(len(images), factor, bound):
        part = images[start:start + count]
        out.append(decode_images(part, k, pad=pad) if k > 1 else part)
        parent.append(torch.arange(start, start + count).repeat_interleave(k * k))
        start += count
    return torch.cat(out), torch.cat(parent)


def content_sha256(cs: CondensedSet) -> str:
    """sha256 of a set's content (images, labels and metadata): the same set gives the same digest wherever it is
    stored, so every result can name exactly what it was computed from."""
    meta = cs.meta.to_dict()
    meta["extra"] = without_provenance(meta["extra"])  # which run made the set is not what the set is
    soft = [] if cs.soft is None else [cs.soft]
    return sha256_of([cs.images, cs.labels, *soft, json.dumps(meta, sort_keys=True)])


def save(cs: CondensedSet, path: str | Path) -> Path:
    """Write ``cs`` to ``path`` in the project's safetensors format (atomically)."""
    header = {"yoco_format": FORMAT_VERSION, "meta": json.dumps(cs.meta.to_dict())}
    tensors = {"images": cs.images, "labels": cs.labels}
    if cs.soft is not None:
        tensors["soft_labels"] = cs.soft
    return write_tensors(path, tensors, header)


def load(path: str | Path) -> CondensedSet:
    """Read a condensed set written by :func:`save`; never executes code from the file.

    Every problem with the file (unreadable, foreign, bad metadata, bad tensors) is a :class:`YocoError`
    naming it.
    """
    path = Path(path)
    header, tensors = read_tensors(path, "condensed-set file")
    if "meta" not in header or "images" not in tensors or "labels" not in tensors:
        raise YocoError(f"{path}: not a yoco condensed-set file (missing images, labels or metadata)")
    meta = CondensedMeta.from_dict(_parse_json(header["meta"], path, "metadata"), source=str(path))
    return CondensedSet(tensors["images"], tensors["labels"], meta, source=str(path), soft=tensors.get("soft_labels"))


def _parse_json(text: str, path: Path, what: str) -> Any:
    """``json.loads`` whose every failure (bad syntax, absurd nesting, huge integers) is a one-line YocoError."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise YocoError(f"{path}: {what} is not valid JSON ({detail})") from None
