"""Training dynamics: per-epoch, per-sample outputs of networks trained on a decoded condensed set.

The :class:`Dynamics` record is what every importance score reads. It is stored as one safetensors file
(float16 log-probabilities, no pickle): a 1000-epoch x 400-image x 10-class run is about 8 MB.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from yoco import protocol
from yoco.augment import ImageNetAug, to_device
from yoco.data.condensed import CondensedSet, content_sha256
from yoco.errors import YocoError
from yoco.files import read_tensors, sha256_of, write_tensors
from yoco.predict import predict, predict_many
from yoco.provenance import provenance
from yoco.runner import EpochHook, Networks, prepare, resolve_recipe, train_networks
from yoco.runtime import Runtime, runtime_or_default
from yoco.train import Batch, TrainConfig

DEVICE_RECORD_BYTES = 2 << 30  # a dynamics record up to 2 GiB stays on the GPU while it is written
MAX_RECORD_BYTES = 16 << 30  # a larger record (runs x epochs x images x classes, float16) is refused before training


@dataclass
class Dynamics:
    """Outputs recorded while training ``runs`` networks on the same ``N`` decoded images.

    Attributes:
        log_probs: float16 ``[runs, epochs, N, C]`` log-softmax of every image at every epoch.
        train_acc: float32 ``[runs, epochs]`` training accuracy of each epoch (fraction in [0, 1]).
        labels: int64 ``[N]``.
        final_log_probs: float32 ``[runs, N, C]`` of the final model on the un-augmented images (ImageNet
            subsets: on one seeded ImageNet-augmented view of each image, as YOCO's score script reads them).
        embeddings: float32 ``[runs, N, D]`` penultimate features of the final model (ImageNet subsets: on
            another augmented view).
        config: how the dynamics were produced (serialised into the file).
        targets: float32 ``[N, C]`` soft labels the networks learned, for sets that have them (else None);
            ``labels`` are then their arg-max classes.
    """

    log_probs: torch.Tensor
    train_acc: torch.Tensor
    labels: torch.Tensor
    final_log_probs: torch.Tensor
    embeddings: torch.Tensor
    config: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    targets: torch.Tensor | None = None

    def __post_init__(self) -> None:
        """Check that every tensor is a tensor of the documented rank, shape and kind of dtype."""
        for name in _TENSORS:
            if not isinstance(getattr(self, name), torch.Tensor):
                raise YocoError(f"{self.source}: {name} must be a tensor, got {type(getattr(self, name)).__name__}")
        lp = self.log_probs
        if lp.dim() != 4 or 0 in lp.shape:
            raise YocoError(f"{self.source}: log_probs must be 4-D [runs, epochs, N, C] with no empty axis, "
                            f"got shape {list(lp.shape)}")
        r, e, n, c = lp.shape
        expect = {
            "train_acc": (self.train_acc, (r, e)),
            "labels": (self.labels, (n,)),
            "final_log_probs": (self.final_log_probs, (r, n, c)),
        }
        for name, (t, shape) in expect.items():
            if tuple(t.shape) != shape:
                raise YocoError(f"{self.source}: {name} has shape {list(t.shape)}, expected {list(shape)}")
        emb = self.embeddings
        if emb.dim() != 3 or tuple(emb.shape[:2]) != (r, n) or emb.shape[2] == 0:
            raise YocoError(f"{self.source}: embeddings must be [runs={r}, N={n}, D >= 1], got {list(emb.shape)}")
        for name in ("log_probs", "train_acc", "final_log_probs", "embeddings"):
            t = getattr(self, name)
            if not t.is_floating_point():
                raise YocoError(f"{self.source}: {name} must be floating-point, got {t.dtype}")
        if self.labels.is_floating_point() or self.labels.is_complex() or self.labels.dtype == torch.bool:
            raise YocoError(f"{self.source}: labels must be integer class indices, got {self.labels.dtype}")
        lo, hi = int(self.labels.min()), int(self.labels.max())
        if lo < 0 or hi >= c:
            raise YocoError(f"{self.source}: labels span {lo}..{hi}, expected 0..{c - 1} (log_probs has {c} classes)")
        if self.targets is not None:
            q = self.targets
            if not isinstance(q, torch.Tensor) or q.shape != (n, c) or not q.is_floating_point():
                raise YocoError(f"{self.source}: targets must be float [N={n}, C={c}] label distributions")
            if not torch.isfinite(q).all() or (q < 0).any() or not torch.allclose(q.sum(1), torch.ones(n), atol=1e-3):
                raise YocoError(f"{self.source}: targets must be probability distributions")

    @property
    def runs(self) -> int:
        return int(self.log_probs.shape[0])

    @property
    def epochs(self) -> int:
        return int(self.log_probs.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.log_probs.shape[2])

    @property
    def num_classes(self) -> int:
        return int(self.log_probs.shape[3])

    def digest(self) -> str:
        """sha256 of the record's contents (every tensor, in float16 for the outputs as saved, and the targets),
        so a table of scores can tell the dynamics it was computed from from others recorded under the same settings."""
        parts: list[str | torch.Tensor] = []
        for name in _TENSORS:
            t = getattr(self, name)
            t = t.to(torch.float16) if name == "log_probs" else t
            parts += [f"{name}{list(t.shape)}{t.dtype}", t]
        return sha256_of(parts + ([] if self.targets is None else [self.targets]))

    def run(self, index: int) -> Dynamics:
        """The record of run ``index`` alone (views, no copy): what one of YOCO's independent reproductions
        (``reproduce_1..3``) computes its scores from."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.runs:
            raise YocoError(f"{self.source}: run {index!r} asked for, the dynamics hold runs 0..{self.runs - 1}")
        one = slice(index, index + 1)
        config = {**self.config, "run": index}
        return Dynamics(self.log_probs[one], self.train_acc[one], self.labels, self.final_log_probs[one],
                        self.embeddings[one], config, f"{self.source}[run {index}]", self.targets)


_TENSORS = ("log_probs", "train_acc", "labels", "final_log_probs", "embeddings")


def save_dynamics(dyn: Dynamics, path: str | Path) -> Path:
    """Write ``dyn`` as one safetensors file (atomically), the config in its header."""
    tensors = {name: getattr(dyn, name) for name in _TENSORS}
    tensors["log_probs"] = tensors["log_probs"].to(torch.float16)
    if dyn.targets is not None:
        tensors["targets"] = dyn.targets
    return write_tensors(path, tensors, {"yoco_dynamics": "1", "config": json.dumps(dyn.config)})


def load_dynamics(path: str | Path) -> Dynamics:
    """Read a file written by :func:`save_dynamics`.

    Every problem is a :class:`YocoError` naming the file: a config that is not a JSON object, a tensor of the
    wrong rank, shape or dtype, labels outside the classes, or NaN where values must be finite.
    """
    path = Path(path)
    header, tensors = read_tensors(path, "dynamics file")
    missing = [k for k in _TENSORS if k not in tensors]
    if missing or "yoco_dynamics" not in header:
        raise YocoError(f"{path}: not a yoco dynamics file (missing {missing or 'header'})")
    config = _parse_config(header.get("config", "{}"), path)
    dyn = Dynamics(**{k: tensors[k] for k in _TENSORS}, config=config, source=str(path),
                   targets=tensors.get("targets"))
    for name in ("log_probs", "final_log_probs"):  # -inf is a probability of zero; NaN and +inf are corrupt
        if _any(getattr(dyn, name), lambda t: torch.isnan(t) | torch.isposinf(t)):
            raise YocoError(f"{path}: {name} holds NaN or +inf values (a log-probability is finite or -inf); "
                            "the recorded training diverged or the file is corrupt")
    for name in ("train_acc", "embeddings"):
        if _any(getattr(dyn, name), lambda t: ~torch.isfinite(t)):
            raise YocoError(f"{path}: {name} holds NaN or infinite values")
    dyn.labels = dyn.labels.to(torch.int64)
    return dyn


def _parse_config(text: str, path: Path) -> dict[str, Any]:
    """The header's config: a JSON object, or a one-line YocoError naming the file."""
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise YocoError(f"{path}: the config in the header is not valid JSON ({detail})") from None
    if not isinstance(config, dict):
        raise YocoError(f"{path}: the config in the header must be a JSON object, found {type(config).__name__}")
    return config


def _any(t: torch.Tensor, bad: Callable[[torch.Tensor], torch.Tensor], chunk: int = 1 << 24) -> bool:
    """Whether ``bad`` (elementwise) holds anywhere in ``t``, in chunks so a large tensor needs no big mask."""
    flat = t.reshape(-1)
    return any(bool(bad(part).any()) for part in flat.split(chunk))


@dataclass
class DynamicsConfig:
    """YOCO's dynamics protocol: 3 runs x 1000 epochs, batch 64, SGD 0.01, DSA + CutMix, the evaluation network.

    ``model``/``width`` None: the protocol's evaluation network for the set's dataset (ConvNet-3; ResNet-AP-10
    on ImageNet subsets, as YOCO records them); ``train`` holds the training recipe, whose ``None`` fields follow
    the dynamics recipe of :mod:`yoco.protocol` (epochs 1000).

    ``record="train"`` stores the outputs of the training forward pass (augmented, possibly mixed inputs:
    what the reference code records); ``record="clean"`` adds one no-augmentation pass per epoch instead.
    """

    model: str | None = None
    width: int | None = None
    runs: int = protocol.DYNAMICS_RUNS
    seed: int = 0
    record: str = "train"
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        if self.record not in ("train", "clean"):
            raise YocoError(f"unknown record mode {self.record!r}; choose train or clean")
        self.networks()  # validates runs, width and seed

    @property
    def epochs(self) -> int:
        """Training epochs of each run (the protocol's 1000 unless ``train.epochs`` says otherwise)."""
        return self.train.epochs if self.train.epochs is not None else protocol.DYNAMICS_EPOCHS

    def networks(self) -> Networks:
        return Networks(self.model, self.width, self.runs, self.seed, self.train)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "train": self.train.to_dict()}


