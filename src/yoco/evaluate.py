"""Evaluate a condensed set the way the field does: train a fresh network on it, test on the real test set.

IDC's protocol (numbers in :mod:`yoco.protocol`): ConvNet-3 (ImageNet subsets: ResNet-10-AP), batch 64, SGD lr
0.01 / momentum 0.9 / wd 5e-4, lr x0.2 at 2/3 and 5/6, DSA ``color_crop_flip_scale_rotate`` + CutMix (p 0.5;
ImageNet subsets: the ImageNet augmentation and CutMix on every batch), tested 4 times. Several repeats with
different seeds, reported as mean ± std of the last test accuracy (the honest headline) and of the best test accuracy seen at the test points (what the reference
code also logs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from yoco import protocol
from yoco.data.condensed import CondensedSet, content_sha256, normalize
from yoco.data.datasets import RealDataset
from yoco.data.zca import fit_zca
from yoco.errors import YocoError
from yoco.runner import Networks, model_name, prepare, recipe, train_networks
from yoco.train import TrainConfig, accuracies, resolve_device

log = logging.getLogger(__name__)

@dataclass
class EvalConfig:
    """How to evaluate: ``repeat`` fresh networks (seeds ``seed ..``), tested ``test_points`` times each.

    ``model``/``width`` None: the protocol's network for the dataset; ``train`` holds the training recipe, whose
    ``None`` fields (epochs, augmentation) follow the protocol for the dataset and set size. ``recipe="set"``
    applies the evaluation recipe the set's method published with it (``meta.extra["recipe"]``: MTT's learned
    learning rate, ZCA whitening); ``"protocol"`` ignores it, with a warning naming both.
    """

    model: str | None = None
    width: int | None = None
    repeat: int = protocol.EVAL_REPEATS
    seed: int = 0
    test_points: int = protocol.EVAL_TEST_POINTS
    train: TrainConfig = field(default_factory=TrainConfig)
    recipe: str = "set"

    def __post_init__(self) -> None:
        if self.recipe not in ("set", "protocol"):
            raise YocoError(f"recipe must be 'set' (the set's own evaluation recipe) or 'protocol', got {self.recipe!r}")
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if isinstance(self.test_points, bool) or not isinstance(self.test_points, int) or self.test_points < 1:
            raise YocoError(f"test_points must be a whole number >= 1, got {self.test_points!r}")
        self.networks()  # validates repeat, width and seed

    def networks(self) -> Networks:
        return Networks(self.model, self.width, self.repeat, self.seed, self.train)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_compatible(cs: CondensedSet, real: RealDataset) -> None:
    """Refuse before training when the condensed set cannot be tested on ``real``'s test set."""
    if cs.num_classes != real.num_classes:
        raise YocoError(f"{cs.source}: {cs.num_classes} classes, but {real.name} has {real.num_classes}")
    shape, want = tuple(cs.images.shape[1:]), (real.channels, *real.image_size)
    if shape != want:
        raise YocoError(f"{cs.source}: images are {list(shape)} (C, H, W) but {real.name} test images are {list(want)}")


def evaluate_condensed(cs: CondensedSet, real: RealDataset, cfg: EvalConfig, *, device: str | torch.device = "auto",
                       progress: bool = True, batched: bool | None = None, compile: bool = False) -> dict[str, Any]:
    """Train ``cfg.repeat`` fresh networks on the decoded ``cs`` and test each on ``real``'s test set.

    Returns a JSON-ready dict: one entry per run (seed, last and best test accuracy, the test curve,
    seconds), mean and std (population, ``np.std``) of last and best, the resolved config, and the sha256 of
    the set's content. ``batched`` and ``compile`` as in :func:`yoco.runner.train_networks`.
    """
    t_all = time.perf_counter()
    runs, info = _evaluate([cs] * cfg.repeat, real, cfg, device, progress, batched, compile=compile)
    lasts = np.array([r["last"] for r in runs])
    bests = np.array([r["best"] for r in runs])
    return {
        "source": cs.source,
        "sha256": content_sha256(cs),
        "dataset": real.name,
        "decoded_images": info["decoded_images"],
        "images_per_class": info["images_per_class"][0],
        "last_mean": float(lasts.mean()), "last_std": float(lasts.std()),
        "best_mean": float(bests.mean()), "best_std": float(bests.std()),
        "runs": runs,
        "recipe_notes": info["notes"],
        "config": {**cfg.to_dict(), **info["config"], "condensed_meta": cs.meta.to_dict()},
        "wall_seconds": time.perf_counter() - t_all,
    }


