"""MDC condensation (He, Xiao, Zhou and Tsang, "Multisize Dataset Condensation", ICLR 2024): condense once, and
every class's first images are themselves a good smaller set.

MDC is IDC (:mod:`yoco.condense.idc`) with an *adaptive subset loss*, as its code (he-y/Multisize-Dataset-Condensation,
``condense_reg.py`` and ``reg_ipcx.py``) computes it:

- **Subsets.** For ``x`` in ``1 .. ipc - 1``, the subset "IPC x" of a class is the first ``x * f**2`` of its decoded
  images in IDC's decoded order, which is *crop-major*: position ``d`` is tile ``d // ipc`` of stored image
  ``d % ipc`` (``condense_reg.py:505-512``; ``Synthesizer.decode_zoom`` concatenates the tiles of all images tile by
  tile). yoco decodes image-major (tile ``t`` of stored image ``i`` is decoded image ``i * f**2 + t``), so the class's
  synthetic batch is put in MDC's order first (:func:`crop_major_order`), and the subsets are prefixes of it. Where
  the batch is a random subsample (more than ``batch_syn`` decoded images), the prefixes are of the subsample, as
  upstream indexes its subsampled batch.
- **Tracking** (``reg_ipcx.py:37-56``, ``condense_reg.py:597-602``): in the first outer iteration and every
  ``period``-th (``(it + 1) % period == 0``), at every inner step and for every class, each subset's feature distance:
  the squared distance between the mean feature of the augmented real batch and that of the subset's rows of the
  augmented synthetic batch, at the network's last stage (ConvNet's last block after pooling, ResNet-AP's last
  stage: upstream's ``get_feature`` with ``f_idx = depth - 1`` for ConvNet, 4 for ResNet-AP).
- **Choice** (``condense_reg.py:643-671``, ``select_reg_ipc`` at ``reg_ipcx.py:113-144``): after a tracked iteration,
  the subset losses summed over its inner steps (and averaged over classes unless ``class_wise``), divided by the
  inner steps and rounded to 2 decimals; the subset chosen is the one whose loss changed most since the last tracked
  iteration (IPC 1 the first time). It is regularised for the next ``period`` iterations and then frozen, unless
  chosen again (``Regularizer.update_status``, ``set_quit_iteration``); the previous choice stops being regularised.
- **Freezing** (``get_freeze_ipc``, ``condense_reg.py:580-590``): the largest frozen subset below the smallest
  regularised one has its rows of the synthetic batch detached, so they get no gradient (the stored images still
  move with the momentum buffer, as upstream's one SGD optimiser moves them).
- **Loss** (``grad_loss_for_img_update``, ``reg_ipcx.py:59-111``): per matched layer, IDC's distance between the real
  and synthetic batches' gradients, plus, for every regularised subset, the distance between the real gradient and
  the gradient of the subset's rows alone; the same metric (mse, ``argument.py:419``) and layers.

The class loss reads only its own class's images, so the batched engine's closed-form update holds; it evaluates the
classes one by one (not the stacked single pass) and differentiates once. The regulariser's state goes into the
checkpoint as JSON, so a run resumes to the images an uninterrupted run makes.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from yoco import protocol
from yoco.augment import DSA
from yoco.condense.config import IDCConfig, resolve_config
from yoco.condense.idc import condense
from yoco.condense.matching import Objective, _ClassDraw, _RealPool
from yoco.data.condensed import CondensedSet, decode_images, normalize
from yoco.errors import YocoError

if TYPE_CHECKING:
    from yoco.data.datasets import RealDataset

log = logging.getLogger(__name__)


@dataclass
class MDCConfig:
    """MDC's own settings, beside IDC's (:class:`~yoco.condense.config.IDCConfig`).

    ``period``: outer iterations between two choices of the subset to regularise (upstream ``--adaptive_period``);
    ``class_wise``: every class chooses from its own losses instead of the losses averaged over classes
    (``--adaptive_class_wise``).
    """

    period: int = protocol.MDC_PERIOD
    class_wise: bool = protocol.MDC_CLASS_WISE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_mdc_config(dataset: str, preset: str | None = None, **overrides: Any) -> IDCConfig:
    """The IDC settings an MDC run uses on ``dataset``: IDC's preset with MDC's distance (mse, ``argument.py:419``),
    then ``overrides`` (a given ``metric`` included)."""
    return resolve_config(dataset, preset, **{"metric": protocol.MDC_METRIC, **overrides})


def crop_major_order(ipc: int, factor: int) -> torch.Tensor:
    """For each position ``d`` of one class's decoded images in IDC's (and MDC's) crop-major order, the index of that
    image in yoco's image-major order: position ``d`` is tile ``d // ipc`` of stored image ``d % ipc``, which yoco
    decodes at ``(d % ipc) * f**2 + d // ipc``."""
    d = torch.arange(ipc * factor * factor)
    return (d % ipc) * factor * factor + d // ipc


def subset_gradient_distance(net: nn.Module, params: list[nn.Parameter], x_real: torch.Tensor, x_syn: torch.Tensor,
                             label: int, sizes: list[int], metric: str) -> torch.Tensor:
    """MDC's loss for one class: IDC's distance between the real and synthetic batches' gradients w.r.t. ``params``,
    plus, for each size ``m`` in ``sizes`` (the regularised subsets), the distance between the real gradient and the
    gradient of the first ``m`` rows of ``x_syn`` alone (their own forward pass and mean cross-entropy). Summed layer
    by layer, each layer's full term first and then its subset terms, as ``grad_loss_for_img_update`` adds them."""
    def grads(x: torch.Tensor, graph: bool) -> tuple[torch.Tensor, ...]:
        y = torch.full((x.shape[0],), label, dtype=torch.long, device=x.device)
        return torch.autograd.grad(F.cross_entropy(net(x), y), params, create_graph=graph)

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).pow(2).sum() if metric == "mse" else (a - b).abs().sum()

    g_real = [g.detach() for g in grads(x_real, False)]
    g_syn = grads(x_syn, True)
    g_subsets = [grads(x_syn[:m], True) for m in sizes]
    total = x_syn.new_zeros(())
    for i, gr in enumerate(g_real):
        total = total + dist(gr, g_syn[i])
        for g_sub in g_subsets:
            total = total + dist(gr, g_sub[i])
    return total


