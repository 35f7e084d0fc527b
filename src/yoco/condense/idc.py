"""IDC condensation (Kim et al., ICML 2022): gradient matching with multi-formation, checkpointed.

Read top to bottom: the configuration and presets, the synthetic-set initialisation, the matching objective,
the loop (:func:`condense`), its checkpoints, and a small cost breakdown for benchmarks.

One outer iteration = a freshly initialised network, then ``inner`` steps of
  1. per class: 64 real images and the class's decoded synthetic images (at most 128), the same DSA seed for
     both, and the squared distance between the two batches' gradients w.r.t. the conv kernels;
  2. one SGD step on the stored synthetic images (the class distances summed);
  3. one pass of network training on 2000 random real images through the shared :func:`yoco.train.train`.
Synthetic images live in pixel space [0, 1] (clamped at the start of every outer iteration) and are
normalised with the real set's mean/std on the way into the network, like the real images.

Every random draw comes from one CPU ``torch.Generator`` owned by the run (networks are built under
``seeded(seed + iteration)``), so a checkpoint holding that generator's state, the images and the momentum
buffer continues bit-exactly on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from yoco.augment import DSA, parse_strategy
from yoco.data.condensed import CondensedMeta, CondensedSet, decode_images, normalize, save
from yoco.errors import YocoError
from yoco.io import read_tensors, write_tensors
from yoco.models import create_model, model_names
from yoco.train import TrainConfig, resolve_device, seeded, train

if TYPE_CHECKING:
    from yoco.data.datasets import RealDataset

log = logging.getLogger(__name__)

INITS = ("mix", "real", "noise")
METRICS = ("mse", "l1")
CHECKPOINT_VERSION = "1"
# Fields that change how long a run goes or what it reports, never its trajectory: a resumed run may differ here.
RESUMABLE_FIELDS = ("iterations", "checkpoint_every", "eval_every")


@dataclass
class IDCConfig:
    """IDC hyper-parameters; defaults are the published CIFAR-10 settings (IDC's ``--reproduce``).

    ``lr_img`` is IDC's rate for IPC 10: with ``scale_lr_img`` it is multiplied by ``ipc / 10`` as IDC's
    ``tune_lr_img`` does, so larger sets (more parameters sharing one summed loss) move as fast per image.
    ``net_images`` real images are trained on (``net_epochs`` passes, batch ``batch_real``) after every inner
    step; ``net_pretrain_epochs`` full passes over the real set precede matching on each new network
    (IDC uses 10 for ImageNet-10).
    """

    ipc: int = 10
    factor: int = 2
    iterations: int = 2000
    inner: int = 100
    batch_real: int = 64
    batch_syn: int = 128
    lr_img: float = 5e-3
    mom_img: float = 0.5
    scale_lr_img: bool = True
    metric: str = "mse"
    dsa: str = "color_crop_cutout_flip_scale_rotate"
    net_images: int = 2000
    net_epochs: int = 1
    net_lr: float = 0.01
    net_weight_decay: float = 5e-4
    net_mix: str = "cutmix"
    net_pretrain_epochs: int = 0
    model: str = "convnet3"
    width: int = 128
    init: str = "mix"
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def effective_lr_img(self) -> float:
        """The image learning rate actually used (``lr_img``, scaled by ``ipc / 10`` when asked)."""
        return self.lr_img * (self.ipc / 10 if self.scale_lr_img else 1.0)


def quick(cfg: IDCConfig) -> IDCConfig:
    """A CPU-sized version of ``cfg`` for smoke runs: far fewer iterations, smaller batches and network."""
    return dataclasses.replace(cfg, iterations=10, inner=5, batch_real=32, batch_syn=64, net_images=256,
                               width=32, net_pretrain_epochs=0, checkpoint_every=5)


_IDC = IDCConfig()
# Per-dataset settings from IDC's misc/reproduce.py: digit and fashion sets match with the L1 distance at a
# much smaller image rate; ImageNet subsets use ResNet-10-AP, factor 3, 500 outer iterations.
PRESETS: dict[str, IDCConfig] = {
    "idc": _IDC,
    "cifar10": _IDC,
    "cifar100": _IDC,
    "svhn": dataclasses.replace(_IDC, net_images=500),
    "mnist": dataclasses.replace(_IDC, metric="l1", lr_img=1e-4, net_images=500, dsa="color_crop", net_mix="none"),
    "fashion-mnist": dataclasses.replace(_IDC, metric="l1", lr_img=1e-4, net_images=500),
    "imagenet10": dataclasses.replace(_IDC, factor=3, iterations=500, metric="l1", lr_img=3e-3, net_images=500,
                                      net_pretrain_epochs=10, model="resnet10_ap", width=64),
    "imagenet100": dataclasses.replace(_IDC, factor=3, iterations=500, metric="l1", lr_img=1e-3, net_images=500,
                                       batch_real=128, net_lr=0.1, net_weight_decay=1e-4, model="resnet10_ap",
                                       width=64),
    "cpu-quick": quick(_IDC),
}


def preset_for(dataset: str) -> IDCConfig:
    """The preset named after ``dataset``, or the published CIFAR-10 settings for any other dataset."""
    return PRESETS.get(dataset, _IDC)


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
    base = preset_for(dataset)
    name = pairs.pop("preset", None)
    if name == "cpu-quick":
        base = quick(base)
    elif name is not None:
        if name not in PRESETS:
            raise YocoError(f"unknown IDC preset {name!r}; known: {', '.join(PRESETS)}")
        base = PRESETS[name]
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    overrides: dict[str, Any] = {}
    for key, value in pairs.items():
        if key not in fields:
            raise YocoError(f"condense spec: unknown field {key!r}; known: preset, {', '.join(fields)}")
        overrides[key] = _parse_value(key, value, type(fields[key]))
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
    if cfg.ipc > min(counts):
        c = counts.index(min(counts))
        raise YocoError(f"IDC: ipc {cfg.ipc} is larger than class {c} of {real.name}, which has {counts[c]} images")
    if h % cfg.factor or w % cfg.factor:
        raise YocoError(f"IDC: factor {cfg.factor} does not divide {real.name}'s image size {h}x{w}")
    if cfg.init not in INITS:
        raise YocoError(f"IDC: unknown init {cfg.init!r}; choose {', '.join(INITS)}")
    if cfg.metric not in METRICS:
        raise YocoError(f"IDC: unknown metric {cfg.metric!r}; choose {', '.join(METRICS)}")
    if cfg.net_mix not in ("cutmix", "mixup", "none"):
        raise YocoError(f"IDC: unknown net_mix {cfg.net_mix!r}; choose cutmix, mixup or none")
    if cfg.model not in model_names():
        raise YocoError(f"IDC: unknown model {cfg.model!r}; known: {', '.join(model_names())}")
    parse_strategy(cfg.dsa)


# ----------------------------------------------------------------------------------------------------------
# Initialisation


def init_synthetic(real: RealDataset, ipc: int, factor: int, init: str = "mix",
                   generator: torch.Generator | None = None) -> CondensedSet:
    """Starting synthetic set: ``ipc`` stored images per class, class-major, in pixel space [0, 1].

    ``mix`` (IDC's multi-formation start): every stored image holds ``factor**2`` random real images of its
    class, each downsampled by ``factor`` (area average) and tiled row-major, so decoding the stored image
    gives those real images back, blurred by the down/up-sampling. ``real``: ``ipc`` random real images stored
    whole (IDC calls this ``random``). ``noise``: uniform noise.
    For ``mix`` and ``real``, ``meta.extra["source_indices"][j]`` is the real training index behind decoded
    image ``j`` (``real``: behind stored image ``j``).
    """
    if init not in INITS:
        raise YocoError(f"unknown init {init!r}; choose {', '.join(INITS)}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    k, c, h, w = real.num_classes, real.channels, *_hw(real)
    f = factor if init == "mix" else 1
    labels = torch.arange(k).repeat_interleave(ipc)
    extra: dict[str, Any] = {"init": init}
    if init == "noise":
        images = torch.rand(k * ipc, c, h, w, generator=g)
    else:
        picks = torch.cat([_sample(idx, ipc * f * f, g) for idx in real.class_indices("train")])
        x = real.train_images[picks].to(torch.float32) / 255.0
        if f > 1:
            # Tile j of stored image i is source i * f^2 + j; the reshape is decode_images' split, inverted.
            tiles = F.avg_pool2d(x, f).reshape(k * ipc, f, f, c, h // f, w // f)
            x = tiles.permute(0, 3, 1, 4, 2, 5).reshape(k * ipc, c, h, w)
        images = x
        extra["source_indices"] = picks.tolist()
    meta = CondensedMeta(dataset=real.name, num_classes=k, method=f"idc-init-{init}", ipc=ipc, factor=factor,
                         normalized=False, mean=tuple(real.mean), std=tuple(real.std), extra=extra)
    return CondensedSet(images.clamp(0, 1), labels, meta, source=f"{real.name}:idc-init-{init}")


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

    The real gradient is a constant target; the synthetic one keeps its graph so the distance can be
    differentiated w.r.t. the synthetic images.
    """
    g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
    g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
    total = x_syn.new_zeros(())
    for gr, gs in zip(g_real, g_syn):
        diff = gr.detach() - gs
        total = total + (diff.pow(2).sum() if metric == "mse" else diff.abs().sum())
    return total


def _class_batches(pool: _RealPool, syn_c: torch.Tensor, c: int, cfg: IDCConfig, dsa: DSA, g: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One class's augmented real and synthetic batches (normalised), with the same DSA seed for both."""
    idx = pool.by_class[c]
    x_real = pool.batch(idx[torch.randperm(len(idx), generator=g)[: cfg.batch_real]])
    dec = decode_images(syn_c, cfg.factor)
    if dec.shape[0] > cfg.batch_syn:
        dec = dec[torch.randperm(dec.shape[0], generator=g)[: cfg.batch_syn].to(dec.device)]
    x_syn = normalize(dec, pool.mean, pool.std)
    seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    y_real = torch.full((x_real.shape[0],), c, dtype=torch.long, device=x_real.device)
    y_syn = torch.full((x_syn.shape[0],), c, dtype=torch.long, device=x_syn.device)
    return dsa(x_real, seed=seed, shared=True), y_real, dsa(x_syn, seed=seed, shared=True), y_syn


def _match_step(net: nn.Module, pool: _RealPool, syn: torch.Tensor, cfg: IDCConfig, dsa: DSA,
                g: torch.Generator) -> torch.Tensor:
    """Accumulate d(sum over classes of the distance)/d(syn) into ``syn.grad``; return the summed distance.

    Each class is differentiated on its own so only one class's double-backward graph is alive at a time;
    the accumulated gradient equals that of the summed loss.
    """
    params = matched_params(net)
    total = torch.zeros((), device=syn.device)
    for c in range(len(pool.by_class)):
        batches = _class_batches(pool, syn[c * cfg.ipc : (c + 1) * cfg.ipc], c, cfg, dsa, g)
        loss = gradient_distance(net, params, *batches, metric=cfg.metric)
        if syn.requires_grad:
            loss.backward(inputs=[syn])
        total += loss.detach()
    return total


def matching_loss(real: RealDataset, syn: CondensedSet, net: nn.Module, cfg: IDCConfig, seed: int = 0) -> float:
    """IDC's objective for ``syn`` on a fixed ``net``: the class-summed gradient distance of one inner step.

    Every random draw (real batches, synthetic subsets, DSA) comes from ``seed``, so two sets can be compared
    on exactly the same batches and network, e.g. before and after condensation.
    """
    device = next(net.parameters()).device
    order = torch.argsort(syn.labels, stable=True)
    if syn.labels[order].tolist() != torch.arange(real.num_classes).repeat_interleave(cfg.ipc).tolist():
        raise YocoError(f"{syn.source}: matching needs exactly {cfg.ipc} stored images per class")
    images = syn.pixels()[order].to(device)
    g = torch.Generator().manual_seed(seed)
    net.train()
    return float(_match_step(net, _RealPool(real, device), images, cfg, DSA(cfg.dsa, flip=real.flip), g))


def _build_net(cfg: IDCConfig, real: RealDataset, seed: int, device: torch.device) -> nn.Module:
    with seeded(seed):
        net = create_model(cfg.model, real.num_classes, real.channels, _hw(real), width=cfg.width)
    return net.to(device).train()


def _net_train_config(cfg: IDCConfig, flip: bool, epochs: int, seed: int) -> TrainConfig:
    # No lr milestones: the shared schedule would put a 1-epoch run's drops at epoch 0. Cutout is left out
    # when CutMix is on, as IDC's network update does.
    ops = [o for o in parse_strategy(cfg.dsa) if not (o == "cutout" and cfg.net_mix == "cutmix")]
    return TrainConfig(epochs=epochs, batch_size=cfg.batch_real, lr=cfg.net_lr, weight_decay=cfg.net_weight_decay,
                       milestones=(), dsa="_".join(ops) or "none", flip=flip, mix=cfg.net_mix, seed=seed)


def _net_optimizer(net: nn.Module, cfg: IDCConfig) -> torch.optim.Optimizer:
    """One optimizer per outer iteration's network, so its momentum carries across the inner steps (as IDC)."""
    return torch.optim.SGD(net.parameters(), lr=cfg.net_lr, momentum=0.9, weight_decay=cfg.net_weight_decay)


def _train_net(net: nn.Module, pool: _RealPool, cfg: IDCConfig, flip: bool, g: torch.Generator,
               n_images: int | None, epochs: int, opt: torch.optim.Optimizer | None = None) -> None:
    """Train ``net`` on ``n_images`` random real images (all when None) with the shared training loop."""
    n = pool.labels.shape[0]
    pick = torch.randperm(n, generator=g)[:n_images] if n_images is not None else torch.arange(n)
    seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    train(net, pool.batch(pick), pool.labels[pick.to(pool.labels.device)],
          _net_train_config(cfg, flip, epochs, seed), progress=False, optimizer=opt)


# ----------------------------------------------------------------------------------------------------------
# The loop


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


def condense(real: RealDataset, cfg: IDCConfig, out: str | Path, *, device: str | torch.device = "auto",
             resume: bool = False, progress: bool = True,
             eval_fn: Callable[[CondensedSet], Any] | None = None) -> CondensedSet:
    """Condense ``real`` with IDC into ``cfg.ipc`` stored images per class and save the set to ``out``.

    Every ``cfg.checkpoint_every`` outer iterations the run state goes atomically to ``<out>.ckpt``;
    ``resume=True`` continues from it (bit-exactly on the CPU) after checking it was written by the same
    configuration (``iterations`` may grow). With ``eval_fn`` and ``cfg.eval_every > 0``, the current set is
    passed to ``eval_fn`` every ``eval_every`` iterations and the result logged. The checkpoint is removed
    once the final set is written.
    """
    check_config(cfg, real)
    dev = resolve_device(device)
    out = Path(out)
    ckpt = checkpoint_path(out)
    state = None
    if resume and ckpt.is_file():
        state = _read_checkpoint(ckpt, cfg, real)
        log.info("resuming %s from iteration %d", ckpt, state.iteration)
    elif resume:
        log.info("no checkpoint at %s; starting from scratch", ckpt)
    elif ckpt.is_file():
        log.warning("%s exists and will be overwritten (pass resume=True to continue it)", ckpt)
    if state is None:
        g = torch.Generator().manual_seed(cfg.seed)
        start = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, generator=g)
        state = _State(start.images, None, 0, g.get_state(), [])
    g = torch.Generator()
    g.set_state(state.rng)
    labels = torch.arange(real.num_classes).repeat_interleave(cfg.ipc)
    syn = state.images.to(dev).requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=cfg.effective_lr_img, momentum=cfg.mom_img)
    if state.momentum is not None:
        opt.state[syn]["momentum_buffer"] = state.momentum.to(dev)
    losses = list(state.losses)
    pool = _RealPool(real, dev)
    dsa = DSA(cfg.dsa, flip=real.flip)
    log_every = max(1, cfg.iterations // 50)
    bar = tqdm(range(state.iteration, cfg.iterations), initial=state.iteration, total=cfg.iterations,
               desc=f"IDC {real.name} ipc {cfg.ipc}", disable=not progress, dynamic_ncols=True)
    for it in bar:
        with torch.no_grad():
            syn.clamp_(0, 1)
        net = _build_net(cfg, real, cfg.seed + it, dev)
        net_opt = _net_optimizer(net, cfg)
        if cfg.net_pretrain_epochs:
            _train_net(net, pool, cfg, real.flip, g, None, cfg.net_pretrain_epochs, net_opt)
        total = torch.zeros((), device=dev)
        for _ in range(cfg.inner):
            opt.zero_grad(set_to_none=True)
            total += _match_step(net, pool, syn, cfg, dsa, g)
            opt.step()
            _train_net(net, pool, cfg, real.flip, g, cfg.net_images, cfg.net_epochs, net_opt)
        losses.append(float(total) / cfg.inner)
        done = it + 1
        bar.set_postfix(match=f"{losses[-1]:.4g}", refresh=False)
        if done % log_every == 0 or done == cfg.iterations:
            log.info("IDC iteration %d/%d: matching loss %.6g", done, cfg.iterations, losses[-1])
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.iterations:
            momentum = opt.state[syn].get("momentum_buffer")
            _write_checkpoint(ckpt, cfg, real, _State(syn.detach(), momentum, done, g.get_state(), losses))
        if eval_fn is not None and cfg.eval_every and done % cfg.eval_every == 0:
            result = eval_fn(_result(syn, labels, cfg, real, losses, f"{out}@{done}"))
            log.info("IDC iteration %d: evaluation %s", done, _summary(result))
    final = _result(syn, labels, cfg, real, losses, str(out))
    save(final, out)
    ckpt.unlink(missing_ok=True)
    return final


def _result(syn: torch.Tensor, labels: torch.Tensor, cfg: IDCConfig, real: RealDataset, losses: list[float],
            source: str) -> CondensedSet:
    meta = CondensedMeta(dataset=real.name, num_classes=real.num_classes, method="idc", ipc=cfg.ipc,
                         factor=cfg.factor, normalized=False, mean=tuple(real.mean), std=tuple(real.std),
                         extra={"config": cfg.to_dict(), "matching_loss": losses})
    return CondensedSet(syn.detach().clamp(0, 1).cpu(), labels, meta, source=source)


def _summary(result: Any) -> str:
    if isinstance(result, dict) and "last_mean" in result:
        return f"last {100 * result['last_mean']:.2f}% ± {100 * result.get('last_std', 0.0):.2f}"
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


def _identity(cfg: IDCConfig, real: RealDataset) -> dict[str, Any]:
    """What must match for a checkpoint to be continued: the trajectory-changing config and the data."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_FIELDS}
    d["dataset"] = real.name
    d["train_shape"] = list(real.train_images.shape)
    return json.loads(json.dumps(d))


def _write_checkpoint(path: Path, cfg: IDCConfig, real: RealDataset, state: _State) -> None:
    tensors = {"images": state.images, "rng": state.rng}
    if state.momentum is not None:
        tensors["momentum"] = state.momentum
    header = {"yoco_idc_checkpoint": CHECKPOINT_VERSION, "identity": json.dumps(_identity(cfg, real)),
              "config": json.dumps(cfg.to_dict()), "iteration": str(state.iteration),
              "losses": json.dumps(state.losses)}
    write_tensors(path, tensors, header)


def _read_checkpoint(path: Path, cfg: IDCConfig, real: RealDataset) -> _State:
    header, tensors = read_tensors(path, "IDC checkpoint")
    if header.get("yoco_idc_checkpoint") != CHECKPOINT_VERSION or "images" not in tensors:
        raise YocoError(f"{path}: not an IDC checkpoint of this yoco version")
    saved, now = json.loads(header["identity"]), _identity(cfg, real)
    diff = [f"{k}: {saved.get(k)!r} in the checkpoint, {now.get(k)!r} now"
            for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    if diff:
        raise YocoError(f"{path} was written by another configuration ({'; '.join(diff)}); "
                        "delete it or run without resume")
    iteration = int(header["iteration"])
    if iteration > cfg.iterations:
        raise YocoError(f"{path} is at iteration {iteration}, past the {cfg.iterations} iterations asked for")
    return _State(tensors["images"], tensors.get("momentum"), iteration, tensors["rng"],
                  json.loads(header["losses"]))


# ----------------------------------------------------------------------------------------------------------
# Cost breakdown (for benchmarks)


def matching_cost_breakdown(real: RealDataset, cfg: IDCConfig, device: str | torch.device = "auto",
                            steps: int = 3) -> dict[str, Any]:
    """Seconds per inner step of each part of an IDC iteration, next to a plain forward/backward.

    Parts: ``data`` (sampling, decoding, DSA of both batches), ``match`` (both gradients and the
    double backward to the images), ``update`` (the SGD step on the images), ``net_train`` (the real-data
    pass). ``plain`` is one ordinary forward/backward (w.r.t. the weights) of the same network on the same
    augmented batches, so ``match / plain`` is the price of gradient matching itself. One untimed warm-up step
    comes first; ``outer_iteration`` is ``inner`` times an inner step (the network build is negligible).
    """
    check_config(cfg, real)
    dev = resolve_device(device)
    g = torch.Generator().manual_seed(cfg.seed)
    syn = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, generator=g).images.to(dev).requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=cfg.effective_lr_img, momentum=cfg.mom_img)
    pool = _RealPool(real, dev)
    dsa = DSA(cfg.dsa, flip=real.flip)
    net = _build_net(cfg, real, cfg.seed, dev)
    params = matched_params(net)
    parts = {"data": 0.0, "match": 0.0, "update": 0.0, "net_train": 0.0, "plain": 0.0}

    def clock() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    for step in range(steps + 1):
        spent = dict.fromkeys(parts, 0.0)
        opt.zero_grad(set_to_none=True)
        for c in range(real.num_classes):
            t0 = clock()
            batches = _class_batches(pool, syn[c * cfg.ipc : (c + 1) * cfg.ipc], c, cfg, dsa, g)
            t1 = clock()
            gradient_distance(net, params, *batches, metric=cfg.metric).backward(inputs=[syn])
            t2 = clock()
            x_real, y_real, x_syn, y_syn = batches
            (F.cross_entropy(net(x_real), y_real) + F.cross_entropy(net(x_syn.detach()), y_syn)).backward()
            t3 = clock()
            spent["data"] += t1 - t0
            spent["match"] += t2 - t1
            spent["plain"] += t3 - t2
        net.zero_grad(set_to_none=True)
        t0 = clock()
        opt.step()
        t1 = clock()
        _train_net(net, pool, cfg, real.flip, g, cfg.net_images, cfg.net_epochs)
        t2 = clock()
        spent["update"], spent["net_train"] = t1 - t0, t2 - t1
        if step:
            for k, v in spent.items():
                parts[k] += v / steps
    inner = parts["data"] + parts["match"] + parts["update"] + parts["net_train"]
    return {"device": str(dev), "steps": steps, "classes": real.num_classes,
            **{f"{k}_s": v for k, v in parts.items()}, "inner_step_s": inner,
            "outer_iteration_s": inner * cfg.inner, "match_over_plain": parts["match"] / max(parts["plain"], 1e-12)}
