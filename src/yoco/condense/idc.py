"""IDC condensation (Kim et al., ICML 2022): gradient matching with multi-formation, checkpointed.

Read top to bottom: the configuration and presets, the synthetic-set initialisation, the matching objective,
the inner step (two engines that give the same result), the loop (:func:`condense`), its checkpoints, and a
small cost breakdown for benchmarks.

One outer iteration = a freshly initialised network, then ``inner`` steps of
  1. for every class in turn: 64 real images and the class's decoded synthetic images (at most 128), one DSA
     draw (``color_crop_cutout``) for the two batches concatenated, the distance between the two batches'
     gradients w.r.t. the conv kernels, and ONE SGD step (momentum 0.5) on the stored images, one optimiser and
     momentum buffer over the whole image tensor: IDC's ``condense.py`` order;
  2. one pass of network training on ``net_images`` random real images (per-sample DSA ``color_crop`` + CutMix)
     through the shared :func:`yoco.train.train`.
Synthetic images live in pixel space [0, 1] (clamped at the start of every outer iteration, not after the last
update, as in IDC) and are normalised with the real set's mean/std on the way into the network.

The *batched* engine computes step 1 with one gradient evaluation for all classes: class ``c``'s loss reads
only its own slice of the images and the network does not change during the class loop, so each slice's path
through the K per-class steps has a closed form (momentum-only moves before and after its own step), and the
gradients can all be taken at the positions the sequential loop would reach. ``engine="sequential"`` runs
IDC's loop literally; a test checks the two agree to float tolerance.

Every random draw comes from one CPU ``torch.Generator`` owned by the run (networks are built under
``seeded(seed + iteration)``), so a checkpoint holding that generator's state, the images and the momentum
buffer continues bit-exactly on the CPU. An outer iteration's draws are made before its computation (they read
nothing computed), and its network's path reads no synthetic image, so the networks of several iterations can
train side by side ahead of their matching (``net_batch``, :func:`net_group`): on a GPU, where one network's
small steps are launch-bound, that is most of an inner step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from yoco import protocol
from yoco.augment import DSA, parse_strategy
from yoco.data.condensed import (
    CondensedMeta,
    CondensedSet,
    bound_plan,
    decode,
    decode_bound_images,
    decode_images,
    factor_problem,
    normalize,
    save,
)
from yoco.errors import YocoError
from yoco.files import read_tensors, write_tensors
from yoco.models import create_model, model_names
from yoco.models.stacked import batchable, stacked_forward
from yoco.progress import tqdm
from yoco.provenance import PROVENANCE_KEY, provenance
from yoco.runtime import precision_scope, resolve_device, seeded
from yoco.train import TrainConfig, train, train_batched

if TYPE_CHECKING:
    from yoco.data.datasets import RealDataset

log = logging.getLogger(__name__)

INITS = ("mix", "real", "noise")
METRICS = ("mse", "l1")
DECODES = ("auto", "single", "bound")
ENGINES = ("auto", "batched", "sequential")
GPU_NET_GROUP = 8  # outer iterations whose networks train side by side on a GPU by default (net_group)
CHECKPOINT_VERSION = "2"
# Fields that change how long a run goes, how it reports or how it computes the same numbers, never its
# trajectory: a resumed run may differ here.
RESUMABLE_FIELDS = ("iterations", "checkpoint_every", "eval_every", "engine", "precision")
# Fields added after checkpoints existed, at the values every earlier run had: a checkpoint's identity leaves them
# out there, so an older checkpoint still resumes.
LEGACY_VALUES = {"decode": "single", "net_mix_p": protocol.MIX_P}


@dataclass
class IDCConfig:
    """IDC hyper-parameters; defaults are the published CIFAR-10 settings (IDC's ``--reproduce``).

    ``lr_img`` is IDC's base rate: with ``scale_lr_img`` it is multiplied by ``(ipc / 10) * (size / base)**2``
    as IDC's argument.py does (base 32 px, 28 for MNIST, 224 for ImageNet). ``match_dsa`` augments the matched
    batches (one draw per class); the network update between inner steps uses it per sample, without cutout
    when ``net_mix`` is CutMix. ``net_images`` real images (rounded up to whole batches of ``batch_real``) are
    trained on after every inner step; ``net_pretrain_epochs`` full passes precede matching on each new network
    (IDC uses 10 for ImageNet-10). ``init="mix"`` tiles the *first* ``ipc * factor**2`` real images of each
    class, downsampled nearest-neighbour (IDC); ``init_random=True`` takes random images instead, downsampled
    by area averaging (a seed then changes the start). ``precision`` is the arithmetic of the matching and of the
    network updates (:func:`yoco.runtime.precision_scope`); a checkpoint resumes under another one.

    ``net_mix_p`` is the probability of CutMix in that network training (IDC: 0.5 for CIFAR-like data, 1.0 for
    ImageNet). ``decode`` is the multi-formation of the matched synthetic batches: ``single`` (every stored image
    at the full factor), ``bound`` (IDC's ``decode_zoom_bound``: at most ``batch_syn`` decoded images per class,
    the first stored images at the full factor, the rest at smaller ones) or ``auto`` (IDC's presets: ``bound``
    for ImageNet with factor >= 3 at IPC >= 20).
    """

    ipc: int = 10
    factor: int = protocol.IDC_BASE["factor"]
    iterations: int = protocol.IDC_BASE["iterations"]
    inner: int = protocol.IDC_BASE["inner"]
    batch_real: int = protocol.IDC_BASE["batch_real"]
    batch_syn: int = protocol.IDC_BASE["batch_syn"]
    lr_img: float = protocol.IDC_BASE["lr_img"]
    mom_img: float = protocol.IDC_BASE["mom_img"]
    scale_lr_img: bool = True
    metric: str = protocol.IDC_BASE["metric"]
    match_dsa: str = protocol.IDC_BASE["match_dsa"]
    net_images: int = protocol.IDC_BASE["net_images"]
    net_epochs: int = protocol.IDC_BASE["net_epochs"]
    net_lr: float = protocol.IDC_BASE["net_lr"]
    net_weight_decay: float = protocol.IDC_BASE["net_weight_decay"]
    net_mix: str = protocol.IDC_BASE["net_mix"]
    net_mix_p: float = protocol.IDC_BASE["net_mix_p"]
    net_pretrain_epochs: int = protocol.IDC_BASE["net_pretrain_epochs"]
    model: str = protocol.IDC_BASE["model"]
    width: int = protocol.IDC_BASE["width"]
    init: str = protocol.IDC_BASE["init"]
    init_random: bool = False
    decode: str = "auto"
    engine: str = "auto"
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int = 0
    precision: str = protocol.PRECISION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved(self, dataset: str) -> IDCConfig:
        """This config with ``decode="auto"`` replaced by what IDC's presets use on ``dataset``."""
        if self.decode != "auto":
            return self
        return dataclasses.replace(self, decode=protocol.idc_decode(dataset, self.factor, self.ipc))

    def decoded_per_class(self) -> int:
        """Decoded synthetic images of one class before the matching subsamples ``batch_syn`` of them."""
        if self.decode == "bound":
            return sum(k * k * n for k, n in bound_plan(self.ipc, self.factor, self.batch_syn))
        return self.ipc * self.factor**2

    def effective_lr_img(self, dataset: str, size: int) -> float:
        """The image learning rate actually used on ``dataset`` at ``size`` px."""
        return self.lr_img * (protocol.idc_lr_scale(dataset, self.ipc, size) if self.scale_lr_img else 1.0)


def quick(cfg: IDCConfig) -> IDCConfig:
    """A CPU-sized version of ``cfg`` for smoke runs: far fewer iterations, smaller batches and network."""
    return dataclasses.replace(cfg, iterations=10, inner=5, batch_real=32, batch_syn=64, net_images=256,
                               width=32, net_pretrain_epochs=0, checkpoint_every=5)


PRESETS: dict[str, IDCConfig] = {
    "idc": IDCConfig(**protocol.idc_preset("cifar10")),
    **{name: IDCConfig(**protocol.idc_preset(name)) for name in protocol.IDC_PRESETS},
    "cpu-quick": quick(IDCConfig(**protocol.idc_preset("cifar10"))),
}


def preset_for(dataset: str) -> IDCConfig:
    """The preset named after ``dataset``, or the published CIFAR-10 settings for any other dataset."""
    return PRESETS.get(dataset, PRESETS["idc"])


def config_from_spec(dataset: str, spec: str) -> IDCConfig:
    """Build a config from ``"ipc=10,iterations=200,preset=cpu-quick"`` (what ``--condense`` takes).

    The base is the dataset's preset; ``preset=NAME`` picks another one, except ``preset=cpu-quick``, which
    shrinks the dataset's own preset with :func:`quick`. Other keys override single fields.
    """
    pairs: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise YocoError(f"condense spec {spec!r}: expected key=value items, got {item!r}")
        pairs[key.strip().replace("-", "_")] = value.strip()
    base = resolve_config(dataset, pairs.pop("preset", None))
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    overrides: dict[str, Any] = {}
    for key, value in pairs.items():
        if key not in fields:
            raise YocoError(f"condense spec: unknown field {key!r}; known: preset, {', '.join(fields)}")
        overrides[key] = _parse_value(key, value, type(fields[key]))
    return dataclasses.replace(base, **overrides)


def resolve_config(dataset: str, preset: str | None = None, **overrides: Any) -> IDCConfig:
    """The IDC config for ``dataset``: its published preset (or ``preset``; ``cpu-quick`` shrinks the dataset's own
    preset with :func:`quick`), then ``overrides`` of single fields."""
    if preset in (None, "idc"):
        base = preset_for(dataset)
    elif preset == "cpu-quick":
        base = quick(preset_for(dataset))
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise YocoError(f"unknown IDC preset {preset!r}; known: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(IDCConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise YocoError(f"unknown IDC setting(s) {unknown}; known: {', '.join(sorted(fields))}")
    return dataclasses.replace(base, **overrides)


def _parse_value(key: str, value: str, kind: type) -> Any:
    if kind is bool:
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise YocoError(f"condense spec: {key} must be true or false, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    try:
        return kind(value)
    except ValueError:
        raise YocoError(f"condense spec: {key} must be {kind.__name__}, got {value!r}") from None


def check_config(cfg: IDCConfig, real: RealDataset) -> None:
    """Refuse settings that cannot run on ``real`` before any work or file is made."""
    counts = [len(idx) for idx in real.class_indices("train")]
    h, w = _hw(real)
    positive = ("ipc", "factor", "iterations", "inner", "batch_real", "batch_syn", "net_images", "net_epochs",
                "width")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise YocoError(f"IDC: {name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("checkpoint_every", "eval_every", "net_pretrain_epochs"):
        if getattr(cfg, name) < 0:
            raise YocoError(f"IDC: {name} must be 0 (off) or more, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.mom_img < 1.0:
        raise YocoError(f"IDC: mom_img must be in [0, 1), got {cfg.mom_img}")
    problem = factor_problem(h, w, cfg.factor)
    if problem:
        raise YocoError(f"IDC on {real.name}: {problem}")
    if not 0.0 <= cfg.net_mix_p <= 1.0:
        raise YocoError(f"IDC: net_mix_p must be a probability, got {cfg.net_mix_p}")
    need = cfg.ipc * (cfg.factor**2 if cfg.init == "mix" else 1)
    if need > min(counts):
        c = counts.index(min(counts))
        raise YocoError(f"IDC: ipc {cfg.ipc} needs {need} real images per class to initialise, but class {c} of "
                        f"{real.name} has {counts[c]}")
    choices = {"init": INITS, "metric": METRICS, "engine": ENGINES, "net_mix": ("cutmix", "mixup", "none"),
               "decode": DECODES, "precision": protocol.PRECISIONS}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise YocoError(f"IDC: unknown {name} {getattr(cfg, name)!r}; choose {', '.join(allowed)}")
    if cfg.model not in model_names():
        raise YocoError(f"IDC: unknown model {cfg.model!r}; known: {', '.join(model_names())}")
    parse_strategy(cfg.match_dsa)


# ----------------------------------------------------------------------------------------------------------
# Initialisation


def init_synthetic(real: RealDataset, ipc: int, factor: int, init: str = "mix", *, random: bool = False,
                   generator: torch.Generator | None = None) -> CondensedSet:
    """Starting synthetic set: ``ipc`` stored images per class, class-major, in pixel space [0, 1].

    ``mix`` (IDC's multi-formation start): every stored image holds ``factor**2`` real images of its class,
    each downsampled by ``factor`` and tiled row-major, so decoding gives those real images back, blurred by
    the down/up-sampling. As IDC: the first ``ipc * factor**2`` images of the class in dataset order, tile
    ``k`` of stored image ``t`` holding image ``k * ipc + t``, nearest-neighbour downsampling. With ``random``:
    random images of the class (from ``generator``), tile ``k`` of stored image ``t`` holding pick
    ``t * factor**2 + k``, area-average downsampling. ``real``: ``ipc`` real images stored whole (the first ones,
    or random ones; IDC calls this ``random``). ``noise``: uniform noise.
    For ``mix`` and ``real``, ``meta.extra["source_indices"][j]`` is the real training index behind decoded
    image ``j`` (``real``: behind stored image ``j``).
    """
    if init not in INITS:
        raise YocoError(f"unknown init {init!r}; choose {', '.join(INITS)}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    k, c, h, w = real.num_classes, real.channels, *_hw(real)
    f = factor if init == "mix" else 1
    labels = torch.arange(k).repeat_interleave(ipc)
    extra: dict[str, Any] = {"init": init, "init_random": random}
    if init == "noise":
        images = torch.rand(k * ipc, c, h, w, generator=g)
    else:
        n = ipc * f * f
        picks = torch.cat([_sample(idx, n, g) if random else _first(idx, n, real.name)
                           for idx in real.class_indices("train")])
        if f > 1 and not random:
            # IDC's order: within a class, pick k * ipc + t goes to tile k of stored image t; reorder the picks
            # so that they read stored image by stored image, tile by tile, like decoding.
            order = torch.arange(n).view(f * f, ipc).T.reshape(-1)
            picks = torch.cat([picks[c0 * n:(c0 + 1) * n][order] for c0 in range(k)])
        x = real.train_images[picks].to(torch.float32) / 255.0
        if f > 1 and (h % f or w % f):
            x = _tile_uneven(x, f, random)
        elif f > 1:
            small = (F.avg_pool2d(x, f) if random else F.interpolate(x, size=(h // f, w // f), mode="nearest"))
            # Tile j of stored image i is pick i * f^2 + j; the reshape is decode_images' split, inverted.
            tiles = small.reshape(k * ipc, f, f, c, h // f, w // f)
            x = tiles.permute(0, 3, 1, 4, 2, 5).reshape(k * ipc, c, h, w)
        images = x
        extra["source_indices"] = picks.tolist()
    meta = CondensedMeta(dataset=real.name, num_classes=k, method=f"idc-init-{init}", ipc=ipc, factor=factor,
                         normalized=False, mean=tuple(real.mean), std=tuple(real.std), extra=extra)
    return CondensedSet(images.clamp(0, 1), labels, meta, source=f"{real.name}:idc-init-{init}")


def _tile_uneven(x: torch.Tensor, f: int, random: bool) -> torch.Tensor:
    """``x`` (``[n * f^2, C, H, W]``, pick ``i * f^2 + j`` for tile ``j`` of stored image ``i``) tiled into ``n``
    images when ``f`` does not divide the size: as IDC's ``Synthesizer.init`` (condense.py:64-84), tile rows and
    columns are ``H // f + 1`` pixels for the first ``H % f`` of them and ``H // f`` after (224, factor 3: 75, 75,
    74), each real image resized to its tile (nearest; area averaging for random picks)."""
    n, c, h, w = x.shape[0] // (f * f), *x.shape[1:]
    out = x.new_empty(n, c, h, w)
    sizes_h = [h // f + (1 if i < h % f else 0) for i in range(f)]
    sizes_w = [w // f + (1 if j < w % f else 0) for j in range(f)]
    picks = x.view(n, f * f, c, h, w)
    top = 0
    for i, th in enumerate(sizes_h):
        left = 0
        for j, tw in enumerate(sizes_w):
            part = picks[:, i * f + j]
            out[:, :, top:top + th, left:left + tw] = F.interpolate(part, size=(th, tw),
                                                                    mode="area" if random else "nearest")
            left += tw
        top += th
    return out


def _first(idx: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """The first ``n`` entries of a class's training indices (dataset order), as IDC's ``class_sample``."""
    if n > len(idx):
        raise YocoError(f"IDC init needs {n} real images per class but a class of {name} has {len(idx)}")
    return torch.sort(idx).values[:n]


def _sample(idx: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` entries of ``idx`` without replacement, cycling through fresh permutations if ``n > len(idx)``."""
    perms = [idx[torch.randperm(len(idx), generator=g)] for _ in range(-(-n // len(idx)))]
    return torch.cat(perms)[:n]


def _hw(real: RealDataset) -> tuple[int, int]:
    size = real.image_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


# ----------------------------------------------------------------------------------------------------------
# The matching objective


class _RealPool:
    """The real training set on the device as uint8 (4x smaller than float), normalised batch by batch."""

    def __init__(self, real: RealDataset, device: torch.device) -> None:
        self.images = real.train_images.to(device)
        self.labels = real.train_labels.to(device)
        self.by_class = [idx.cpu() for idx in real.class_indices("train")]
        self.mean, self.std = tuple(real.mean), tuple(real.std)

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.images[idx.to(self.images.device)].to(torch.float32) / 255.0
        return normalize(x, self.mean, self.std)


def matched_params(net: nn.Module) -> list[nn.Parameter]:
    """The parameters IDC matches: conv kernels only (no biases, norm parameters or final linear layer)."""
    return [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]


def gradient_distance(net: nn.Module, params: list[nn.Parameter], x_real: torch.Tensor, y_real: torch.Tensor,
                      x_syn: torch.Tensor, y_syn: torch.Tensor, metric: str = "mse") -> torch.Tensor:
    """Distance between the real and synthetic batches' loss gradients w.r.t. ``params``, summed over layers.

    ``mse`` is the sum of squared differences, ``l1`` the sum of absolute differences (IDC's ``dist``). The real
    gradient is a constant target; the synthetic one keeps its graph so the distance can be differentiated
    w.r.t. the synthetic images.
    """
    g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
    g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
    total = x_syn.new_zeros(())
    for gr, gs in zip(g_real, g_syn):
        diff = gr.detach() - gs
        total = total + (diff.pow(2).sum() if metric == "mse" else diff.abs().sum())
    return total


@dataclass
class _ClassDraw:
    """One class's random choices for one inner step: real images, decoded subset, DSA seed."""

    real_idx: torch.Tensor
    syn_subset: torch.Tensor | None
    dsa_seed: int


def _draw(pool: _RealPool, c: int, cfg: IDCConfig, g: torch.Generator) -> _ClassDraw:
    idx = pool.by_class[c]
    real_idx = idx[torch.randperm(len(idx), generator=g)[: cfg.batch_real]]
    decoded = cfg.decoded_per_class()
    subset = torch.randperm(decoded, generator=g)[: cfg.batch_syn] if decoded > cfg.batch_syn else None
    return _ClassDraw(real_idx, subset, int(torch.randint(2**31 - 1, (1,), generator=g)))


def _decode_class(syn_c: torch.Tensor, cfg: IDCConfig) -> torch.Tensor:
    """One class's stored images (pixel space) decoded for matching: every one at the full factor, or IDC's bound
    multi-formation (``cfg.decode="bound"``); sizes the factor does not divide are padded with mid-grey first."""
    if cfg.decode == "bound":
        return decode_bound_images(syn_c, cfg.factor, cfg.batch_syn)[0]
    return decode_images(syn_c, cfg.factor)


def _class_loss(net: nn.Module, params: list[nn.Parameter], pool: _RealPool, syn_c: torch.Tensor, c: int,
                draw: _ClassDraw, cfg: IDCConfig, dsa: DSA) -> torch.Tensor:
    """Class ``c``'s gradient distance for its stored images ``syn_c`` (pixel space) under ``draw``.

    The real and decoded synthetic batches are normalised, concatenated and augmented by ONE DSA draw applied
    to every image (IDC's ``aug(torch.cat([img, img_syn]))`` with ``batch=True``: the siamese pairing).
    """
    x_real = pool.batch(draw.real_idx)
    dec = _decode_class(syn_c, cfg)
    if draw.syn_subset is not None:
        dec = dec[draw.syn_subset.to(dec.device)]
    both = dsa(torch.cat([x_real, normalize(dec, pool.mean, pool.std)]), seed=draw.dsa_seed, shared=True)
    n = x_real.shape[0]
    y_real = torch.full((n,), c, dtype=torch.long, device=both.device)
    y_syn = torch.full((both.shape[0] - n,), c, dtype=torch.long, device=both.device)
    return gradient_distance(net, params, both[:n], y_real, both[n:], y_syn, metric=cfg.metric)


def _class_losses_stacked(net: nn.Module, pool: _RealPool, syn: torch.Tensor, draws: list[_ClassDraw],
                          cfg: IDCConfig, dsa: DSA) -> torch.Tensor:
    """Every class's gradient distance at once (the same numbers as :func:`_class_loss` class by class),
    differentiable w.r.t. ``syn``. Each class's batches are drawn and its DSA parameters drawn from its own seed as
    in the sequential loop, but gathered, decoded, normalised and augmented for all classes in one pass, and the
    network runs once for all classes on K copies of its weights (:func:`~yoco.models.stacked.stacked_forward`:
    grouped convolutions for ConvNet), so the gradient w.r.t. copy ``c`` is class ``c``'s weight gradient. A GPU
    step here is launch-bound: one pass instead of one per class cuts its operations (``benchmarks/op_count.py``)."""
    names = {id(p): n for n, p in net.named_parameters()}
    matched = [names[id(p)] for p in matched_params(net)]
    k = len(draws)
    x_real = pool.batch(torch.cat([d.real_idx for d in draws]))
    ipc = syn.shape[0] // k
    dec = (torch.cat([_decode_class(syn[c * ipc:(c + 1) * ipc], cfg) for c in range(k)]) if cfg.decode == "bound"
           else decode_images(syn, cfg.factor))
    per_class = dec.shape[0] // k
    if any(d.syn_subset is not None for d in draws):
        keep = [c * per_class + (d.syn_subset if d.syn_subset is not None else torch.arange(per_class))
                for c, d in enumerate(draws)]
        dec = dec[torch.cat(keep).to(dec.device)]
    x_syn = normalize(dec, pool.mean, pool.std)
    n_real, n_syn = x_real.shape[0] // k, x_syn.shape[0] // k
    # row c: class c's one transform (its shared draw), drawn for all classes at once
    one, _ = dsa.draw_many(1, *syn.shape[-2:], [torch.Generator().manual_seed(int(d.dsa_seed)) for d in draws])
    rows = {key: torch.cat([v.repeat_interleave(n_real, 0), v.repeat_interleave(n_syn, 0)])
            for key, v in one.items()}  # all real blocks, then all synthetic ones
    both = dsa.apply(torch.cat([x_real, x_syn]), rows)
    reals = both[: k * n_real].view(k, n_real, *both.shape[1:])
    syns = both[k * n_real:].view(k, n_syn, *both.shape[1:])
    classes = torch.arange(k, device=syn.device).view(k, 1)
    copies = {n: p.detach().unsqueeze(0).expand(k, *p.shape) for n, p in net.named_parameters()}
    weights = [copies[n].clone().requires_grad_(True) for n in matched]
    copies.update(zip(matched, weights, strict=True))
    forward = stacked_forward(net, training=True)

    def summed_losses(x: torch.Tensor) -> torch.Tensor:  # sum over classes of each class's mean cross-entropy
        out = forward(copies, x)
        return F.cross_entropy(out.flatten(0, 1), classes.expand(k, x.shape[1]).flatten(), reduction="none"
                               ).view(k, -1).mean(1).sum()

    g_real = torch.autograd.grad(summed_losses(reals), weights)
    g_syn = torch.autograd.grad(summed_losses(syns), weights, create_graph=True)
    diffs = [(gr.detach() - gs).flatten(1) for gr, gs in zip(g_real, g_syn, strict=True)]
    return sum((d.pow(2) if cfg.metric == "mse" else d.abs()).sum(1) for d in diffs)


class Objective:
    """What an inner step minimises for each class, and the state that carries across outer iterations.

    This base is IDC's: the gradient distance of :func:`_class_loss`, no state. MDC (:mod:`yoco.condense.mdc`)
    subclasses it to add its subset terms and its regularizer. :func:`condense` calls the hooks in its loop's order:
    ``begin`` at the start of every outer iteration (after the clamp), ``class_loss`` for every class of every inner
    step (class by class with the sequential engine; all classes, then one backward, with the batched one), ``end``
    after the iteration's last inner step and before its checkpoint, so ``state`` is always taken between two
    iterations. ``stacked`` says whether :func:`_class_losses_stacked` computes ``class_loss`` for all classes at once.
    """

    method = "idc"
    stacked = True

    def check(self, cfg: IDCConfig, real: RealDataset) -> None:
        """Refuse settings this objective cannot run, before any work (IDC's are checked by :func:`check_config`)."""

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must have been written with to be continued by this objective (beside the config)."""
        return {}

    def begin(self, iteration: int) -> None:
        """Start outer iteration ``iteration`` (0-based)."""

    def class_loss(self, net: nn.Module, params: list[nn.Parameter], pool: _RealPool, syn_c: torch.Tensor, c: int,
                   draw: _ClassDraw, cfg: IDCConfig, dsa: DSA) -> torch.Tensor:
        """Class ``c``'s loss for its stored images ``syn_c`` under ``draw``, differentiable w.r.t. ``syn_c``."""
        return _class_loss(net, params, pool, syn_c, c, draw, cfg, dsa)

    def end(self, iteration: int) -> None:
        """Finish outer iteration ``iteration``."""

    def state(self) -> dict[str, Any]:
        """The state between two iterations, JSON-ready (kept in checkpoints)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`'s output."""

    def extra(self) -> dict[str, Any]:
        """What the condensed set's metadata records of this objective."""
        return {}


_IDC = Objective()  # IDC's objective: stateless, so one instance serves every run


def matching_loss(real: RealDataset, syn: CondensedSet, net: nn.Module, cfg: IDCConfig, seed: int = 0) -> float:
    """IDC's objective for ``syn`` on a fixed ``net``: the class-summed gradient distance of one inner step.

    Every random draw (real batches, synthetic subsets, DSA) comes from ``seed``, so two sets can be compared
    on exactly the same batches and network, e.g. before and after condensation.
    """
    cfg = cfg.resolved(real.name)
    device = next(net.parameters()).device
    order = torch.argsort(syn.labels, stable=True)
    if syn.labels[order].tolist() != torch.arange(real.num_classes).repeat_interleave(cfg.ipc).tolist():
        raise YocoError(f"{syn.source}: matching needs exactly {cfg.ipc} stored images per class")
    images = syn.pixels()[order].to(device)
    g = torch.Generator().manual_seed(seed)
    pool, dsa, params = _RealPool(real, device), DSA(cfg.match_dsa, flip=real.flip), matched_params(net)
    net.train()
    total = 0.0
    with torch.enable_grad():
        for c in range(real.num_classes):
            draw = _draw(pool, c, cfg, g)
            loss = _class_loss(net, params, pool, images[c * cfg.ipc:(c + 1) * cfg.ipc], c, draw, cfg, dsa)
            total += float(loss.detach())
    return total


# ----------------------------------------------------------------------------------------------------------
# The inner step: every class matched once, one image step per class, one shared momentum buffer


def inner_step_sequential(net: nn.Module, pool: _RealPool, syn: torch.Tensor, opt: torch.optim.Optimizer,
                          cfg: IDCConfig, dsa: DSA, g: torch.Generator, objective: Objective | None = None
                          ) -> torch.Tensor:
    """IDC's loop literally: for each class, draw, match, ``zero_grad``, backward, ``opt.step()`` on all of
    ``syn`` (a leaf tensor; ``opt`` is SGD with momentum over it). Returns the summed distance as a tensor on
    the device (reading it waits for the device, so the caller reads it once per outer iteration). ``objective``
    gives each class's loss (default: IDC's)."""
    params = matched_params(net)
    objective = objective or _IDC
    total = syn.new_zeros(())
    for c in range(len(pool.by_class)):
        draw = _draw(pool, c, cfg, g)
        loss = objective.class_loss(net, params, pool, syn[c * cfg.ipc:(c + 1) * cfg.ipc], c, draw, cfg, dsa)
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[syn])
        opt.step()
        total = total + loss.detach()
    return total


def inner_step_batched(net: nn.Module, pool: _RealPool, syn: torch.Tensor, momentum: torch.Tensor | None,
                       lr: float, cfg: IDCConfig, dsa: DSA, g: torch.Generator, objective: Objective | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same step as :func:`inner_step_sequential` with one gradient evaluation for all classes.

    With K classes, momentum m, rate lr and class ``c``'s buffer slice ``b`` at the start, the sequential loop
    moves slice ``c`` by ``-lr * b * sum_{k<c} m^(k+1)`` before its own step, evaluates its gradient ``g_c``
    there, and ends at ``-lr * (b * sum_{k<K} m^(k+1) + g_c * sum_{k=c}^{K-1} m^(k-c))`` with buffer
    ``m^K b + m^(K-1-c) g_c``. So the gradients are taken at the shifted positions (one backward of the
    class-summed distance) and the update is applied in closed form.

    ``syn`` is detached pixel-space images ``[K * ipc, C, H, W]``; returns ``(new images, new momentum buffer,
    summed distance)`` (the distance as a 0-d tensor: no host synchronisation). The closed form holds for any
    ``objective`` whose class loss reads only its own class's images (MDC's does); one that the stacked pass
    cannot compute (``objective.stacked`` False) is evaluated class by class, then differentiated once.
    """
    k = len(pool.by_class)
    mom = cfg.mom_img
    buf = momentum if momentum is not None else torch.zeros_like(syn)
    powers = mom ** torch.arange(k + 1, dtype=torch.float64)
    before = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(powers[1:k], 0)])  # sum_{j<c} m^(j+1)
    own = torch.stack([powers[: k - c].sum() for c in range(k)])  # sum_{j=c}^{K-1} m^(j-c)
    per_row = lambda v: v.repeat_interleave(cfg.ipc).to(syn.device, syn.dtype).view(-1, 1, 1, 1)
    at = (syn - lr * per_row(before) * buf).detach().requires_grad_(True)
    draws = [_draw(pool, c, cfg, g) for c in range(k)]
    objective = objective or _IDC
    # batch norm (running statistics are not per class), classes too small for a full real batch, or an objective
    # the stacked pass cannot compute: one class at a time
    if any(True for _ in net.buffers()) or len({len(d.real_idx) for d in draws}) > 1 or not objective.stacked:
        params = matched_params(net)
        total = sum(objective.class_loss(net, params, pool, at[c * cfg.ipc:(c + 1) * cfg.ipc], c, draws[c], cfg, dsa)
                    for c in range(k))
    else:
        total = _class_losses_stacked(net, pool, at, draws, cfg, dsa).sum()
    (grad,) = torch.autograd.grad(total, at)
    all_steps = float(powers[1:].sum())  # sum_{j<K} m^(j+1)
    new = syn - lr * (all_steps * buf + per_row(own) * grad)
    new_buf = float(powers[k]) * buf + per_row(mom ** (k - 1 - torch.arange(k, dtype=torch.float64))) * grad
    return new.detach(), new_buf.detach(), total.detach()


# ----------------------------------------------------------------------------------------------------------
# The loop


def _build_net(cfg: IDCConfig, real: RealDataset, seed: int, device: torch.device) -> nn.Module:
    with seeded(seed):
        net = create_model(cfg.model, real.num_classes, real.channels, _hw(real), width=cfg.width)
    return net.to(device).train()


def _net_train_config(cfg: IDCConfig, flip: bool, epochs: int, seed: int) -> TrainConfig:
    # IDC's aug_rand: the matching strategy with per-sample parameters, without cutout when CutMix is on. No lr
    # milestones: the network trains at a constant rate between matching steps.
    ops = [o for o in parse_strategy(cfg.match_dsa) if not (o == "cutout" and cfg.net_mix == "cutmix")]
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_real, lr=cfg.net_lr, weight_decay=cfg.net_weight_decay,
                       milestones=(), base_aug="none", dsa="_".join(ops) or "none", flip=flip, mix=cfg.net_mix,
                       mix_p=cfg.net_mix_p, seed=seed, precision=cfg.precision)


def _net_optimizer(net: nn.Module, cfg: IDCConfig) -> torch.optim.Optimizer:
    """One optimizer per outer iteration's network, so its momentum carries across the inner steps (as IDC)."""
    return torch.optim.SGD(net.parameters(), lr=cfg.net_lr, momentum=0.9, weight_decay=cfg.net_weight_decay)


@dataclass
class _NetDraw:
    """What one network pass between matching steps draws from the run's generator: which real images (all when
    ``pick`` is None) and the seed of the pass's own batch order and augmentation."""

    pick: torch.Tensor | None
    seed: int


def _net_draw(n: int, cfg: IDCConfig, g: torch.Generator, n_images: int | None) -> _NetDraw:
    """IDC's ``train_epoch(n_data=...)`` stops after the batch that reaches ``n_data`` images, so the count is
    rounded up to whole batches (500 -> 8 x 64)."""
    pick = None
    if n_images is not None:
        whole = -(-n_images // cfg.batch_real) * cfg.batch_real
        pick = torch.randperm(n, generator=g)[: min(whole, n)]
    return _NetDraw(pick, int(torch.randint(2**31 - 1, (1,), generator=g)))


def _train_nets(nets: list[nn.Module], pool: _RealPool, cfg: IDCConfig, flip: bool, draws: list[_NetDraw],
                epochs: int, opts: list[torch.optim.Optimizer], compile: bool = False) -> None:
    """One pass of each network ``nets[i]`` on the real images ``draws[i]`` picks, with the shared training loop.

    Several networks (or one, compiled) train as one batched computation (:func:`yoco.train.train_batched`: the
    whole step, augmentation, mixing, forward, backward and SGD, one graph when compiled); one network eager
    through :func:`yoco.train.train`. Each optimizer carries its network's momentum across the inner steps.
    """
    if all(d.pick is None for d in draws):  # every network on the whole pool (pre-training): one shared tensor
        x, y = [pool.batch(torch.arange(pool.labels.shape[0]))] * len(draws), [pool.labels] * len(draws)
    else:
        picks = [d.pick if d.pick is not None else torch.arange(pool.labels.shape[0]) for d in draws]
        x, y = [pool.batch(p) for p in picks], [pool.labels[p.to(pool.labels.device)] for p in picks]
    tcfgs = [_net_train_config(cfg, flip, epochs, d.seed) for d in draws]
    if len(nets) > 1 or (compile and batchable(nets[0])):
        train_batched(nets, x, y, tcfgs, progress=False, compile=compile, optimizers=opts)
    else:
        train(nets[0], x[0], y[0], tcfgs[0], progress=False, optimizer=opts[0], compile=compile)


@dataclass
class _Plan:
    """One outer iteration's random draws, made before any of its computation. They read nothing computed, so
    drawing them first leaves the run's generator exactly where IDC's interleaved order leaves it."""

    pretrain: _NetDraw | None
    matching: list[torch.Tensor]  # the generator's state at each inner step's matching draws, to replay them
    nets: list[_NetDraw]  # the network pass after each inner step
    rng_after: torch.Tensor


def _plan(pool: _RealPool, cfg: IDCConfig, g: torch.Generator) -> _Plan:
    n = pool.labels.shape[0]
    pretrain = _net_draw(n, cfg, g, None) if cfg.net_pretrain_epochs else None
    matching, nets = [], []
    for _ in range(cfg.inner):
        matching.append(g.get_state())
        for c in range(len(pool.by_class)):
            _draw(pool, c, cfg, g)
        nets.append(_net_draw(n, cfg, g, cfg.net_images))
    return _Plan(pretrain, matching, nets, g.get_state())


def _replayed(state: torch.Tensor) -> torch.Generator:
    g = torch.Generator()
    g.set_state(state)
    return g


def _matching_nets(cfg: IDCConfig, real: RealDataset, pool: _RealPool, its: list[int], plans: list[_Plan],
                   dev: torch.device, compile: bool) -> list[Iterator[nn.Module]]:
    """For each outer iteration in ``its``, the networks its inner steps match on, in order.

    A network's path (its seeded initialisation, then one pass on real images after every matching step) reads no
    synthetic image, so the networks of several outer iterations can train side by side as one batched
    computation ahead of their matching: on a GPU, where one network's pass of small batches is launch-bound, this
    is most of an inner step (BENCHMARKS.md). Their weights are kept after every pass (``len(its) * inner``
    copies). A single iteration's network trains lazily between its matching steps instead. The pass after the
    last matching step is skipped: IDC runs it, but the network is discarded unread.
    """
    nets = [_build_net(cfg, real, cfg.seed + it, dev) for it in its]
    opts = [_net_optimizer(net, cfg) for net in nets]
    if cfg.net_pretrain_epochs:
        _train_nets(nets, pool, cfg, real.flip, [p.pretrain for p in plans], cfg.net_pretrain_epochs, opts, compile)
    if len(nets) == 1:
        return [_trained_between(nets[0], opts[0], plans[0], pool, cfg, real.flip, compile)]
    kept = [[_weights(net)] for net in nets]
    for i in range(cfg.inner - 1):
        _train_nets(nets, pool, cfg, real.flip, [p.nets[i] for p in plans], cfg.net_epochs, opts, compile)
        for k, net in zip(kept, nets, strict=True):
            k.append(_weights(net))
    return [_restored(net, k) for net, k in zip(nets, kept, strict=True)]


def _trained_between(net: nn.Module, opt: torch.optim.Optimizer, plan: _Plan, pool: _RealPool, cfg: IDCConfig,
                     flip: bool, compile: bool) -> Iterator[nn.Module]:
    for i in range(cfg.inner):
        if i:
            _train_nets([net], pool, cfg, flip, [plan.nets[i - 1]], cfg.net_epochs, [opt], compile)
        yield net


def _weights(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _restored(net: nn.Module, kept: list[list[torch.Tensor]]) -> Iterator[nn.Module]:
    params = list(net.parameters())
    for weights in kept:
        with torch.no_grad():
            for p, w in zip(params, weights, strict=True):
                p.copy_(w)
        yield net


def net_group(cfg: IDCConfig, real: RealDataset, device: torch.device, requested: int | None = None) -> int:
    """How many outer iterations' networks train side by side (:func:`_matching_nets`).

    ``requested`` None is the measured choice: one on a CPU, where a network's pass keeps the cores busy and
    batching measured slower (BENCHMARKS.md, "Training many networks"); 8 on a GPU, where one network's pass is a
    few hundred launches for little arithmetic. Networks with buffers (batch norm) always train one by one.
    """
    if requested is not None and requested < 1:
        raise YocoError(f"net_batch must be at least 1, got {requested}")
    with seeded(0):
        probe = create_model(cfg.model, real.num_classes, real.channels, _hw(real), width=cfg.width)
    if not batchable(probe):
        return 1
    if requested is not None:
        return requested
    return GPU_NET_GROUP if device.type == "cuda" else 1


def checkpoint_path(out: str | Path) -> Path:
    """Where :func:`condense` keeps its checkpoint for the output ``out``."""
    return Path(f"{out}.ckpt")


@dataclass
class _State:
    images: torch.Tensor
    momentum: torch.Tensor | None
    iteration: int
    rng: torch.Tensor
    losses: list[float]
    objective: dict[str, Any] | None = None


class _ImageStepper:
    """The stored images and their momentum, stepped by either engine (the only state matching changes).

    ``engine="auto"`` is the batched engine on a GPU, where one evaluation for all classes replaces a few hundred small
    kernel launches per step, and IDC's sequential loop on a CPU, where it measured faster (BENCHMARKS.md).
    """

    def __init__(self, images: torch.Tensor, momentum: torch.Tensor | None, lr: float, cfg: IDCConfig) -> None:
        self.cfg, self.lr = cfg, lr
        self.images = images
        self.momentum = momentum
        self.opt: torch.optim.Optimizer | None = None
        engine = cfg.engine if cfg.engine != "auto" else ("batched" if images.device.type == "cuda" else "sequential")
        if engine == "sequential":
            self.images = images.clone().requires_grad_(True)
            self.opt = torch.optim.SGD([self.images], lr=lr, momentum=cfg.mom_img)
            if momentum is not None:
                self.opt.state[self.images]["momentum_buffer"] = momentum.clone()

    def clamp(self) -> None:
        with torch.no_grad():
            self.images.clamp_(0, 1)

    def step(self, net: nn.Module, pool: _RealPool, dsa: DSA, g: torch.Generator,
             objective: Objective | None = None) -> torch.Tensor:
        if self.opt is not None:
            return inner_step_sequential(net, pool, self.images, self.opt, self.cfg, dsa, g, objective)
        self.images, self.momentum, total = inner_step_batched(net, pool, self.images, self.momentum, self.lr,
                                                               self.cfg, dsa, g, objective)
        return total

    def state(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.opt is not None:
            return self.images.detach(), self.opt.state[self.images].get("momentum_buffer")
        return self.images, self.momentum


def condense(real: RealDataset, cfg: IDCConfig, out: str | Path, *, device: str | torch.device = "auto",
             resume: bool = False, progress: bool = True, eval_fn: Callable[[CondensedSet], Any] | None = None,
             keep_checkpoint: bool = False, compile: bool = False, net_batch: int | None = None,
             objective: Objective | None = None) -> CondensedSet:
    """Condense ``real`` with IDC into ``cfg.ipc`` stored images per class and save the set to ``out``.

    Every ``cfg.checkpoint_every`` outer iterations the run state goes atomically to ``<out>.ckpt``;
    ``resume=True`` continues from it (bit-exactly on the CPU with the same engine) after checking it was
    written by the same configuration (``iterations`` may grow). With ``eval_fn`` and ``cfg.eval_every > 0``, the
    current set is passed to ``eval_fn`` every ``eval_every`` iterations and the result logged. The checkpoint
    is removed once the final set is written, unless ``keep_checkpoint`` (then it holds the final state, so a
    later call with more ``iterations`` continues the same run: how a schedule is spread over short GPU loans).
    ``compile`` runs the network's training steps between matching steps as one compiled graph each (augmentation,
    mixing, forward, backward and SGD: :func:`yoco.train.train_batched` with one network; a compiled forward alone
    measured no faster on an H100); a runtime choice, not part of the run's identity: a checkpoint resumes either
    way. ``net_batch`` outer iterations' networks train side by side ahead of their matching (:func:`net_group`;
    None: the device's default); also a runtime choice, the same images up to float rounding. ``objective`` is what
    each class's matching minimises and the state it carries (default: IDC's; :class:`Objective`); its state goes
    into the checkpoint beside the images.
    """
    objective = objective or _IDC
    check_config(cfg, real)
    cfg = cfg.resolved(real.name)
    objective.check(cfg, real)
    dev = resolve_device(device)
    out = Path(out)
    ckpt = checkpoint_path(out)
    state = None
    if resume and ckpt.is_file():
        state = _read_checkpoint(ckpt, cfg, real, objective)
        log.info("resuming %s from iteration %d", ckpt, state.iteration)
        if state.objective is not None:
            objective.restore(state.objective)
    elif resume:
        log.info("no checkpoint at %s; starting from scratch", ckpt)
    elif ckpt.is_file():
        log.warning("%s exists and will be overwritten (pass resume=True to continue it)", ckpt)
    if state is None:
        g = torch.Generator().manual_seed(cfg.seed)
        start = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, random=cfg.init_random, generator=g)
        state = _State(start.images, None, 0, g.get_state(), [])
    g = torch.Generator()
    g.set_state(state.rng)
    labels = torch.arange(real.num_classes).repeat_interleave(cfg.ipc)
    lr = cfg.effective_lr_img(real.name, _hw(real)[0])
    momentum = state.momentum.to(dev) if state.momentum is not None else None
    images = _ImageStepper(state.images.to(dev), momentum, lr, cfg)
    losses = list(state.losses)
    pool = _RealPool(real, dev)
    dsa = DSA(cfg.match_dsa, flip=real.flip)
    log_every = max(1, cfg.iterations // 50)
    group = net_group(cfg, real, dev, net_batch)
    name = objective.method.upper()
    bar = tqdm(total=cfg.iterations, initial=state.iteration, desc=f"{name} {real.name} ipc {cfg.ipc}",
               disable=not progress, dynamic_ncols=True)
    first = state.iteration
    while first < cfg.iterations:
        its = list(range(first, min(first + group, cfg.iterations)))
        plans = [_plan(pool, cfg, g) for _ in its]
        for it, plan, nets in zip(its, plans, _matching_nets(cfg, real, pool, its, plans, dev, compile), strict=True):
            images.clamp()
            objective.begin(it)
            total = torch.zeros((), device=dev)
            for net, rng in zip(nets, plan.matching, strict=True):
                with precision_scope(cfg.precision, dev):
                    total += images.step(net, pool, dsa, _replayed(rng), objective).to(dev)
            objective.end(it)
            losses.append(float(total) / cfg.inner / real.num_classes)  # IDC logs the mean per class and step
            done = it + 1
            bar.update(1)
            bar.set_postfix(match=f"{losses[-1]:.4g}", refresh=False)
            if done % log_every == 0 or done == cfg.iterations:
                log.info("%s iteration %d/%d: matching loss %.6g per class", name, done, cfg.iterations, losses[-1])
            if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.iterations) or (
                    keep_checkpoint and done == cfg.iterations):
                _write_checkpoint(ckpt, cfg, real, _State(*images.state(), done, plan.rng_after, losses,
                                                          objective.state()), objective)
            if eval_fn is not None and cfg.eval_every and done % cfg.eval_every == 0:
                current = _result(images.state()[0], labels, cfg, real, losses, f"{out}@{done}", objective)
                # IDC's evaluations while condensing decode as its matching does (Synthesizer.loader -> decode)
                result = eval_fn(decode(current, bound=cfg.batch_syn) if cfg.decode == "bound" else current)
                log.info("%s iteration %d: evaluation %s", name, done, _summary(result))
        first = its[-1] + 1
    bar.close()
    final = _result(images.state()[0], labels, cfg, real, losses, str(out), objective)
    final.meta.extra[PROVENANCE_KEY] = provenance(dev, cfg.precision)  # not part of the set's content digest
    save(final, out)
    if not keep_checkpoint:
        ckpt.unlink(missing_ok=True)
    return final


def _result(syn: torch.Tensor, labels: torch.Tensor, cfg: IDCConfig, real: RealDataset, losses: list[float],
            source: str, objective: Objective) -> CondensedSet:
    # Not clamped: IDC saves the images as the last update left them (slightly outside [0, 1] at most).
    extra: dict[str, Any] = {"config": cfg.to_dict(), "matching_loss": list(losses), **objective.extra()}
    if cfg.decode == "bound":  # how the set was matched; it is evaluated at the full factor, as IDC's test.py
        extra["matching_decode"] = {"decode": "bound", "bound": cfg.batch_syn}
    meta = CondensedMeta(dataset=real.name, num_classes=real.num_classes, method=objective.method, ipc=cfg.ipc,
                         factor=cfg.factor, normalized=False, mean=tuple(real.mean), std=tuple(real.std),
                         extra=extra)
    return CondensedSet(syn.detach().cpu(), labels, meta, source=source)


def _summary(result: Any) -> str:
    if isinstance(result, dict) and "last_mean" in result:
        return f"last {100 * result['last_mean']:.2f}% ± {100 * (result.get('last_std') or 0.0):.2f}"
    return str(result)


def condense_from_spec(dataset: str, spec: str, out: str | Path, *, data_root: str | Path | None = None,
                       device: str | torch.device = "auto", progress: bool = True, resume: bool = False
                       ) -> CondensedSet:
    """Load ``dataset`` and condense it with the config :func:`config_from_spec` builds from ``spec``."""
    from yoco.data.datasets import load_dataset

    real = load_dataset(dataset, root=data_root)
    cfg = config_from_spec(real.name, spec)
    return condense(real, cfg, out, device=device, resume=resume, progress=progress)


# ----------------------------------------------------------------------------------------------------------
# Checkpoints


def _identity(cfg: IDCConfig, real: RealDataset, objective: Objective | None = None) -> dict[str, Any]:
    """What must match for a checkpoint to be continued: the trajectory-changing config, the objective's own
    settings (none for IDC, so IDC checkpoints keep their identity) and the data."""
    d = {k: v for k, v in cfg.to_dict().items()
         if k not in RESUMABLE_FIELDS and not (k in LEGACY_VALUES and v == LEGACY_VALUES[k])}
    d.update((objective or _IDC).identity())
    d["dataset"] = real.name
    d["train_shape"] = list(real.train_images.shape)
    d["train_sha256"] = real.digest("train")  # the training images by content, not where they were read
    return json.loads(json.dumps(d))


def _write_checkpoint(path: Path, cfg: IDCConfig, real: RealDataset, state: _State,
                      objective: Objective | None = None) -> None:
    tensors = {"images": state.images, "rng": state.rng}
    if state.momentum is not None:
        tensors["momentum"] = state.momentum
    header = {"yoco_idc_checkpoint": CHECKPOINT_VERSION, "identity": json.dumps(_identity(cfg, real, objective)),
              "config": json.dumps(cfg.to_dict()), "iteration": str(state.iteration),
              "losses": json.dumps(state.losses)}
    if state.objective:  # JSON in the safetensors header, like the rest: no pickle
        header["objective"] = json.dumps(state.objective)
    write_tensors(path, tensors, header)


def _read_checkpoint(path: Path, cfg: IDCConfig, real: RealDataset, objective: Objective | None = None) -> _State:
    header, tensors = read_tensors(path, "IDC checkpoint")
    if header.get("yoco_idc_checkpoint") != CHECKPOINT_VERSION or "images" not in tensors or "rng" not in tensors:
        raise YocoError(f"{path}: not an IDC checkpoint of this yoco version (version "
                        f"{header.get('yoco_idc_checkpoint')!r}, expected {CHECKPOINT_VERSION!r})")
    try:
        saved, iteration, losses = json.loads(header["identity"]), int(header["iteration"]), json.loads(header["losses"])
        held = json.loads(header["objective"]) if "objective" in header else None
    except (KeyError, ValueError) as exc:
        raise YocoError(f"{path}: checkpoint header is damaged ({exc})") from None
    if not isinstance(saved, dict) or not isinstance(held, (dict, type(None))):
        raise YocoError(f"{path}: checkpoint header is damaged (its identity or objective is not a JSON object)")
    now = _identity(cfg, real, objective)
    if "train_sha256" not in saved:  # written before the data's digest was kept: checked by name and shape only
        now.pop("train_sha256")
    diff = [f"{k}: {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now"
            for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    if diff:
        raise YocoError(f"{path} was written by another configuration ({'; '.join(diff)}); "
                        "delete it or run without resume")
    if iteration > cfg.iterations:
        raise YocoError(f"{path} is at iteration {iteration}, past the {cfg.iterations} iterations asked for")
    return _State(tensors["images"], tensors.get("momentum"), iteration, tensors["rng"], losses, held)


# ----------------------------------------------------------------------------------------------------------
# Cost breakdown (for benchmarks)


def matching_cost_breakdown(real: RealDataset, cfg: IDCConfig, device: str | torch.device = "auto",
                            steps: int = 3, compile: bool = False, net_batch: int = 1) -> dict[str, Any]:
    """Seconds per inner step of the matching (with ``cfg.engine``) and the network pass, beside a plain one.

    ``match`` is step 1 of an inner step (every class drawn, augmented, matched, the images updated);
    ``net_train`` the real-data pass, per outer iteration when ``net_batch`` iterations' networks train side by
    side (their pass timed together and divided by ``net_batch``, as :func:`condense` amortises it); ``plain`` one
    ordinary forward/backward (w.r.t. the weights) of the same network on one class's real and decoded synthetic
    batches, times the number of classes, so ``match / plain`` is the price of gradient matching itself. One
    untimed warm-up step comes first; ``outer_iteration`` is ``inner`` times an inner step (the network build is
    negligible). ``compile`` as in :func:`condense`.
    """
    check_config(cfg, real)
    cfg = cfg.resolved(real.name)
    dev = resolve_device(device)
    g = torch.Generator().manual_seed(cfg.seed)
    start = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, random=cfg.init_random, generator=g)
    lr = cfg.effective_lr_img(real.name, _hw(real)[0])
    images = _ImageStepper(start.images.to(dev), None, lr, cfg)
    pool = _RealPool(real, dev)
    dsa = DSA(cfg.match_dsa, flip=real.flip)
    net_batch = net_group(cfg, real, dev, net_batch)
    nets = [_build_net(cfg, real, cfg.seed + i, dev) for i in range(net_batch)]
    opts = [_net_optimizer(net, cfg) for net in nets]
    net = nets[0]
    parts = {"match": 0.0, "net_train": 0.0, "plain": 0.0}

    def clock() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    for step in range(steps + 1):
        t0 = clock()
        with precision_scope(cfg.precision, dev):
            images.step(net, pool, dsa, g)
        t1 = clock()
        draws = [_net_draw(pool.labels.shape[0], cfg, g, cfg.net_images) for _ in nets]
        _train_nets(nets, pool, cfg, real.flip, draws, cfg.net_epochs, opts, compile)
        t2 = clock()
        for c in range(real.num_classes):
            draw = _draw(pool, c, cfg, g)
            x = pool.batch(draw.real_idx)
            syn_c = images.state()[0][c * cfg.ipc:(c + 1) * cfg.ipc].detach()
            dec = decode_images(syn_c, cfg.factor)[: cfg.batch_syn]
            both = torch.cat([x, normalize(dec, pool.mean, pool.std)])
            F.cross_entropy(net(both), torch.full((both.shape[0],), c, device=dev)).backward()
        net.zero_grad(set_to_none=True)
        t3 = clock()
        if step:
            parts["match"] += (t1 - t0) / steps
            parts["net_train"] += (t2 - t1) / steps / net_batch
            parts["plain"] += (t3 - t2) / steps
    inner = parts["match"] + parts["net_train"]
    return {"device": str(dev), "engine": cfg.engine, "net_batch": net_batch, "steps": steps,
            "classes": real.num_classes, **{f"{k}_s": v for k, v in parts.items()}, "inner_step_s": inner,
            "outer_iteration_s": inner * cfg.inner, "match_over_plain": parts["match"] / max(parts["plain"], 1e-12)}
