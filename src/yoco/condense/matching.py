"""The matching objective and the inner step: a class's gradient distance between real and decoded synthetic
batches (:func:`gradient_distance`), the :class:`Objective` hook another method (MDC) rides, and the two engines
of one inner step: IDC's sequential per-class loop and the batched closed form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from yoco.augment import DSA
from yoco.condense.config import IDCConfig
from yoco.data.condensed import (
    CondensedSet,
    decode_bound_images,
    decode_images,
    normalize,
)
from yoco.errors import YocoError
from yoco.models.stacked import stacked_forward

if TYPE_CHECKING:
    from yoco.data.datasets import RealDataset


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
