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
from yoco.predict import accuracies
from yoco.provenance import provenance
from yoco.runner import RECIPES, Networks, Prepared, Recipe, prepare, resolve_recipe, train_networks
from yoco.runtime import Runtime, runtime_or_default
from yoco.train import TrainConfig

log = logging.getLogger(__name__)

@dataclass
class EvalConfig:
    """How to evaluate: ``repeat`` fresh networks (seeds ``seed ..``), tested ``test_points`` times each.

    ``model``/``width`` None: the protocol's network for the dataset; ``train`` holds the training recipe, whose
    ``None`` fields (epochs, augmentation) follow the protocol for the dataset and set size. ``recipe="set"``
    applies the evaluation recipe the set's method published with it (``meta.extra["recipe"]``: MTT's learned
    learning rate, ZCA whitening); ``"protocol"`` ignores it, with a warning naming both; ``"yoco"`` evaluates as
    YOCO's test.py did MTT, DSA and KIP sets: the set's recipe ignored (lr 0.01, no ZCA) and its already
    standardised images standardised once more with the dataset's mean/std (YOCO's loader applies its CIFAR
    ``Normalize`` to every set, ``utils/img_loader.py``).
    ``pruned_epochs`` says whose size sets a pruned set's epochs (on ImageNet subsets the only difference):
    ``"source"``, YOCO's way (the source set's, so 1000 for every pruned ImageNet-10 set of IPC 10 or 20), or
    ``"own"``, IDC's table applied to the pruned set's own size.
    """

    model: str | None = None
    width: int | None = None
    repeat: int = protocol.EVAL_REPEATS
    seed: int = 0
    test_points: int = protocol.EVAL_TEST_POINTS
    train: TrainConfig = field(default_factory=TrainConfig)
    recipe: str = "set"
    pruned_epochs: str = protocol.PRUNED_EPOCHS_DEFAULT

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise YocoError(f"recipe must be 'set' (the set's own evaluation recipe), 'protocol' or 'yoco' (YOCO's "
                            f"evaluation of MTT/DSA/KIP sets), got {self.recipe!r}")
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if isinstance(self.test_points, bool) or not isinstance(self.test_points, int) or self.test_points < 1:
            raise YocoError(f"test_points must be a whole number >= 1, got {self.test_points!r}")
        self.networks()  # validates repeat, width and seed

    def networks(self) -> Networks:
        return Networks(self.model, self.width, self.repeat, self.seed, self.train, self.pruned_epochs)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "train": self.train.to_dict()}


def check_compatible(cs: CondensedSet, real: RealDataset) -> None:
    """Refuse before training when the condensed set cannot be tested on ``real``'s test set (another dataset than
    the one it declares, other classes or image shapes)."""
    if _canonical(cs.meta.dataset) != _canonical(real.name):
        raise YocoError(f"{cs.source}: the set was made from {cs.meta.dataset!r} but the test set is {real.name!r}; "
                        f"evaluate it on {cs.meta.dataset}")
    if cs.num_classes != real.num_classes:
        raise YocoError(f"{cs.source}: {cs.num_classes} classes, but {real.name} has {real.num_classes}")
    shape, want = tuple(cs.images.shape[1:]), (real.channels, *real.image_size)
    if shape != want:
        raise YocoError(f"{cs.source}: images are {list(shape)} (C, H, W) but {real.name} test images are {list(want)}")


def _canonical(name: str) -> str:
    """A dataset's registered name (aliases and case folded), or the name itself when it is not registered."""
    from yoco.data.datasets import DATASETS

    try:
        return DATASETS.get(str(name).strip().lower()).name
    except YocoError:
        return str(name).strip().lower()


def evaluate_condensed(cs: CondensedSet, real: RealDataset, cfg: EvalConfig, *,
                       runtime: Runtime | None = None) -> dict[str, Any]:
    """Train ``cfg.repeat`` fresh networks on the decoded ``cs`` and test each on ``real``'s test set.

    Returns a JSON-ready dict: one entry per run (seed, last and best test accuracy, the test curve,
    seconds), mean and std (population, ``np.std``) of last and best, the resolved config, and the sha256 of
    the set's content and of the test set it was measured on. ``runtime``: where and how the networks train
    (:class:`yoco.runtime.Runtime`).
    """
    t_all = time.perf_counter()
    runs, info = _evaluate([cs] * cfg.repeat, real, cfg, runtime_or_default(runtime))
    lasts = np.array([r["last"] for r in runs])
    bests = np.array([r["best"] for r in runs])
    return {
        "source": cs.source,
        "sha256": content_sha256(cs),
        "dataset": real.name,
        "test_sha256": real.digest("test"),
        "decoded_images": info["decoded_images"],
        "images_per_class": info["images_per_class"][0],
        "last_mean": float(lasts.mean()), "last_std": _spread(lasts),
        "best_mean": float(bests.mean()), "best_std": _spread(bests),
        "runs": runs,
        "recipe_notes": info["notes"],
        "config": {**cfg.to_dict(), **info["config"], "condensed_meta": cs.meta.to_dict()},
        "wall_seconds": time.perf_counter() - t_all,
        "digests": DIGESTS,
        "provenance": provenance(info["config"]["device"], cfg.train.precision),
    }


