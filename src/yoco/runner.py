"""The one runner of fresh networks: train N networks from scratch on a decoded condensed set.

Evaluation (test accuracy at a few points) and training dynamics (every image's outputs every epoch) are the
same job with different hooks: decode the set, standardise it, build each network under its own seed, train it
with the shared loop of :mod:`yoco.train`. This module is the only place where that happens.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from yoco import protocol
from yoco.data.condensed import CondensedSet, decode, normalize
from yoco.errors import YocoError
from yoco.models import create_model
from yoco.models.stacked import batchable
from yoco.runtime import Runtime, resolve_device, runtime_or_default, seeded
from yoco.train import Batch, TrainConfig, train, train_batched

log = logging.getLogger(__name__)
BatchHook = Callable[[int, Batch], None]  # (run index, batch)
EpochHook = Callable[[list[int], int, list[nn.Module]], None]  # (run indices, epoch, their models)


@dataclass
class Networks:
    """Which networks to train and how: the model (None: the protocol's for the dataset), its width (None: the
    model's), how many independent runs, the first seed (run ``r`` uses ``seed + r``), the training recipe, and
    whose size sets a pruned set's evaluation epochs (``pruned_epochs``: :data:`yoco.protocol.PRUNED_EPOCHS`)."""

    model: str | None = None
    width: int | None = None
    runs: int = 1
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    pruned_epochs: str = protocol.PRUNED_EPOCHS_DEFAULT

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        for name in ("runs", "width"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise YocoError(f"{name} must be a whole number >= 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise YocoError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if self.pruned_epochs not in protocol.PRUNED_EPOCHS:
            raise YocoError(f"pruned_epochs must be one of {', '.join(protocol.PRUNED_EPOCHS)}, "
                            f"got {self.pruned_epochs!r}")


@dataclass
class Prepared:
    """A decoded set on its device, standardised, with what the training recipe needs to know about it
    (``source_images_per_class``: a pruned set's source's decoded images per class, else None)."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool
    soft: torch.Tensor | None = None
    source_images_per_class: int | None = None

    @property
    def targets(self) -> torch.Tensor:
        """What the networks learn: the soft labels when the set has them, else the class indices."""
        return self.soft if self.soft is not None else self.labels

    @property
    def images_per_class(self) -> int:
        return math.ceil(len(self.labels) / self.num_classes)


def prepare(cs: CondensedSet, device: torch.device, *, mean: tuple[float, ...] | None = None,
            std: tuple[float, ...] | None = None, flip: bool | None = None, renormalize: bool = False) -> Prepared:
    """Decode ``cs`` and standardise it with ``mean``/``std`` (default: its dataset's, see :func:`input_stats`).

    ``renormalize`` standardises a set stored standardised once more, its values read as pixels: what YOCO's loader
    does to MTT, DSA and KIP sets (an evaluation option, ``EvalConfig(recipe="yoco")``)."""
    dec = decode(cs)
    d_mean, d_std, d_flip = input_stats(dec)
    mean, std = tuple(mean or d_mean), tuple(std or d_std)
    if len(mean) != dec.images.shape[1]:
        raise YocoError(f"{cs.source}: images have {dec.images.shape[1]} channel(s) but the normalisation of "
                        f"{cs.meta.dataset!r} has {len(mean)}; is the set from another dataset?")
    x = (normalize(dec.images, mean, std) if renormalize and dec.meta.normalized
         else dec.normalized_images(mean, std)).to(device)
    soft = dec.soft.to(device) if dec.soft is not None else None
    return Prepared(x, dec.labels.to(device), dec.num_classes, cs.meta.dataset, mean, std,
                    d_flip if flip is None else flip, soft, source_images_per_class(cs))


def source_images_per_class(cs: CondensedSet) -> int | None:
    """A pruned set's source's decoded images per class (its stored IPC times its factor squared, from the
    metadata ``prune`` writes), or None for a set that was not pruned."""
    ipc = cs.meta.extra.get("pruned_from_ipc")
    factor = cs.meta.extra.get("decoded_from_factor", 1)
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
    return ipc * factor * factor if ok(ipc) and ok(factor) else None


def input_stats(cs: CondensedSet) -> tuple[tuple[float, ...], tuple[float, ...], bool]:
    """Normalisation (mean, std) and whether flips are allowed for networks trained on ``cs``.

    The source dataset's constants when it is known, else the set's own metadata, else its pixel statistics.
    """
    from yoco.data.datasets import dataset_flip, dataset_names, normalization

    if cs.meta.dataset in dataset_names() and cs.meta.dataset != "imagefolder":
        mean, std = normalization(cs.meta.dataset)
        return tuple(mean), tuple(std), dataset_flip(cs.meta.dataset)
    if cs.meta.mean is not None and cs.meta.std is not None:
        return tuple(cs.meta.mean), tuple(cs.meta.std), True
    px = cs.pixels()
    return tuple(px.mean((0, 2, 3)).tolist()), tuple(px.std((0, 2, 3)).clamp_min(1e-3).tolist()), True


RECIPES = ("set", "protocol", "yoco")  # whose evaluation recipe a set is evaluated with (EvalConfig.recipe)


@dataclass(frozen=True)
class Recipe:
    """How one job's networks train, every choice resolved by :func:`resolve_recipe` and read-only from there on:
    the network, its width, the training config with no "protocol" field left open, the ZCA whitening of the
    test set (the set's published recipe; None: none), and a note for each choice a reader must know of."""

    model: str
    width: int | None
    train: TrainConfig
    zca_eps: float | None = None
    notes: tuple[str, ...] = ()

    def trains_like(self, other: Recipe) -> bool:
        """Whether networks trained under ``other`` are the ones this recipe trains (seeds aside)."""
        return (self.model, self.width) == (other.model, other.width) and dataclasses.replace(
            self.train, seed=0) == dataclasses.replace(other.train, seed=0)


def resolve_recipe(data: Prepared, nets: Networks, purpose: str, cs: CondensedSet | None = None,
                   mode: str = "set") -> Recipe:
    """The one resolver of a training recipe, called once per job; in order:

    1. the protocol, for every field left None: the network for the dataset, the epochs for the set's size (a
       pruned set's: its source's, as YOCO; :data:`yoco.protocol.PRUNED_EPOCHS`) or the dynamics' epochs, the
       augmentation for ``purpose`` (``eval`` or ``dynamics``), flips and the standardisation of ``data``;
    2. the preset and the command line: whatever ``nets`` sets (a ladder preset is merged into its config first);
    3. the set's published recipe (``cs.meta.extra["recipe"]``: MTT's learned lr, ZCA), by ``mode``: ``set``
       applies it and says so, ``protocol`` ignores it with a warning, ``yoco`` evaluates as YOCO's test.py did
       (lr 0.01, no ZCA; a standardised set standardised again, which :func:`prepare` does). No command-line
       option sets what a set's recipe sets, so it overrides nothing that was given.
    """
    if mode not in RECIPES:
        raise YocoError(f"recipe must be one of {', '.join(RECIPES)}, got {mode!r}")
    epochs = protocol.set_eval_epochs(data.dataset, data.images_per_class, data.num_classes,
                                      data.source_images_per_class, nets.pruned_epochs)
    if purpose == "dynamics":
        epochs = protocol.DYNAMICS_EPOCHS
    train = nets.train.resolve(data.dataset, purpose, epochs=epochs, mean=data.mean, std=data.std, flip=data.flip)
    published = cs.meta.extra.get("recipe") if cs is not None else None
    lr, zca, notes = _published(cs, published if isinstance(published, dict) else {}, mode, train.lr)
    return Recipe(nets.model or protocol.eval_model(data.dataset), nets.width, dataclasses.replace(train, lr=lr),
                  zca, tuple(notes))


def _published(cs: CondensedSet | None, published: dict[str, Any], mode: str, lr: float
               ) -> tuple[float, float | None, list[str]]:
    """The learning rate, ZCA eps and notes that a set's published recipe gives under ``mode`` (step 3 of
    :func:`resolve_recipe`); each note is logged."""
    notes: list[str] = []
    if cs is not None and mode == "yoco" and cs.meta.normalized:
        notes.append(f"{cs.source}: evaluated as YOCO's test.py did: its standardised images standardised again "
                     f"with the dataset's mean/std, learning rate {lr:g}, no ZCA")
        log.warning(notes[-1])
        return lr, None, notes
    if cs is None or not published or mode == "yoco":
        return lr, None, notes
    described = ", ".join(f"learning rate {published['lr']:g} ({published.get('lr_file', 'learned')})" if k == "lr"
                          else "ZCA whitening" for k in published if k in ("lr", "zca"))
    if mode != "set":
        notes.append(f"{cs.source}: the set's own evaluation recipe ({described}) is ignored; evaluating with the "
                     f"protocol's (learning rate {lr:g}, no ZCA)")
        log.warning(notes[-1])
        return lr, None, notes
    zca = published["zca"].get("eps") if isinstance(published.get("zca"), dict) else None
    if "zca" in published:
        notes.append("the test set is ZCA-whitened (fitted on the standardised real training set), as the set's")
    notes.insert(0, f"evaluating with the set's own recipe: {described}")
    for n in notes:
        log.info("%s", n)
    return (float(published["lr"]) if "lr" in published else lr), zca, notes


@dataclass
class Trained:
    """What :func:`train_networks` returns: the networks and each run's training seconds."""

    models: list[nn.Module]
    seconds: list[float]


def train_networks(data: Prepared | list[Prepared], recipe: Recipe, seeds: list[int], *,
                   on_batch: BatchHook | None = None, on_epoch: EpochHook | None = None, desc: str = "train",
                   runtime: Runtime | None = None) -> Trained:
    """Train one fresh network per seed (run ``r`` built and trained with ``seeds[r]``) under ``recipe`` (resolved
    by :func:`resolve_recipe`).

    ``data`` is one prepared set that every run trains on, or one set per run (sets of one size and dataset,
    e.g. the ladder's pruned sets of one IPC). Hooks receive the run index first. The runtime's ``batched``
    trains the runs as one batched computation (:func:`yoco.train.train_batched`: the same numbers up to float
    rounding; by default on a GPU, where one small network leaves the card idle, and not on a CPU, where the
    batched kernels measured slower); its ``compile`` runs the training steps through ``torch.compile``
    (:func:`yoco.runtime.compiled`). The networks train where ``data`` lies.
    ``on_epoch(runs, epoch, models)`` gets, after each epoch, the runs that reached it: all of them at once when
    batched (so one test pass serves them, :func:`yoco.predict.predict_many`), one at a time otherwise.
    """
    runs = len(seeds)
    sets = data if isinstance(data, list) else [data] * runs
    if len(sets) != runs or not runs:
        raise YocoError(f"{len(sets)} prepared sets for {runs} seeds")
    first = sets[0]
    if any(d.images.shape != first.images.shape or d.dataset != first.dataset for d in sets):
        raise YocoError("networks trained together need sets of one size and dataset")
    cfg, name = recipe.train, recipe.model
    kw: dict[str, Any] = {"width": recipe.width} if recipe.width is not None else {}
    c, h, w = first.images.shape[1:]
    models = []
    for seed in seeds:
        with seeded(seed):
            models.append(create_model(name, first.num_classes, c, (h, w), **kw).to(first.images.device))
    cfgs = [dataclasses.replace(cfg, seed=seed) for seed in seeds]
    rt = runtime_or_default(runtime)
    progress, compile = rt.progress, rt.compile
    batched = rt.batched if rt.batched is not None else first.images.device.type == "cuda"
    if batched and runs > 1 and all(batchable(m) for m in models):
        t0 = time.perf_counter()
        every = (lambda e, ms: on_epoch(list(range(runs)), e, ms)) if on_epoch is not None else None
        train_batched(models, [d.images for d in sets], [d.targets for d in sets], cfgs, on_batch=on_batch,
                      on_epoch=every, progress=progress, desc=desc, compile=compile)
        return Trained(models, [(time.perf_counter() - t0) / runs] * runs)
    seconds = []
    for r, (model, d) in enumerate(zip(models, sets, strict=True)):
        t0 = time.perf_counter()
        hooks: dict[str, Any] = {}
        if on_batch is not None:
            hooks["on_batch"] = lambda b, r=r: on_batch(r, b)
        if on_epoch is not None:
            hooks["on_epoch"] = lambda e, m, r=r: on_epoch([r], e, [m])
        train(model, d.images, d.targets, cfgs[r], progress=progress, desc=f"{desc} {r + 1}/{runs}",
              compile=compile, **hooks)
        seconds.append(time.perf_counter() - t0)
    return Trained(models, seconds)


__all__ = ["RECIPES", "Networks", "Prepared", "Recipe", "Trained", "input_stats", "prepare", "resolve_device",
           "resolve_recipe", "train_networks"]