def feature_distances(net: nn.Module, x_real: torch.Tensor, x_syn: torch.Tensor, sizes: list[int],
                      metric: str) -> list[float]:
    """For each size ``m``, the distance between the mean last-stage feature of ``x_real`` and that of the first ``m``
    rows of ``x_syn`` (``feat_loss_for_ipc_reg``): the statistic MDC tracks to choose the subset to regularise."""
    with torch.no_grad():
        real = _last_stage(net, x_real).mean(0)
        syn = _last_stage(net, x_syn)
        out = []
        for m in sizes:
            diff = real - syn[:m].mean(0)
            out.append(float(diff.pow(2).sum() if metric == "mse" else diff.abs().sum()))
    return out


def _last_stage(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of the network's last stage before the classifier's pooling or flattening: ConvNet's last block
    after its pooling (upstream ``get_feature`` index ``depth - 1``), ResNet's last stage (index 4)."""
    return net.body(x)  # type: ignore[operator]


def period_losses(rows: list[list[list[float]]], inner: int, class_wise: bool) -> list[list[float]]:
    """Each class's subset losses of one tracked iteration, as ``condense_reg.py:647-654`` makes them.

    ``rows[c][s]`` holds class ``c``'s feature distances at inner step ``s``, one per subset. Class-wise: the float32
    sum over the steps divided by ``inner``; otherwise one list for every class, the float32 sum over all classes and
    steps divided by the classes and by ``inner``. Rounded to 2 decimals before they are compared.
    """
    if class_wise:
        return [_rounded(torch.tensor(r, dtype=torch.float32).sum(0) / inner) for r in rows]
    flat = torch.tensor([step for r in rows for step in r], dtype=torch.float32)
    shared = _rounded(flat.sum(0) / len(rows) / inner)
    return [list(shared) for _ in rows]


def _rounded(t: torch.Tensor) -> list[float]:
    return torch.round(t, decimals=protocol.MDC_LOSS_DECIMALS).tolist()


def most_learnable(prev: list[float], cur: list[float], first: bool) -> int:
    """The subset (its IPC) whose loss changed most since the last tracked iteration: IPC 1 the first time, else the
    first of ``torch.argsort(|prev - cur|, descending=True)`` on float32, as ``select_reg_ipc`` takes it (ties go
    where torch's sort puts them, which for up to 16 subsets (IPC up to 17) is the smallest IPC)."""
    if first or not prev:
        return 1
    if len(prev) != len(cur):
        raise YocoError(f"MDC: {len(prev)} previous subset losses but {len(cur)} current ones")
    diff = torch.abs(torch.tensor(prev, dtype=torch.float32) - torch.tensor(cur, dtype=torch.float32))
    return int(torch.argsort(diff, descending=True)[0]) + 1


@dataclass
class _Subset:
    """One subset of a class: the iteration at which it quits being regularised and freezes, and its marks."""

    quit: int = -1
    regularised: bool = False
    frozen: bool = False


class Regularizer:
    """One class's subsets (upstream ``reg_ipcx.Regularizer``): which one is regularised, which are frozen, when the
    regularised one quits, the last tracked losses. Entry ``x`` is the subset IPC x; 0 and ``ipc`` are never chosen
    (upstream pads its list the same way)."""

    def __init__(self, ipc: int) -> None:
        self.subsets = [_Subset() for _ in range(ipc + 1)]
        self.chosen: list[int] = []  # the last choice, unmarked at the next (upstream prev_ipcx_list)
        self.prev_loss: list[float] = []

    def begin(self, iteration: int) -> None:
        """A subset whose quit iteration has come stops being regularised and stays frozen (``update_status``)."""
        for s in self.subsets:
            if s.quit == iteration:
                s.regularised, s.frozen = False, True

    def regularised(self) -> list[int]:
        return [x for x, s in enumerate(self.subsets) if s.regularised]

    def frozen_ipc(self) -> int:
        """The largest frozen subset below the smallest regularised one, or 0 (none): ``get_freeze_ipc``."""
        current = self.regularised()
        if not current:
            return 0
        below = [x for x, s in enumerate(self.subsets) if s.frozen and x < min(current)]
        return max(below, default=0)

    def choose(self, cur: list[float], iteration: int, period: int) -> int:
        """After tracked iteration ``iteration`` (0-based): choose the subset to regularise until iteration
        ``iteration + 1 + period``, unmark the last choice, and keep ``cur`` for the next comparison."""
        x = most_learnable(self.prev_loss, cur, iteration == 0)
        if not 1 <= x < len(self.subsets) - 1:
            raise YocoError(f"MDC: chose subset IPC {x}, outside 1..{len(self.subsets) - 2}")
        for y in self.chosen:
            self.subsets[y].regularised = False
        self.chosen = [x]
        self.subsets[x].regularised = True
        self.subsets[x].quit = iteration + 1 + period
        self.prev_loss = list(cur)
        return x

    def state(self) -> dict[str, Any]:
        return {"quit": [s.quit for s in self.subsets], "regularised": [s.regularised for s in self.subsets],
                "frozen": [s.frozen for s in self.subsets], "chosen": list(self.chosen),
                "prev_loss": list(self.prev_loss)}

    def restore(self, state: Any, where: str) -> None:
        n = len(self.subsets)
        ok = isinstance(state, dict) and all(
            isinstance(state.get(k), list) and len(state[k]) == n and all(isinstance(v, kind) for v in state[k])
            for k, kind in (("quit", int), ("regularised", bool), ("frozen", bool))) and isinstance(
            state.get("chosen"), list) and all(isinstance(v, int) and 0 < v < n - 1 for v in state["chosen"]) and (
            isinstance(state.get("prev_loss"), list) and len(state["prev_loss"]) in (0, n - 2)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in state["prev_loss"]))
        if not ok:
            raise YocoError(f"{where}: damaged MDC regulariser state; delete the checkpoint or run without resume")
        for s, q, r, f in zip(self.subsets, state["quit"], state["regularised"], state["frozen"], strict=True):
            s.quit, s.regularised, s.frozen = q, r, f
        self.chosen = list(state["chosen"])
        self.prev_loss = [float(v) for v in state["prev_loss"]]