# What each sha256 of a result is the digest of (every result names its inputs by content, once each)
DIGESTS = {
    "sha256": "the condensed set's content (images, labels, soft labels and metadata, less its provenance): the "
              "same set gives the same digest wherever it is stored (yoco.data.condensed.content_sha256)",
    "test_sha256": "the real test set's images and labels, by content (RealDataset.digest('test'))",
}


def _spread(values: np.ndarray) -> float | None:
    """Population std (``np.std``) of several runs' accuracies; None for one run, which has no spread."""
    return float(values.std()) if len(values) > 1 else None


def evaluate_sets(sets: list[CondensedSet], real: RealDataset, cfg: EvalConfig, *, seeds: list[int] | None = None,
                  runtime: Runtime | None = None) -> list[dict[str, Any]]:
    """One network per set (set ``i`` trained with ``seeds[i]``, default ``cfg.seed + i``), all sets of one
    decoded size and evaluation recipe, so that on a GPU they train as one batched computation. Returns one
    result per set, in the layout of :func:`evaluate_condensed` with a single run."""
    if not sets:
        return []
    runs, info = _evaluate(sets, real, dataclasses.replace(cfg, repeat=len(sets)), runtime_or_default(runtime), seeds)
    return [_single(cs, run, info, info["images_per_class"][i], cfg, real)
            for i, (cs, run) in enumerate(zip(sets, runs, strict=True))]


def _single(cs: CondensedSet, run: dict[str, Any], info: dict[str, Any], per_class: list[int], cfg: EvalConfig,
            real: RealDataset) -> dict[str, Any]:
    """One run's result in the layout of :func:`evaluate_condensed`."""
    return {"source": cs.source, "sha256": content_sha256(cs), "dataset": real.name,
            "test_sha256": real.digest("test"), "decoded_images": info["decoded_images"],
            "images_per_class": per_class,
            "last_mean": run["last"], "last_std": None, "best_mean": run["best"], "best_std": None,
            "runs": [run], "recipe_notes": info["notes"],
            "config": {**cfg.to_dict(), "repeat": 1, "seed": run["seed"], **info["config"],
                       "condensed_meta": cs.meta.to_dict()},
            "digests": DIGESTS, "provenance": provenance(info["config"]["device"], cfg.train.precision)}


def riding_evaluation(cs: CondensedSet, real: RealDataset, cfg: EvalConfig, nets: Networks, purpose: str,
                      runtime: Runtime, seeds: list[int]) -> RidingEvaluation | None:
    """The evaluation of ``cs`` with ``cfg`` for ``seeds``, read off another job's runs when that job trains
    exactly the networks the evaluation would: ``nets`` trained on ``cs`` for ``purpose`` (e.g. the dynamics),
    with the same data, model, width and resolved recipe. None when anything differs or no seed is shared.

    Pass the returned object as the job's ``on_epoch`` hook, then read :meth:`RidingEvaluation.results`. A
    ladder's unpruned-source cells are the dynamics networks tested this way (same seeds, same recipe at the
    protocol's settings), which saves training them a second time.
    """
    dev = runtime.device
    check_compatible(cs, real)
    data_e = _prepared(cs, real, cfg, dev)
    data_o = prepare(cs, dev)
    own, theirs = resolve_recipe(data_e, cfg.networks(), "eval", cs, cfg.recipe), resolve_recipe(data_o, nets, purpose)
    same = (own.trains_like(theirs)
            and (data_e.mean, data_e.std, data_e.flip) == (data_o.mean, data_o.std, data_o.flip)
            and torch.equal(data_e.images, data_o.images) and torch.equal(data_e.targets, data_o.targets))
    runs = {nets.seed + r: r for r in range(nets.runs)}
    shared = {s: runs[s] for s in seeds if s in runs}
    if not same or not shared:
        return None
    return RidingEvaluation(cs, real, cfg, dev, data_e, own, shared, nets.runs)


