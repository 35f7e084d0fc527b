"""The one training loop: evaluation, training dynamics and condensation all train networks through it.

The whole (condensed) training set lives on the device as one tensor; every epoch is a seeded permutation
cut into batches, augmented as whole batches (DSA, then CutMix/mixup with probability ``mix_p``), and one SGD
step per batch. The learning rate drops by ``gamma`` at fixed fractions of training (x0.2 at 2/3 and 5/6 in
IDC's protocol). Hooks see every batch's outputs (for training dynamics) and the model after every epoch
(for test checkpoints), so no caller needs its own loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from yoco import protocol
from yoco.allocator import tune_allocator
from yoco.augment import DSA, ImageNetAug, MixPlan, cutmix_plan, mix, mixup_plan, to_device
from yoco.errors import YocoError
from yoco.models.stacked import batchable, stacked_forward
from yoco.progress import tqdm
from yoco.runtime import compile_mode, compiled, precision_scope


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (defaults: IDC's evaluation protocol, from :mod:`yoco.protocol`).

    Augmentation per batch: ``base_aug`` (``"imagenet"``: :class:`~yoco.augment.ImageNetAug`, which needs the
    set's ``mean``/``std`` to work in pixel space), then DSA ``dsa`` with per-sample parameters (``flip`` False
    drops mirroring), then ``mix`` (CutMix or mixup) with probability ``mix_p``.

    ``None`` in ``epochs``, ``base_aug``, ``dsa``, ``flip`` or ``mix_p`` means "the protocol's for the set";
    :meth:`resolve` fills them in before :func:`train` runs. ``precision`` is the arithmetic of the training steps
    (:data:`yoco.protocol.PRECISIONS`, :func:`precision_scope`); test passes stay in float32.
    """

    epochs: int | None = None
    batch_size: int = protocol.BATCH_SIZE
    lr: float = protocol.LR
    momentum: float = protocol.MOMENTUM
    weight_decay: float = protocol.WEIGHT_DECAY
    milestones: tuple[float, ...] = protocol.MILESTONES
    gamma: float = protocol.GAMMA
    base_aug: str | None = None
    dsa: str | None = None
    flip: bool | None = None
    mix: str = protocol.MIX
    mix_p: float | None = None
    mix_beta: float = protocol.MIX_BETA
    seed: int = 0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    precision: str = protocol.PRECISION

    def __post_init__(self) -> None:
        self.milestones = tuple(self.milestones)
        if self.precision not in protocol.PRECISIONS:
            raise YocoError(f"precision must be one of {', '.join(protocol.PRECISIONS)}, got {self.precision!r}")
        if self.mean is not None:
            self.mean = tuple(self.mean)
        if self.std is not None:
            self.std = tuple(self.std)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise YocoError(f"training {name} must be a whole number >= 1, got {value!r}")
        if self.lr < 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise YocoError(f"training lr and weight decay must be >= 0 and momentum in [0, 1), got lr {self.lr}, "
                            f"weight decay {self.weight_decay}, momentum {self.momentum}")
        if self.mix_p is not None and not 0.0 <= self.mix_p <= 1.0:
            raise YocoError(f"mix_p must be a probability, got {self.mix_p}")

    def to_dict(self) -> dict:
        """The fields as JSON-ready values; the protocol's precision is left out, so configs (and the cache keys
        made from them) written before the option existed read the same."""
        d = dataclasses.asdict(self)
        if d["precision"] == protocol.PRECISION:
            del d["precision"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild a config from :meth:`to_dict` (JSON turns tuples into lists)."""
        return cls(**{**d, "milestones": tuple(d.get("milestones", protocol.MILESTONES))})

    def resolve(self, dataset: str, purpose: str, *, epochs: int, mean: tuple[float, ...],
                std: tuple[float, ...], flip: bool) -> TrainConfig:
        """This config with every "protocol" field filled in for ``dataset`` (``purpose``: eval or dynamics)."""
        aug = protocol.augmentation(dataset, purpose)
        return dataclasses.replace(
            self, epochs=self.epochs if self.epochs is not None else epochs,
            base_aug=self.base_aug if self.base_aug is not None else aug["base_aug"],
            dsa=self.dsa if self.dsa is not None else aug["dsa"],
            flip=self.flip if self.flip is not None else flip,
            mix_p=self.mix_p if self.mix_p is not None else aug["mix_p"],
            mean=tuple(mean) if self.mean is None else self.mean, std=tuple(std) if self.std is None else self.std)


@dataclass
class Batch:
    """What a batch hook sees: the epoch, which samples were in the batch, and the (detached) logits."""

    epoch: int
    indices: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor


def milestone_epochs(cfg: TrainConfig) -> list[int]:
    """Epochs (0-based) from which the learning rate is multiplied by ``gamma`` once more.

    A milestone that would fall on epoch 0 (runs of fewer than 2 epochs) is dropped: training always
    starts at the base rate.
    """
    return [e for e in (int(cfg.epochs * m) for m in cfg.milestones) if e > 0]


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate used during ``epoch`` (0-based) under the multi-step schedule."""
    drops = sum(epoch >= m for m in milestone_epochs(cfg))
    return cfg.lr * cfg.gamma**drops


class _Recipe:
    """One network's augmentation and batch order, every draw from its own generator in a fixed order.

    Per epoch a permutation; per batch the base augmentation, DSA, the mixing coin and the mix. Sharing it keeps
    the single-network loop and the batched one drawing exactly the same numbers for the same seed.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.mix not in ("cutmix", "mixup", "none"):
            raise YocoError(f"unknown mix {cfg.mix!r}; choose cutmix, mixup or none")
        self.cfg = cfg
        self.g = torch.Generator().manual_seed(cfg.seed)
        self.dsa = DSA(cfg.dsa, flip=cfg.flip)
        self.base = _base_augmentation(cfg)
        self.plan_mix = {"cutmix": cutmix_plan, "mixup": mixup_plan}.get(cfg.mix)

    def order(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.g)

    def draw(self, n: int, h: int, w: int) -> tuple[dict[str, torch.Tensor], MixPlan | None]:
        """A batch's DSA parameters and mixing plan (None: this batch is not mixed), on the CPU."""
        dsa, plans = self.draw_all([self], n, h, w)
        return dsa, plans[0]

    @staticmethod
    def draw_all(recipes: list[_Recipe], n: int, h: int, w: int
                 ) -> tuple[dict[str, torch.Tensor], list[MixPlan | None]]:
        """:meth:`draw` for recipes of one kind at once: their DSA parameters row-wise (``n`` rows each) and
        each one's mixing plan. Each generator draws the DSA's numbers, then the mixing coin, then the plan when
        the coin says mix; the arithmetic on them is done once (:meth:`DSA.draw_many`)."""
        first = recipes[0]
        mixes = first.plan_mix is not None
        dsa, coins = first.dsa.draw_many(n, h, w, [r.g for r in recipes], extra=int(mixes))
        if not mixes:
            return dsa, [None] * len(recipes)
        return dsa, [first.plan_mix(n, h, w, r.g, r.cfg.mix_beta) if coin < r.cfg.mix_p else None
                     for r, coin in zip(recipes, coins[:, 0].tolist(), strict=True)]

    def batch(self, images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """The augmented batch ``idx`` as ``(x, y_a, y_b, lam)``; without mixing ``y_b`` is ``y_a`` and lam 1."""
        dev_idx = to_device(idx, images.device)
        x, y = images[dev_idx], labels[dev_idx]
        if self.base is not None:
            x = self.base(x, generator=self.g)
        dsa, plan = self.draw(x.shape[0], x.shape[2], x.shape[3])
        x = self.dsa.apply(x, dsa)
        return mix(x, y, plan) if plan is not None else (x, y, y, 1.0)


@dataclass
class _Draws:
    """One step's random choices for N networks, packed onto the device: what the device part of a batched step
    reads (:func:`_augment_many`), so that part is the same operations at every step."""

    dsa: dict[str, torch.Tensor]  # DSA parameters, [N * B, k] each (empty: no DSA)
    partner: torch.Tensor | None  # [N, B] each image's mixing partner, itself where a network does not mix
    box: torch.Tensor | None  # [N, 1, 1, H, W] CutMix's pasted region (None: mixup, or no mixing)
    lam: torch.Tensor  # [2, N] the weights of each network's own labels and of its partners' labels


def _gather(recipes: list[_Recipe], images: torch.Tensor, labels: torch.Tensor, idx: list[torch.Tensor]
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each network's batch ``idx[i]`` of ``images[i]`` (``[N, n, ...]``, or ``[n, ...]`` shared by all) as one
    ``[N, B, ...]`` tensor, with its labels; a base augmentation (ImageNet) is applied here, network by network."""
    dev = images.device
    idx_dev = to_device(torch.stack(idx), dev)
    if images.dim() == 4:
        x, y = images[idx_dev], labels[idx_dev]
    else:
        rows = torch.arange(len(idx), device=dev).view(-1, 1)
        x, y = images[rows, idx_dev], labels[rows, idx_dev]
    if recipes[0].base is not None:
        x = torch.stack([r.base(x[i], generator=r.g) for i, r in enumerate(recipes)])
    return x, y


def _draw_many(recipes: list[_Recipe], b: int, h: int, w: int, device: torch.device) -> _Draws:
    """Every network's DSA parameters and mixing plan for a batch of ``b`` images, each from its own generator in
    the order its own loop draws them (:meth:`_Recipe.draw`), packed onto ``device``."""
    drawn, plans = _Recipe.draw_all(recipes, b, h, w)
    dsa = DSA.moved(drawn, device)
    weights = [1.0 if p is None else p.lam for p in plans]
    lam = torch.tensor([weights, [1 - v for v in weights]], dtype=torch.float32)
    if recipes[0].plan_mix is None:
        return _Draws(dsa, None, None, to_device(lam, device))
    # built from Python lists in a few operations, not a few per network (the draws are already per network)
    same = torch.arange(b)
    partner = torch.stack([same if p is None else p.perm for p in plans])
    box = None
    if recipes[0].cfg.mix == "cutmix":
        y0, y1, x0, x1 = torch.tensor([(0, 0, 0, 0) if p is None else p.box for p in plans]).view(-1, 4, 1, 1).unbind(1)
        ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        box = ((ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)).view(len(plans), 1, 1, h, w)
    return _Draws(dsa, to_device(partner, device), None if box is None else to_device(box, device),
                  to_device(lam, device))


def _augment_many(x: torch.Tensor, y: torch.Tensor, d: _Draws, dsa: DSA
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The device part: DSA on all ``[N, B, ...]`` images in one pass, then each network's mix (identity for the
    networks that do not mix, exactly). Returns ``(x, y_a, y_b)``; weights are ``d.lam``."""
    if d.dsa:
        x = dsa.apply(x.flatten(0, 1), d.dsa).view_as(x)
    if d.partner is None:
        return x, y, y
    rows = torch.arange(x.shape[0], device=x.device).view(-1, 1)
    other = x[rows, d.partner]
    if d.box is not None:
        x = torch.where(d.box, other, x)
    else:
        shape = (-1,) + (1,) * (x.dim() - 1)
        x = d.lam[0].view(shape) * x + d.lam[1].view(shape) * other
    return x, y, y[rows, d.partner]


def _loss(out: torch.Tensor, ya: torch.Tensor, yb: torch.Tensor, lam: float) -> torch.Tensor:
    """Cross-entropy against class indices ``[B]`` or label distributions ``[B, C]`` (soft cross-entropy,
    which is the KL divergence to the distribution up to a constant), mixed with weight ``lam``."""
    if lam == 1.0:
        return F.cross_entropy(out, ya)
    return lam * F.cross_entropy(out, ya) + (1 - lam) * F.cross_entropy(out, yb)


def _losses(out: torch.Tensor, ya: torch.Tensor, yb: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """The sum over networks of :func:`_loss`, for ``out [N, B, K]`` and the ``lam [2, N]`` of :func:`_draw_many`,
    in a fixed number of operations."""
    n_nets, b = out.shape[:2]

    def ce(y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.flatten(0, 1), y.flatten(0, 1), reduction="none").view(n_nets, b).mean(1)

    if ya is yb:
        return ce(ya).sum()
    return (lam[0] * ce(ya) + lam[1] * ce(yb)).sum()


def _filled(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` ready to train: epochs required; augmentation left to "the protocol" takes the CIFAR-like recipe."""
    if cfg.epochs is None:
        raise YocoError("training epochs are not set; give epochs or call TrainConfig.resolve for a dataset")
    generic = protocol.augmentation("")
    return dataclasses.replace(cfg, **{k: v for k, v in generic.items() if getattr(cfg, k) is None})


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    *,
    on_batch: Callable[[Batch], None] | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    optimizer: torch.optim.Optimizer | None = None,
    compile: bool = False,
) -> nn.Module:
    """Train ``model`` in place on ``images``/``labels`` (already on the model's device, normalised).

    ``labels`` are class indices ``[N]`` or label distributions ``[N, C]`` (soft labels). ``on_batch`` receives
    every batch's logits, computed on the augmented (possibly mixed) inputs; ``on_epoch(epoch, model)`` runs after
    each epoch. Pass ``optimizer`` to keep momentum across calls (condensation trains one network in short bursts).
    ``compile`` runs the training steps' forward and backward through ``torch.compile`` (:func:`compiled`).
    Deterministic on the CPU for a given ``cfg.seed`` (and ``compile``).
    """
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise YocoError(f"cannot train on {images.shape[0]} images with {labels.shape[0]} labels")
    tune_allocator()
    step_model = compiled(model, images.device) if compile else model
    cfg = _filled(cfg)
    recipe = _Recipe(cfg)
    opt = optimizer or torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                       weight_decay=cfg.weight_decay)
    n = images.shape[0]
    model.train()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, epoch)
        perm = recipe.order(n)
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            x, ya, yb, lam = recipe.batch(images, labels, idx)
            with precision_scope(cfg.precision, images.device):
                out = step_model(x)
                loss = _loss(out, ya, yb, lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_batch is not None:
                on_batch(Batch(epoch, idx, out.detach(), labels[to_device(idx, labels.device)]))
        if on_epoch is not None:
            on_epoch(epoch, model)
            model.train()
        if progress and _report(epoch, cfg.epochs):
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_at(cfg, epoch):.2g}", refresh=False)
    return model


def _report(epoch: int, epochs: int, every: int = 10) -> bool:
    """Whether the progress bar reads the loss after ``epoch``: reading it waits for the device, so only every
    ``every`` epochs and at the end (a small set is one step per epoch, and a sync per step idles a GPU)."""
    return epoch % every == every - 1 or epoch == epochs - 1


def train_batched(
    models: list[nn.Module],
    images: list[torch.Tensor],
    labels: list[torch.Tensor],
    cfgs: list[TrainConfig],
    *,
    on_batch: Callable[[int, Batch], None] | None = None,
    on_epoch: Callable[[int, list[nn.Module]], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    compile: bool = False,
    optimizers: list[torch.optim.Optimizer] | None = None,
) -> list[nn.Module]:
    """Train N independent networks as one batched computation; the same numbers as N calls of :func:`train`.

    Network ``i`` trains on ``images[i]``/``labels[i]`` (all the same size) with ``cfgs[i]`` (configs may differ
    only in their seed): its own initialisation, batch order, augmentation draws and mixing, exactly as
    :func:`train` would draw them. Their batches are gathered, augmented and mixed in one pass (:func:`_gather`,
    :func:`_draw_many`, :func:`_augment_many`), the N forward/backward passes run as one computation over the
    stacked parameters (:func:`yoco.models.stacked.stacked_forward`), and one SGD step over the stacked
    parameters is N independent steps (SGD is elementwise), so the result equals N separate runs up to float
    rounding of the batched kernels. Models must have no buffers
    (:func:`batchable`). The trained weights are written back into ``models``. ``on_batch`` gets the network
    index first; ``on_epoch(epoch, models)`` gets all N networks at once (their weights written back), so that a
    test pass can serve them together (:func:`predict_many`). ``optimizers`` (one ``torch.optim.SGD`` per network,
    with the config's momentum and weight decay) carry the momentum across calls as :func:`train`'s ``optimizer``
    does: their buffers are read at the start and written back at the end.
    """
    from torch.func import stack_module_state

    n_nets = len(models)
    if not (n_nets == len(images) == len(labels) == len(cfgs)) or n_nets == 0:
        raise YocoError("train_batched needs one image set, label set and config per network")
    cfgs = [_filled(c) for c in cfgs]
    shared = [dataclasses.replace(c, seed=0) for c in cfgs]
    if any(c != shared[0] for c in shared):
        raise YocoError("batched networks must share their training config (all but the seed)")
    sizes = {int(x.shape[0]) for x in images}
    if len(sizes) != 1 or any(int(x.shape[0]) != int(y.shape[0]) for x, y in zip(images, labels, strict=True)):
        raise YocoError(f"batched networks must train on sets of one size, got sizes {sorted(sizes)}")
    if not all(batchable(m) for m in models):
        raise YocoError("batched training needs models without buffers (no batch norm); train them one by one")
    cfg, n = cfgs[0], sizes.pop()
    stacked, _ = stack_module_state(models)
    params = {k: v.detach().clone() for k, v in stacked.items()}
    momenta = {k: torch.zeros_like(v) for k, v in params.items()}  # momentum * 0 + d is SGD's first buffer, exactly
    if optimizers is not None:
        _read_momenta(optimizers, models, momenta, cfg)
    recipes = [_Recipe(c) for c in cfgs]
    step = _batched_step(models[0], recipes[0].dsa, cfg, compile, images[0].device)
    # one set shared by every network (dynamics runs) stays one tensor; different sets are stacked once
    same = all(x is images[0] for x in images) and all(y is labels[0] for y in labels)
    pool = images[0] if same else torch.stack(images)
    pool_labels = labels[0] if same else torch.stack(labels)
    dev = pool.device
    graphed = compile and dev.type == "cuda" and compile_mode() in ("reduce-overhead", "max-autotune")
    for m in models:
        m.train()

    targets = {name: [dict(m.named_parameters())[name] for m in models] for name in params}

    def write_back() -> list[nn.Module]:
        with torch.no_grad():  # one multi-tensor copy per parameter name, not one copy per network and name
            for name, dst in targets.items():
                torch._foreach_copy_(dst, list(params[name].unbind()))
        return models

    bar = tqdm(range(cfg.epochs), desc=f"{desc} x{n_nets}", disable=not progress, leave=False, dynamic_ncols=True)
    for epoch in bar:
        # a tensor, so a compiled step serves every rate; moved without waiting for the device's queue
        lr = to_device(torch.tensor(lr_at(cfg, epoch)), dev)
        perms = [r.order(n) for r in recipes]
        for start in range(0, n, cfg.batch_size):
            idx = [p[start : start + cfg.batch_size] for p in perms]
            x, y = _gather(recipes, pool, pool_labels, idx)
            draws = _draw_many(recipes, x.shape[1], x.shape[-2], x.shape[-1], dev)
            if compile:
                _any_size(x, y, draws)
            with precision_scope(cfg.precision, dev):
                params, momenta, loss, out = step(params, momenta, x, y, draws, lr)
            if graphed:
                # a CUDA-graph replay's outputs live in its memory pool and are freed when the next step starts, so
                # the state carried into it is copied out (hooks use ``out`` at once; ``loss`` is read before)
                params, momenta = _copied(params), _copied(momenta)
            if on_batch is not None:
                for i in range(n_nets):
                    on_batch(i, Batch(epoch, idx[i], out[i], y[i]))
        if on_epoch is not None:
            on_epoch(epoch, _WrittenBack(write_back, n_nets))
            for m in models:
                m.train()
        if progress and _report(epoch, cfg.epochs):
            bar.set_postfix(loss=f"{float(loss) / n_nets:.3f}", lr=f"{lr_at(cfg, epoch):.2g}", refresh=False)
    if optimizers is not None:
        for opt, m, i in zip(optimizers, models, range(n_nets), strict=True):
            for name, p in m.named_parameters():
                opt.state[p]["momentum_buffer"] = momenta[name][i].clone()
    return write_back()


def _any_size(x: torch.Tensor, y: torch.Tensor, draws: _Draws) -> None:
    """Mark the step's batch dimension as dynamic for ``torch.compile``, so one compiled graph serves every batch
    size (a ladder's groups train on batches of 40, 64, 16 and 8 images) instead of one graph per size. The network
    count stays a constant (it is the grouped convolutions' ``groups``), and where the forward pass reads the batch
    size as a constant (the ``vmap`` fallback of :func:`~yoco.models.stacked.stacked_forward`) the graph stays
    specialised to it, as before."""
    mark = torch._dynamo.maybe_mark_dynamic
    for t in (x, y, draws.partner):
        if t is not None:
            mark(t, 1)
    for t in draws.dsa.values():  # [N * B, k]
        mark(t, 0)


def _copied(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of ``tensors`` (one multi-tensor copy, not one launch per tensor)."""
    names = list(tensors)
    out = [torch.empty_like(tensors[k]) for k in names]
    torch._foreach_copy_(out, [tensors[k] for k in names])
    return dict(zip(names, out, strict=True))


def _read_momenta(optimizers: list[torch.optim.Optimizer], models: list[nn.Module],
                  momenta: dict[str, torch.Tensor], cfg: TrainConfig) -> None:
    """Fill the stacked ``momenta`` from each network's SGD buffers (zeros where it has not stepped yet, which is
    exactly SGD's first step), after checking that the optimizers are the SGD the batched step computes."""
    if len(optimizers) != len(models):
        raise YocoError(f"train_batched got {len(optimizers)} optimizers for {len(models)} networks")
    for opt, m, i in zip(optimizers, models, range(len(models)), strict=True):
        for group in opt.param_groups:
            same = (type(opt) is torch.optim.SGD and group["momentum"] == cfg.momentum
                    and group["weight_decay"] == cfg.weight_decay and not group["dampening"]
                    and not group["nesterov"] and not group.get("maximize", False))
            if not same:
                raise YocoError("batched training carries only torch.optim.SGD without dampening or Nesterov, with "
                                f"the config's momentum {cfg.momentum} and weight decay {cfg.weight_decay}")
        for name, p in m.named_parameters():
            buf = opt.state[p].get("momentum_buffer") if p in opt.state else None
            if buf is not None:
                momenta[name][i].copy_(buf)


class _WrittenBack(Sequence[nn.Module]):
    """The N networks of a batched run as an epoch hook sees them: their current weights are copied in from the
    stacked ones when the hook first looks at a network (valid during the hook's call), so epochs whose hook
    ignores them (no test point) cost no copies."""

    def __init__(self, write_back: Callable[[], list[nn.Module]], n: int) -> None:
        self._write_back, self._n, self._models = write_back, n, None

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> nn.Module:
        if self._models is None:
            self._models = self._write_back()
        return self._models[i]


_STEPS: dict[tuple, nn.Module] = {}


def _batched_step(model: nn.Module, dsa: DSA, cfg: TrainConfig, compile: bool, device: torch.device) -> nn.Module:
    """The :class:`_BatchedStep` of this architecture and recipe, kept for the process: a compiled step is then
    compiled once and serves every later group of networks of the same kind (a ladder's IPCs, repeated calls)."""
    key = (repr(model), repr(dsa), cfg.momentum, cfg.weight_decay, compile)
    if key not in _STEPS:
        step = _BatchedStep(model, dsa, cfg)
        _STEPS[key] = compiled(step, device) if compile else step
    return _STEPS[key]


class _BatchedStep(nn.Module):
    """The device part of one batched training step, as one function of the stacked weights and momenta and the
    step's packed draws: augment and mix (:func:`_augment_many`), the N forward/backward passes as one
    computation (:func:`~yoco.models.stacked.stacked_forward`), and SGD with momentum and weight decay as
    ``torch.optim.SGD`` does it (SGD is elementwise, so one update of the stacked weights is N independent
    updates). Written functionally, so ``torch.compile``
    can take the whole step (and on a GPU, its CUDA-graph mode replay it)."""

    def __init__(self, model: nn.Module, dsa: DSA, cfg: TrainConfig) -> None:
        super().__init__()
        self.forward_many = stacked_forward(model, training=True)
        self.dsa, self.momentum, self.weight_decay = dsa, cfg.momentum, cfg.weight_decay

    def forward(self, params: dict[str, torch.Tensor], momenta: dict[str, torch.Tensor], x: torch.Tensor,
                y: torch.Tensor, draws: _Draws, lr: torch.Tensor
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        from torch.func import grad_and_value

        x, ya, yb = _augment_many(x, y, draws, self.dsa)

        def loss_of(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.forward_many(p, x)
            return _losses(out, ya, yb, draws.lam), out.detach()

        if torch.compiler.is_compiling():  # dynamo traces torch.func's transforms (torch.autograd.grad breaks it)
            grads, (loss, out) = grad_and_value(loss_of, has_aux=True)(params)
        else:  # eager: autograd's native backward kernels (torch.func.grad decomposes group norm's backward)
            leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
            with torch.enable_grad():
                loss, out = loss_of(leaves)
            grads = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
        # multi-tensor ops: one launch per operation for all the weights, as torch.optim's foreach SGD on a GPU
        names = list(params)
        p, g = [params[k] for k in names], [grads[k] for k in names]
        d = torch._foreach_add(g, p, alpha=self.weight_decay) if self.weight_decay else g
        buf = torch._foreach_add(torch._foreach_mul([momenta[k] for k in names], self.momentum), d) \
            if self.momentum else d
        new = torch._foreach_sub(p, torch._foreach_mul(buf, lr))
        return dict(zip(names, new, strict=True)), dict(zip(names, buf, strict=True)), loss.detach(), out


def _base_augmentation(cfg: TrainConfig) -> ImageNetAug | None:
    if cfg.base_aug in ("none", None):
        return None
    if cfg.base_aug != "imagenet":
        raise YocoError(f"unknown base augmentation {cfg.base_aug!r}; choose none or imagenet")
    if cfg.mean is None or cfg.std is None:
        raise YocoError("the imagenet augmentation works in pixel space and needs the set's mean and std")
    return ImageNetAug(cfg.mean, cfg.std, flip=cfg.flip)


