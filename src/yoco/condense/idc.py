"""IDC condensation (Kim et al., ICML 2022): gradient matching with multi-formation, checkpointed.

The configuration and presets are in :mod:`.config`, the synthetic-set initialisation in :mod:`.init`, the
matching objective and the inner step (two engines that give the same result) in :mod:`.matching`; this module
holds the loop (:func:`condense`), its networks and its checkpoints.

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

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from yoco import protocol
from yoco.augment import DSA, parse_strategy
from yoco.condense.config import (
    CHECKPOINT_VERSION,
    GPU_NET_GROUP,
    LEGACY_VALUES,
    RESUMABLE_FIELDS,
    IDCConfig,
    _hw,
    check_config,
)
from yoco.condense.init import init_synthetic
from yoco.condense.matching import (
    _IDC,
    Objective,
    _draw,
    _RealPool,
    inner_step_batched,
    inner_step_sequential,
)
from yoco.data.condensed import (
    CondensedMeta,
    CondensedSet,
    decode,
    save,
)
from yoco.errors import YocoError
from yoco.files import read_tensors, write_tensors
from yoco.models import create_model
from yoco.models.stacked import batchable
from yoco.progress import tqdm
from yoco.provenance import PROVENANCE_KEY, provenance
from yoco.runtime import Runtime, precision_scope, runtime_or_default, seeded
from yoco.train import TrainConfig, train, train_batched

if TYPE_CHECKING:
    from yoco.data.datasets import RealDataset

log = logging.getLogger(__name__)


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
    # IDC condense.py's optim_net takes args.momentum, the same argument (and value) as its evaluation's
    return torch.optim.SGD(net.parameters(), lr=cfg.net_lr, momentum=protocol.MOMENTUM,
                           weight_decay=cfg.net_weight_decay)


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


def condense(real: RealDataset, cfg: IDCConfig, out: str | Path, *, runtime: Runtime | None = None,
             resume: bool = False, eval_fn: Callable[[CondensedSet], Any] | None = None,
             keep_checkpoint: bool = False, net_batch: int | None = None,
             objective: Objective | None = None) -> CondensedSet:
    """Condense ``real`` with IDC into ``cfg.ipc`` stored images per class and save the set to ``out``.

    Every ``cfg.checkpoint_every`` outer iterations the run state goes atomically to ``<out>.ckpt``;
    ``resume=True`` continues from it (bit-exactly on the CPU with the same engine) after checking it was
    written by the same configuration (``iterations`` may grow). With ``eval_fn`` and ``cfg.eval_every > 0``, the
    current set is passed to ``eval_fn`` every ``eval_every`` iterations and the result logged. The checkpoint
    is removed once the final set is written, unless ``keep_checkpoint`` (then it holds the final state, so a
    later call with more ``iterations`` continues the same run: how a schedule is spread over short GPU loans).
    ``runtime`` (:class:`yoco.runtime.Runtime`): the device, progress bar, and ``compile``, which runs the
    network's training steps between matching steps as one compiled graph each (augmentation,
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
    rt = runtime_or_default(runtime)
    dev = rt.device
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
               disable=not rt.progress, dynamic_ncols=True)
    first = state.iteration
    while first < cfg.iterations:
        its = list(range(first, min(first + group, cfg.iterations)))
        plans = [_plan(pool, cfg, g) for _ in its]
        for it, plan, nets in zip(its, plans, _matching_nets(cfg, real, pool, its, plans, dev, rt.compile), strict=True):
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