class TestPoints:
    """The test passes of an evaluation: called as the runner's ``on_epoch`` hook, it tests the networks that
    reached one of the protocol's test points on ``real``'s test set and keeps each run's curve.

    ``runs`` networks are tracked (the runner's run indices); ``tested`` (default: all) limits the passes to
    some of them, e.g. the runs of a dynamics record that double as evaluation runs.
    """

    def __init__(self, real: RealDataset, cfg: EvalConfig, device: torch.device, recipe: Recipe, runs: int,
                 tested: list[int] | None = None) -> None:
        test_x = normalize(real.test_float(), real.mean, real.std)
        if recipe.zca_eps is not None:
            test_x = fit_zca(normalize(real.train_float(), real.mean, real.std), eps=recipe.zca_eps)(test_x)
        self.test_x, self.test_y = test_x.to(device), real.test_labels.to(device)
        epochs = recipe.train.epochs
        self.points = sorted({max(1, round(epochs * (i + 1) / cfg.test_points)) - 1 for i in range(cfg.test_points)})
        self.tested = set(range(runs) if tested is None else tested)
        self.curves: list[list[tuple[int, float]]] = [[] for _ in range(runs)]

    def __call__(self, runs: list[int], epoch: int, models: list[torch.nn.Module]) -> None:
        if epoch not in self.points:
            return
        pick = [i for i, r in enumerate(runs) if r in self.tested]
        if pick:
            accs = accuracies([models[i] for i in pick], self.test_x, self.test_y)
            for i, acc in zip(pick, accs, strict=True):
                self.curves[runs[i]].append((epoch + 1, acc))

    def run(self, r: int, seed: int, seconds: float) -> dict[str, Any]:
        """Run ``r``'s result: its seed, last and best test accuracy, its curve and training seconds."""
        c = self.curves[r]
        return {"seed": seed, "last": c[-1][1], "best": max(a for _, a in c), "curve": c, "seconds": seconds}


class RidingEvaluation(TestPoints):
    """Test passes inside another job's training (:func:`riding_evaluation`): ``run_of`` maps each shared seed to
    the job's run index; ``data`` and ``recipe`` are what the evaluation itself would have trained on and with."""

    def __init__(self, cs: CondensedSet, real: RealDataset, cfg: EvalConfig, device: torch.device, data: Prepared,
                 recipe: Recipe, run_of: dict[int, int], n_runs: int) -> None:
        super().__init__(real, cfg, device, recipe, n_runs, tested=list(run_of.values()))
        self.cs, self.real, self.cfg, self.device = cs, real, cfg, device
        self.data, self.recipe, self.run_of = data, recipe, run_of

    def results(self, seconds: float, compile: bool) -> dict[int, dict[str, Any]]:
        """Each shared seed's result in the layout of :func:`evaluate_sets` (``seconds``: per run)."""
        info = _info([self.data], self.recipe, self.device, compile, self.points, self.real)
        return {seed: _single(self.cs, self.run(r, seed, seconds), info, info["images_per_class"][0], self.cfg,
                              self.real) for seed, r in self.run_of.items()}


def _evaluate(sets: list[CondensedSet], real: RealDataset, cfg: EvalConfig, runtime: Runtime,
              seeds: list[int] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train one network per entry of ``sets`` (seeds ``cfg.seed ..`` or ``seeds``) and test each."""
    seeds = list(seeds) if seeds is not None else [cfg.seed + i for i in range(len(sets))]
    for cs in {id(c): c for c in sets}.values():
        check_compatible(cs, real)
    recipes = {json.dumps(cs.meta.extra.get("recipe", {}), sort_keys=True, default=str) for cs in sets}
    if len(recipes) != 1:
        raise YocoError("sets evaluated together must share their evaluation recipe")
    dev = runtime.device
    prepared = {id(cs): _prepared(cs, real, cfg, dev) for cs in sets}
    datas = [prepared[id(cs)] for cs in sets]
    recipe = resolve_recipe(datas[0], cfg.networks(), "eval", sets[0], cfg.recipe)
    tests = TestPoints(real, cfg, dev, recipe, len(sets))
    trained = train_networks(datas, recipe, seeds, on_epoch=tests, desc="eval", runtime=runtime)
    runs = [tests.run(r, seed, sec) for r, (seed, sec) in enumerate(zip(seeds, trained.seconds, strict=True))]
    for r, run in enumerate(runs):
        log.info("run %d/%d: last %.2f%%, best %.2f%%", r + 1, len(runs), 100 * run["last"], 100 * run["best"])
    info = _info(datas, recipe, dev, runtime.compile, tests.points, real)
    return runs, info


def _prepared(cs: CondensedSet, real: RealDataset, cfg: EvalConfig, device: torch.device) -> Prepared:
    """``cs`` decoded and standardised as an evaluation trains on it: with the test set's statistics and flips, and
    (``recipe="yoco"``) a standardised set standardised once more, as YOCO's loader does."""
    return prepare(cs, device, mean=real.mean, std=real.std, flip=real.flip, renormalize=cfg.recipe == "yoco")


def _info(datas: list[Prepared], recipe: Recipe, device: torch.device, compile: bool, points: list[int],
          real: RealDataset) -> dict[str, Any]:
    """What every run of one evaluation shares in its result: notes, sizes, and the resolved config."""
    return {"notes": list(recipe.notes), "decoded_images": len(datas[0].labels),
            "images_per_class": [torch.bincount(d.labels.cpu(), minlength=real.num_classes).tolist() for d in datas],
            "config": {"model": recipe.model, "train": recipe.train.to_dict(), "device": str(device),
                       "compiled": compile, "test_points": [p + 1 for p in points]}}
