"""The condensed-set type, its safe file format, and IDC multi-formation decoding.

A condensed set is images ``[N, C, H, W]`` (float32), labels ``[N]`` (int64) and metadata. The project's own
file is a safetensors file (no pickle, nothing executes on load) whose header carries the metadata as JSON.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from yoco.errors import YocoError
from yoco.io import read_tensors, write_tensors

FORMAT_VERSION = "1"


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
    def from_dict(cls, d: dict[str, Any]) -> CondensedMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for key in ("mean", "std"):
            if kw.get(key) is not None:
                kw[key] = tuple(float(v) for v in kw[key])
        return cls(**kw)


@dataclass
class CondensedSet:
    """Images, labels and metadata of one condensed (or pruned) set.

    ``images`` are stored as the method produced them: in pixel space ``[0, 1]`` when
    ``meta.normalized`` is false, otherwise standardised with ``meta.mean``/``meta.std``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    meta: CondensedMeta
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.images = torch.as_tensor(self.images).detach().to(torch.float32).contiguous()
        labels = torch.as_tensor(self.labels).detach()
        if labels.dim() > 1 and labels.shape[1:].numel() != 1:
            raise YocoError(f"{self.source}: labels must be class indices [N], got shape {list(labels.shape)} "
                            "(soft or one-hot labels are not supported)")
        if labels.is_floating_point() and not torch.equal(labels, labels.round()):
            raise YocoError(f"{self.source}: labels must be whole class indices, got fractional values")
        self.labels = labels.to(torch.int64).reshape(-1).contiguous()
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
    if m.num_classes < 1:
        raise YocoError(f"{src}: num_classes must be at least 1, got {m.num_classes}")
    if int(y.min()) < 0 or int(y.max()) >= m.num_classes:
        raise YocoError(
            f"{src}: labels must lie in [0, {m.num_classes - 1}], got range [{int(y.min())}, {int(y.max())}]"
        )
    empty = [c for c, n in enumerate(torch.bincount(y, minlength=m.num_classes).tolist()) if n == 0]
    if empty and not m.allow_empty_classes:
        raise YocoError(f"{src}: class(es) {empty} have no images")
    if m.factor < 1:
        raise YocoError(f"{src}: factor must be >= 1, got {m.factor}")
    h, w = x.shape[-2:]
    if h % m.factor or w % m.factor:
        raise YocoError(f"{src}: factor {m.factor} does not divide the image size {h}x{w}")
    if not torch.isfinite(x).all():
        raise YocoError(f"{src}: images contain NaN or infinite values")
    if m.normalized and (m.mean is None or m.std is None):
        raise YocoError(f"{src}: images are marked normalised but the metadata has no mean/std")
    for key in ("mean", "std"):
        v = getattr(m, key)
        if v is not None and len(v) != x.shape[1]:
            raise YocoError(f"{src}: metadata {key} has {len(v)} values for {x.shape[1]} channels")
    if m.std is not None and min(m.std) <= 0:
        raise YocoError(f"{src}: metadata std must be positive, got {list(m.std)}")
    lo, hi = pixel_range(cs)
    if lo < -PIXEL_LIMIT or hi > 1 + PIXEL_LIMIT:
        stored = "standardised images" if m.normalized else "pixels declared in [0, 1]"
        hint = " (0-255 pixels? divide by 255)" if not m.normalized and hi > 20 else ""
        raise YocoError(f"{src}: {stored} reach [{lo:.4g}, {hi:.4g}] in pixel space, far outside the expected "
                        f"[0, 1] (give or take {PIXEL_LIMIT:g}){hint}")


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


def decode(cs: CondensedSet) -> CondensedSet:
    """Split every stored image into ``factor**2`` tiles and upsample each back to full size (bilinear).

    Tiles are taken row by row (top-left, top-right, bottom-left, bottom-right for factor 2); decoded
    image ``i * f**2 + t`` is tile ``t`` of stored image ``i``, and its label is stored label ``i``.
    A set with factor 1 is returned unchanged.
    """
    f = cs.meta.factor
    if f == 1:
        return cs
    images = decode_images(cs.images, f)
    labels = cs.labels.repeat_interleave(f * f)
    meta = dataclasses.replace(cs.meta, factor=1, extra={**cs.meta.extra, "decoded_from_factor": f})
    return CondensedSet(images, labels, meta, source=cs.source)


def decode_images(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Differentiable multi-formation decoding of ``[N, C, H, W]`` into ``[N * f^2, C, H, W]``."""
    n, c, h, w = images.shape
    if h % factor or w % factor:
        raise YocoError(f"factor {factor} does not divide the image size {h}x{w}")
    th, tw = h // factor, w // factor
    tiles = images.reshape(n, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n * factor * factor, c, th, tw)
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def content_sha256(cs: CondensedSet) -> str:
    """sha256 of a set's content (images, labels and metadata): the same set gives the same digest wherever it is
    stored, so every result can name exactly what it was computed from."""
    h = hashlib.sha256()
    h.update(cs.images.numpy().tobytes())
    h.update(cs.labels.numpy().tobytes())
    h.update(json.dumps(cs.meta.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def save(cs: CondensedSet, path: str | Path) -> Path:
    """Write ``cs`` to ``path`` in the project's safetensors format (atomically)."""
    header = {"yoco_format": FORMAT_VERSION, "meta": json.dumps(cs.meta.to_dict())}
    return write_tensors(path, {"images": cs.images, "labels": cs.labels}, header)


def load(path: str | Path) -> CondensedSet:
    """Read a condensed set written by :func:`save`; never executes code from the file."""
    path = Path(path)
    header, tensors = read_tensors(path, "condensed-set file")
    if "meta" not in header or "images" not in tensors or "labels" not in tensors:
        raise YocoError(f"{path}: not a yoco condensed-set file (missing images, labels or metadata)")
    try:
        meta = CondensedMeta.from_dict(json.loads(header["meta"]))
    except (json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise YocoError(f"{path}: metadata is unreadable ({exc})") from None
    return CondensedSet(tensors["images"], tensors["labels"], meta, source=str(path))