def record_dynamics(cs: CondensedSet, cfg: DynamicsConfig, runtime: Runtime | None = None,
                    on_epoch: EpochHook | None = None) -> Dynamics:
    """Train ``cfg.runs`` fresh networks on the decoded ``cs`` and record every image's log-softmax each epoch.
    ``runtime``: where and how they train (:class:`yoco.runtime.Runtime`; by default the runs are batched on a
    GPU only).
    ``on_epoch`` is called after the recording's own work each epoch, e.g. to test the networks
    (:func:`yoco.evaluate.riding_evaluation`); it must not change them."""
    rt = runtime_or_default(runtime)
    data = prepare(cs, rt.device)
    nets = cfg.networks()
    x, n, c = data.images, len(data.labels), data.num_classes
    if cfg.runs * cfg.epochs * n * c * 2 > MAX_RECORD_BYTES:
        raise YocoError(f"{cs.source}: {cfg.runs} runs x {cfg.epochs} epochs x {n} images x {c} classes of outputs "
                        f"need {cfg.runs * cfg.epochs * n * c * 2 / 2**30:.3g} GiB, more than the "
                        f"{MAX_RECORD_BYTES / 2**30:g} GiB yoco allows for a dynamics record")
    # On a GPU the record stays there while it fits, so no training step waits to copy its outputs to the host.
    fits = x.device.type == "cuda" and cfg.runs * cfg.epochs * n * c * 2 <= DEVICE_RECORD_BYTES
    at = x.device if fits else torch.device("cpu")
    log_probs = torch.empty(cfg.runs, cfg.epochs, n, c, dtype=torch.float16, device=at)

    def on_batch(run: int, b: Batch) -> None:
        log_probs[run, b.epoch, to_device(b.indices, at)] = F.log_softmax(b.logits.float(), 1).to(at, torch.float16)

    def epoch_end(runs: list[int], epoch: int, models: list[torch.nn.Module]) -> None:
        if cfg.record == "clean":
            log_probs[runs, epoch] = F.log_softmax(predict_many(models, x), -1).to(at, torch.float16)
        if on_epoch is not None:
            on_epoch(runs, epoch, models)

    hooks: dict[str, Any] = {"on_batch": on_batch} if cfg.record == "train" else {}
    if cfg.record == "clean" or on_epoch is not None:
        hooks["on_epoch"] = epoch_end
    recipe = resolve_recipe(data, nets, "dynamics")
    seeds = [nets.seed + r for r in range(cfg.runs)]
    trained = train_networks(data, recipe, seeds, desc="dynamics", runtime=rt, **hooks)
    log_probs = log_probs.cpu()
    if protocol.final_pass_augmented(data.dataset):
        finals, embeds = [], []
        for m, seed in zip(trained.models, seeds, strict=True):
            g = torch.Generator().manual_seed(seed)  # one view for the outputs, then one for the embeddings
            finals.append(F.log_softmax(augmented_predict(m, x, data.mean, data.std, data.flip, g), 1))
            embeds.append(augmented_predict(m, x, data.mean, data.std, data.flip, g, features=True))
    else:
        finals = [F.log_softmax(predict(m, x), 1) for m in trained.models]
        embeds = [predict(m, x, features=True) for m in trained.models]
    labels = data.labels.cpu()
    train_acc = (log_probs.argmax(-1) == labels).float().mean(-1)
    final_pass = "imagenet-augmented" if protocol.final_pass_augmented(data.dataset) else "clean"
    config = {**cfg.to_dict(), "model": recipe.model, "train": recipe.train.to_dict(),
              "final_pass": final_pass,
              "condensed": cs.source, "condensed_meta": cs.meta.to_dict(), "mean": list(data.mean),
              "std": list(data.std), "compiled": rt.compile, "set_sha256": content_sha256(cs),
              "provenance": provenance(x.device, recipe.train.precision)}
    targets = data.soft.cpu() if data.soft is not None else None
    return Dynamics(log_probs, train_acc, labels, torch.stack(finals), torch.stack(embeds), config, targets=targets)


def augmented_predict(model: torch.nn.Module, x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                      flip: bool, generator: torch.Generator, features: bool = False,
                      batch_size: int = protocol.SCORE_PASS_BATCH) -> torch.Tensor:
    """Logits (or features) of ``model`` in eval mode on one ImageNet-augmented view of every standardised image
    in ``x`` (random-resized crop, flip, colour jitter, lighting; :class:`~yoco.augment.ImageNetAug`), drawn from
    ``generator`` batch by batch: the pass YOCO's score script makes through its ImageNet loader (``augment=True``),
    seeded here. Returned on the CPU."""
    aug = ImageNetAug(mean, std, flip=flip)
    parts = []
    for i in range(0, x.shape[0], batch_size):
        with torch.no_grad():
            view = aug(x[i:i + batch_size], generator=generator)
        parts.append(predict(model, view, features=features))
    return torch.cat(parts)