class MDCObjective(Objective):
    """MDC's class loss and regulariser as an :class:`~yoco.condense.matching.Objective` of IDC's loop."""

    method = "mdc"
    stacked = False

    def __init__(self, mdc: MDCConfig, ipc: int, num_classes: int) -> None:
        self.mdc, self.ipc = mdc, ipc
        self.classes = [Regularizer(ipc) for _ in range(num_classes)]
        self.choices: list[dict[str, Any]] = []  # per tracked iteration, the subset each class chose
        self._tracking = False
        self._rows: list[list[list[float]]] = [[] for _ in range(num_classes)]
        self._frozen = [0] * num_classes
        self._sizes: list[list[int]] = [[] for _ in range(num_classes)]
        self._order: torch.Tensor | None = None

    def check(self, cfg: IDCConfig, real: RealDataset) -> None:
        f2 = cfg.factor**2
        if self.mdc.period < 1:
            raise YocoError(f"MDC: period must be at least 1, got {self.mdc.period}")
        if cfg.ipc != self.ipc or real.num_classes != len(self.classes):
            raise YocoError(f"MDC: set up for ipc {self.ipc} and {len(self.classes)} classes, asked for ipc {cfg.ipc} "
                            f"and {real.num_classes}")
        if cfg.ipc < 2:
            raise YocoError(f"MDC: ipc must be at least 2 (its subsets are IPC 1 .. ipc - 1), got {cfg.ipc}")
        if (cfg.ipc - 1) * f2 > cfg.batch_syn:
            raise YocoError(f"MDC: its largest subset holds {(cfg.ipc - 1) * f2} decoded images per class, more than the "
                            f"synthetic batch (batch_syn {cfg.batch_syn}); raise batch_syn to at least "
                            f"{(cfg.ipc - 1) * f2} (upstream's code fails here)")
        from yoco.models import create_model
        from yoco.runtime import seeded

        with seeded(0):
            probe = create_model(cfg.model, real.num_classes, real.channels, real.image_size, width=cfg.width)
        if not isinstance(getattr(probe, "body", None), nn.Module):
            raise YocoError(f"MDC: model {cfg.model} has no last stage (body) whose features MDC tracks")

    def identity(self) -> dict[str, Any]:
        return {"objective": {"method": self.method, **self.mdc.to_dict()}}

    def begin(self, iteration: int) -> None:
        self._tracking = iteration == 0 or (iteration + 1) % self.mdc.period == 0
        for c, reg in enumerate(self.classes):
            reg.begin(iteration)
            self._frozen[c] = reg.frozen_ipc()
            self._sizes[c] = reg.regularised()

    def class_loss(self, net: nn.Module, params: list[nn.Parameter], pool: _RealPool, syn_c: torch.Tensor, c: int,
                   draw: _ClassDraw, cfg: IDCConfig, dsa: DSA) -> torch.Tensor:
        f2 = cfg.factor**2
        x_real = pool.batch(draw.real_idx)
        if self._order is None or self._order.device != syn_c.device:
            self._order = crop_major_order(cfg.ipc, cfg.factor).to(syn_c.device)
        dec = decode_images(syn_c, cfg.factor)[self._order]  # MDC's crop-major order: its subsets are prefixes
        if draw.syn_subset is not None:
            dec = dec[draw.syn_subset.to(dec.device)]
        frozen = self._frozen[c] * f2
        if frozen:
            dec = torch.cat([dec[:frozen].detach(), dec[frozen:]])
        both = dsa(torch.cat([x_real, normalize(dec, pool.mean, pool.std)]), seed=draw.dsa_seed, shared=True)
        n = x_real.shape[0]
        if self._tracking:
            sizes = [x * f2 for x in range(1, cfg.ipc)]
            self._rows[c].append(feature_distances(net, both[:n], both[n:], sizes, cfg.metric))
        return subset_gradient_distance(net, params, both[:n], both[n:], c, [x * f2 for x in self._sizes[c]],
                                        cfg.metric)

    def end(self, iteration: int) -> None:
        if not self._tracking:
            return
        if any(not rows for rows in self._rows):
            raise RuntimeError("MDC: a tracked iteration recorded no subset losses for some class")
        inner = len(self._rows[0])
        losses = period_losses(self._rows, inner, self.mdc.class_wise)
        chosen = [reg.choose(cur, iteration, self.mdc.period) for reg, cur in zip(self.classes, losses, strict=True)]
        self.choices.append({"iteration": iteration + 1, "chosen": chosen})
        self._rows = [[] for _ in self.classes]
        log.info("MDC iteration %d: regularising subset IPC %s", iteration + 1,
                 chosen[0] if len(set(chosen)) == 1 else chosen)

    def state(self) -> dict[str, Any]:
        return {"classes": [reg.state() for reg in self.classes], "choices": [dict(ch) for ch in self.choices]}

    def restore(self, state: dict[str, Any]) -> None:
        classes, choices = state.get("classes"), state.get("choices")
        if not isinstance(classes, list) or len(classes) != len(self.classes) or not isinstance(choices, list) or not all(
                isinstance(ch, dict) and isinstance(ch.get("iteration"), int) and isinstance(ch.get("chosen"), list)
                for ch in choices):
            raise YocoError("MDC checkpoint: damaged regulariser state; delete the checkpoint or run without resume")
        for c, (reg, st) in enumerate(zip(self.classes, classes, strict=True)):
            reg.restore(st, f"MDC checkpoint, class {c}")
        self.choices = [dict(ch) for ch in choices]

    def extra(self) -> dict[str, Any]:
        return {"mdc": {"config": self.mdc.to_dict(), "choices": [dict(ch) for ch in self.choices],
                        "frozen": [[x for x, s in enumerate(r.subsets) if s.frozen] for r in self.classes]},
                "nested_subsets": nested_record(self.ipc)}


