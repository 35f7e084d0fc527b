"""Why a small network's step is launch-bound on a GPU: ATen operations dispatched per step, counted on the CPU.

On a GPU every dispatched operation is at least one kernel launch plus Python and dispatcher work (roughly 5-20
microseconds on the host), whatever the tensor sizes, so the count times that cost is a floor under the step's
time that no faster card lowers; only fusing (``torch.compile``) or replaying (CUDA graphs) removes it. Counted
with a ``TorchDispatchMode`` (backward operations included), the count does not depend on the width or the batch,
so a narrow network keeps the count quick.

Three steps are counted: one step of the evaluation training (the protocol's DSA + CutMix on a batch of 64, forward,
backward, SGD with the multi-tensor ``foreach`` update that CUDA uses), one step of N such networks trained as one
batched computation (``train_batched``, CutMix on every step; its SGD is the CPU's per-parameter update), and one
IDC inner step on Fashion-MNIST (IPC 10: the matching with either engine, then the network update on 500 real
images).

    python benchmarks/op_count.py [--width 16] [--nets 1,4,16] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from yoco.augment import DSA
from yoco.condense import idc, matching
from yoco.condense import init as idc_init
from yoco.condense.config import PRESETS
from yoco.data.datasets import load_dataset
from yoco.files import write_json
from yoco.models import create_model
from yoco.train import TrainConfig, _filled, _loss, _Recipe

OUT = Path(__file__).parent / "results"


class OpCounter(TorchDispatchMode):
    """Counts every ATen operation dispatched inside the block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


def training_step(width: int) -> dict[str, int]:
    """Operations of one evaluation-training step on a batch of 64 Fashion-MNIST-shaped images, by phase."""
    x, y = torch.rand(500, 1, 28, 28), torch.arange(500) % 10
    recipe = _Recipe(_filled(TrainConfig(epochs=1, seed=0)))
    model = create_model("convnet3", 10, 1, 28, width=width)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True)
    counts = {}
    for rep in range(2):  # the first step creates the momentum buffers; count the second
        phases = {name: OpCounter() for name in ("augment", "forward", "backward", "optimizer")}
        with phases["augment"]:
            xb, ya, yb, lam = recipe.batch(x, y, torch.arange(64))
        with phases["forward"]:
            loss = _loss(model(xb), ya, yb, lam)
        opt.zero_grad(set_to_none=True)
        with phases["backward"]:
            loss.backward()
        with phases["optimizer"]:
            opt.step()
        counts = {name: c.total for name, c in phases.items()}
    return counts


class DeviceOpCounter(OpCounter):
    """Also counts the operations on ``meta`` tensors: with the data and networks on the meta device, those are
    the ones that would launch kernels on a GPU, and the rest are the CPU's parameter draws."""

    def __init__(self) -> None:
        super().__init__()
        self.device_by_name: Counter[str] = Counter()

    @property
    def device_ops(self) -> int:
        return sum(self.device_by_name.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if any(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in tree_leaves((args, kwargs or {}))):
            self.device_by_name[str(func.overloadpacket)] += 1
        return super().__torch_dispatch__(func, types, args, kwargs)


def batched_training_step(width: int, nets: int) -> dict[str, int]:
    """Operations of one step of ``nets`` networks trained as one batched computation (the ladder's cells of one
    IPC on a GPU), on the meta device: a 64-image set, one batch per epoch, so one epoch's count (two epochs minus
    one, which cancels the set-up and write-back) is one step; ``device`` are the ones on the device's tensors
    (kernels, and views that launch none), also by operation name."""
    from yoco.train import train_batched

    x, y = torch.rand(64, 1, 28, 28, device="meta"), torch.zeros(64, dtype=torch.long, device="meta")
    counters = []
    for epochs in (1, 2):
        models = [create_model("convnet3", 10, 1, 28, width=width).to("meta") for _ in range(nets)]
        cfgs = [_filled(TrainConfig(epochs=epochs, seed=s, mix_p=1.0)) for s in range(nets)]  # every step mixes
        with DeviceOpCounter() as c:
            train_batched(models, [x] * nets, [y] * nets, cfgs, progress=False)
        counters.append(c)
    by_name = Counter(counters[1].device_by_name)
    by_name.subtract(counters[0].device_by_name)  # keeps the negative differences, as the totals do
    return {"all": counters[1].total - counters[0].total, "device": counters[1].device_ops - counters[0].device_ops,
            "device_by_name": {k: v for k, v in by_name.most_common() if v}}


def idc_inner_step(width: int) -> dict[str, int]:
    """Operations of one IDC inner step on Fashion-MNIST at IPC 10: matching with each engine, network update."""
    real = load_dataset("fashion-mnist")
    cfg = dataclasses.replace(PRESETS["fashion-mnist"], width=width)
    dev = torch.device("cpu")
    start = idc_init.init_synthetic(real, cfg.ipc, cfg.factor, cfg.init).images
    pool, dsa = matching._RealPool(real, dev), DSA(cfg.match_dsa, flip=real.flip)
    net = idc._build_net(cfg, real, 0, dev)
    lr = cfg.effective_lr_img(real.name, start.shape[-1])
    counts = {}
    syn = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=lr, momentum=cfg.mom_img)
    with OpCounter() as c:
        matching.inner_step_sequential(net, pool, syn, opt, cfg, dsa, torch.Generator().manual_seed(0))
    counts["matching, sequential engine"] = c.total
    with OpCounter() as c:
        matching.inner_step_batched(net, pool, start.clone(), None, lr, cfg, dsa, torch.Generator().manual_seed(0))
    counts["matching, batched engine"] = c.total
    net_opt = idc._net_optimizer(net, cfg)
    for group in net_opt.param_groups:
        group["foreach"] = True  # the multi-tensor update CUDA uses by default
    with OpCounter() as c:
        draw = idc._net_draw(pool.labels.shape[0], cfg, torch.Generator().manual_seed(0), cfg.net_images)
        idc._train_nets([net], pool, cfg, real.flip, [draw], cfg.net_epochs, [net_opt])
    counts[f"network update ({cfg.net_images} real images)"] = c.total
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=16, help="network width (the count does not depend on it)")
    ap.add_argument("--nets", type=lambda v: [int(n) for n in v.split(",")], default=[1, 4, 16],
                    help="network counts of the batched training step")
    ap.add_argument("--out", default=str(OUT / "op_count.json"))
    args = ap.parse_args()
    train_ops, idc_ops = training_step(args.width), idc_inner_step(args.width)
    batched = {n: batched_training_step(args.width, n) for n in args.nets}
    write_json(args.out, {"torch": torch.__version__, "width": args.width, "training_step": train_ops,
                          "batched_training_step": batched, "idc_inner_step": idc_ops})
    print(f"{'step':<48}{'ATen ops':>9}")
    for name, n in train_ops.items():
        print(f"{'training step: ' + name:<48}{n:>9}")
    print(f"{'training step: total':<48}{sum(train_ops.values()):>9}")
    for n_nets, n in batched.items():
        print(f"{f'batched training step, {n_nets} networks':<48}{n['all']:>9}  ({n['device']} on the device)")
    top = list(batched[max(batched)]["device_by_name"].items())[:12]
    print(f"  its device operations by name ({max(batched)} networks): " + ", ".join(f"{k} {v}" for k, v in top))
    for name, n in idc_ops.items():
        print(f"{'IDC inner step: ' + name:<48}{n:>9}")


if __name__ == "__main__":
    main()