def evaluate_sets(sets: list[CondensedSet], real: RealDataset, cfg: EvalConfig, *,
                  device: str | torch.device = "auto", progress: bool = True, batched: bool | None = None,
                  seeds: list[int] | None = None, compile: bool = False) -> list[dict[str, Any]]:
    """One network per set (set ``i`` trained with ``seeds[i]``, default ``cfg.seed + i``), all sets of one
    decoded size and evaluation recipe, so that on a GPU they train as one batched computation. Returns one
    result per set, in the layout of :func:`evaluate_condensed` with a single run."""
    if not sets:
        return []
    runs, info = _evaluate(sets, real, dataclasses.replace(cfg, repeat=len(sets)), device, progress, batched,
                           seeds, compile)
    out = []
    for i, (cs, run) in enumerate(zip(sets, runs, strict=True)):
        out.append({"source": cs.source, "sha256": content_sha256(cs), "dataset": real.name,
                    "decoded_images": info["decoded_images"], "images_per_class": info["images_per_class"][i],
                    "last_mean": run["last"], "last_std": 0.0, "best_mean": run["best"], "best_std": 0.0,
                    "runs": [run], "recipe_notes": info["notes"],
                    "config": {**cfg.to_dict(), "repeat": 1, "seed": run["seed"], **info["config"],
                               "condensed_meta": cs.meta.to_dict()}})
    return out


def _evaluate(sets: list[CondensedSet], real: RealDataset, cfg: EvalConfig, device: str | torch.device,
              progress: bool, batched: bool | None, seeds: list[int] | None = None, compile: bool = False
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train one network per entry of ``sets`` (seeds ``cfg.seed ..`` or ``seeds``) and test each."""
    seeds = list(seeds) if seeds is not None else [cfg.seed + i for i in range(len(sets))]
    for cs in {id(c): c for c in sets}.values():
        check_compatible(cs, real)
    recipes = {json.dumps(cs.meta.extra.get("recipe", {}), sort_keys=True, default=str) for cs in sets}
    if len(recipes) != 1:
        raise YocoError("sets evaluated together must share their evaluation recipe")
    dev = resolve_device(device)
    prepared = {id(cs): prepare(cs, dev, mean=real.mean, std=real.std, flip=real.flip) for cs in sets}
    datas = [prepared[id(cs)] for cs in sets]
    nets, notes = _apply_set_recipe(sets[0], cfg)
    epochs = recipe(datas[0], nets, "eval").epochs
    test_x = normalize(real.test_float(), real.mean, real.std)
    zca_eps = sets[0].meta.extra.get("recipe", {}).get("zca", {}).get("eps") if cfg.recipe == "set" else None
    if zca_eps is not None:
        test_x = fit_zca(normalize(real.train_float(), real.mean, real.std), eps=zca_eps)(test_x)
    test_x = test_x.to(dev)
    test_y = real.test_labels.to(dev)
    points = sorted({max(1, round(epochs * (i + 1) / cfg.test_points)) - 1 for i in range(cfg.test_points)})
    curves: list[list[tuple[int, float]]] = [[] for _ in sets]

    def test_point(runs: list[int], epoch: int, models: list[torch.nn.Module]) -> None:
        if epoch in points:
            for r, acc in zip(runs, accuracies(models, test_x, test_y), strict=True):
                curves[r].append((epoch + 1, acc))

    trained = train_networks(datas, nets, "eval", on_epoch=test_point, progress=progress, desc="eval",
                             batched=batched, seeds=seeds, compile=compile)
    runs = [{"seed": seed, "last": c[-1][1], "best": max(a for _, a in c), "curve": c, "seconds": sec}
            for seed, c, sec in zip(seeds, curves, trained.seconds, strict=True)]
    for r, run in enumerate(runs):
        log.info("run %d/%d: last %.2f%%, best %.2f%%", r + 1, len(runs), 100 * run["last"], 100 * run["best"])
    info = {"notes": notes, "decoded_images": len(datas[0].labels),
            "images_per_class": [torch.bincount(d.labels.cpu(), minlength=real.num_classes).tolist() for d in datas],
            "config": {"model": model_name(nets, real.name), "train": trained.config.to_dict(), "device": str(dev),
                       "compiled": compile, "test_points": [p + 1 for p in points]}}
    return runs, info


def _apply_set_recipe(cs: CondensedSet, cfg: EvalConfig) -> tuple[Networks, list[str]]:
    """The networks to train, with the set's published evaluation recipe applied (or, with ``recipe="protocol"``,
    ignored with a warning); and a note for each choice, logged and kept in the result."""
    nets, notes = cfg.networks(), []
    recipe_ = cs.meta.extra.get("recipe", {}) if isinstance(cs.meta.extra.get("recipe"), dict) else {}
    if not recipe_:
        return nets, notes
    described = ", ".join(f"learning rate {recipe_['lr']:g} ({recipe_.get('lr_file', 'learned')})" if k == "lr"
                          else "ZCA whitening" for k in recipe_ if k in ("lr", "zca"))
    if cfg.recipe == "protocol":
        note = (f"{cs.source}: the set's own evaluation recipe ({described}) is ignored; evaluating with the "
                f"protocol's (learning rate {nets.train.lr:g}, no ZCA)")
        log.warning(note)
        return nets, [note]
    if "lr" in recipe_:
        nets = dataclasses.replace(nets, train=dataclasses.replace(nets.train, lr=float(recipe_["lr"])))
    if "zca" in recipe_:
        notes.append("the test set is ZCA-whitened (fitted on the standardised real training set), as the set's")
    notes.insert(0, f"evaluating with the set's own recipe: {described}")
    for n in notes:
        log.info("%s", n)
    return nets, notes