def nested_record(ipc: int) -> dict[str, Any]:
    """What an MDC set's metadata says of its per-class order (``extra["nested_subsets"]``): its subsets IPC 1 ..
    ``ipc - 1`` are nested, IPC x being the first ``x * f**2`` decoded images of each class in crop-major order."""
    return {"method": "mdc", "order": protocol.MDC_NESTED_ORDER, "ipc": ipc, "subsets": list(range(1, ipc)),
            "meaning": "subset IPC x of a class = its first x*f^2 decoded images in crop-major order (position d is "
                       "tile d // ipc of the class's stored image d % ipc); select them with the rule mdc_prefix"}


def condense_mdc(real: RealDataset, cfg: IDCConfig, out: str | Path, mdc: MDCConfig | None = None,
                 **kwargs: Any) -> CondensedSet:
    """Condense ``real`` with MDC into ``cfg.ipc`` stored images per class and save the set to ``out``.

    ``cfg`` holds the IDC settings (:func:`resolve_mdc_config` gives MDC's: IDC's preset with mse); ``mdc`` MDC's own.
    The other arguments are :func:`yoco.condense.idc.condense`'s (``resume``, ``runtime``, ``net_batch``, ...): the run
    is IDC's loop with MDC's objective, checkpointed with the regulariser's state.
    """
    objective = MDCObjective(mdc or MDCConfig(), cfg.ipc, real.num_classes)
    return condense(real, cfg, out, objective=objective, **kwargs)
