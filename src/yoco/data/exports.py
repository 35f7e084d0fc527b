"""Writing a condensed set in the layouts other tools read: an image folder, a Hugging Face snapshot, DD-Ranking's.

Each writer puts yoco's ``condensed.json`` beside what it writes (the metadata, the recipe, and where the labels
are), so that ``yoco import`` of an export gives back the same set: the same tensors (up to 8-bit pixels for the
picture layouts), the same hard and soft labels and the same evaluation recipe. Nothing is claimed that the files
no longer hold: pictures cannot hold ZCA-whitened values, so the picture layouts refuse such a set unless asked for
a lossy copy, whose metadata then drops the recipe; DD-Ranking's tensors keep it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from yoco.data.condensed import CondensedSet, decode
from yoco.data.containers import META_FILE, export_hf, export_imagefolder, export_record
from yoco.errors import YocoError
from yoco.files import atomic_folder, atomic_write, write_json
from yoco.registry import Registry

log = logging.getLogger(__name__)

Writer = Callable[[CondensedSet, Path, "list[str] | None", bool], Path]


@dataclass(frozen=True)
class Export:
    """A layout ``yoco export`` writes: its writer ``(set, folder, class names, lossy) -> folder``."""

    name: str
    write: Writer
    summary: str
    pictures: bool  # 8-bit pictures (ZCA-whitened sets need lossy=True) rather than the tensors themselves


EXPORTS: Registry[Export] = Registry("export layout")


def _add(name: str, write: Writer, summary: str, pictures: bool) -> None:
    EXPORTS.add(name, Export(name, write, summary, pictures), description=summary)


def export_set(cs: CondensedSet, out: str | Path, fmt: str = "imagefolder", class_names: list[str] | None = None,
               lossy: bool = False) -> Path:
    """Write ``cs`` into the new (or empty) folder ``out`` in layout ``fmt`` (one of ``EXPORTS``)."""
    return EXPORTS.get(fmt).write(cs, Path(out), class_names, lossy)


def export_ddranking(cs: CondensedSet, out: str | Path, class_names: list[str] | None = None,
                     lossy: bool = False) -> Path:
    """Write ``cs`` as DD-Ranking reads a set: ``images.pt`` (decoded images standardised with the set's or its
    dataset's mean and std, as DD-Ranking's evaluators take them; ZCA-whitened sets as they are), ``labels.pt``
    (class indices, or for a soft-labelled set the log-probabilities of its distributions: DD-Ranking applies a
    softmax to soft labels, as to a teacher's logits) and ``lr.pt`` when the set has a learned learning rate; and
    ``condensed.json``. ``class_names`` and ``lossy`` are not used (the tensors are kept as they are)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise YocoError(f"{out}: exists and is not empty (or not a folder); choose a new folder")
    dec = decode(cs)
    if cs.meta.factor > 1:
        log.info("%s: decoded %d stored images (factor %d) into %d, as DD-Ranking trains on them", cs.source, len(cs),
                 cs.meta.factor, len(dec))
    meta = dec.meta
    if not meta.normalized:
        mean, std = _statistics(dec)
        images = dec.normalized_images(mean, std)
        meta = dataclasses.replace(meta, normalized=True, mean=mean, std=std)
    else:
        images = dec.images
    recipe = meta.extra.get("recipe") if isinstance(meta.extra.get("recipe"), dict) else {}
    labels = dec.soft.clamp_min(1e-12).log() if dec.soft is not None else dec.labels
    with atomic_folder(out) as tmp:
        _save_pt(images.contiguous(), tmp / "images.pt")
        _save_pt(labels.contiguous(), tmp / "labels.pt")
        if "lr" in recipe:
            _save_pt(torch.tensor(float(recipe["lr"])), tmp / "lr.pt")
        write_json(tmp / META_FILE, {**export_record(cs, "dd-ranking", meta.to_dict()),
                                     "note": "images.pt holds the decoded images standardised with meta.mean/std; "
                                             "labels.pt the class indices, or log-probabilities of soft labels"})
    return out


def _statistics(cs: CondensedSet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std to standardise a pixel-space set with: its own (IDC records them), else its dataset's."""
    if cs.meta.mean is not None and cs.meta.std is not None:
        return cs.meta.mean, cs.meta.std
    from yoco.data.datasets import normalization

    try:
        return normalization(cs.meta.dataset)
    except YocoError as exc:
        raise YocoError(f"{cs.source}: DD-Ranking takes standardised images, but the set records no mean/std and "
                        f"{exc}") from None


def _save_pt(tensor: torch.Tensor, path: Path) -> None:
    """``torch.save`` of one plain tensor (what DD-Ranking loads), written atomically."""
    atomic_write(path, lambda p: torch.save(tensor.detach().cpu().clone(), p))


_add("imagefolder", export_imagefolder, "root/<class>/<index>.png, labels.safetensors and condensed.json", True)
_add("hf", export_hf, "a Hugging Face datasets snapshot: data/train-*.parquet (image, label, soft_label), README.md "
     "card and condensed.json", True)
_add("dd-ranking", export_ddranking, "DD-Ranking's images.pt, labels.pt and lr.pt (tensors kept, decoded and "
     "standardised) and condensed.json", False)
