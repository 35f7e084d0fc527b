"""Cost of one IDC inner step, the batched engine beside IDC's sequential per-class loop, in one run.

For Fashion-MNIST (the real files) and a CIFAR-10-sized set (random uint8 images of CIFAR-10's shapes, since only
the sizes matter for time), each dataset's IDC preset at IPC 10, factor 2: seconds per inner step of the matching
part (every class drawn, augmented, matched and its images stepped) and of the real-data network pass, for
``--engines`` (default both), interleaved round by round so both see the same machine load. FLOPs of one
matching step are counted with ``torch.utils.flop_counter`` and compared with the machine's measured rate on a
2048^3 float32 matmul, taken in the same run. Writes benchmarks/results/condense_cost.json (or --out).

    python benchmarks/bench_condense.py [--steps 3] [--rounds 2] [--precisions default,ieee,tf32,bf16]
        [--net eager,compiled] [--net-batch 1,8] [--sets fashion-mnist,cifar10-sized] [--device auto] [--out FILE]

``--net-batch N`` trains the networks of N outer iterations side by side (as ``yoco condense --net-batch N``): the
network pass is timed for all N together and divided by N, the cost per outer iteration.

On CUDA it also measures how much TF32 changes one matching step's image update (same draws, same network).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from condense_cost import matching_cost_breakdown
from torch.utils.flop_counter import FlopCounterMode

from yoco.augment import DSA
from yoco.condense import config, idc, matching
from yoco.condense import init as idc_init
from yoco.condense.config import PRESETS
from yoco.data.datasets import RealDataset, load_dataset
from yoco.files import write_json
from yoco.runtime import resolve_device

OUT = Path(__file__).parent / "results"


def cifar10_sized(per_class: int = 600) -> RealDataset:
    """Random images with CIFAR-10's shapes (3x32x32, 10 classes): timing needs sizes, not content."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat_interleave(per_class)
    x = torch.randint(0, 256, (len(y), 3, 32, 32), generator=g, dtype=torch.uint8)
    return RealDataset(name="cifar10-sized", train_images=x, train_labels=y, test_images=x[:10], test_labels=y[:10],
                       classes=[str(c) for c in range(10)], mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26),
                       flip=True, root="<random>")


def matmul_rate(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Measured float32 matmul rate of ``device`` in FLOP/s (best of ``reps``)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def matching_flops(real: RealDataset, cfg: config.IDCConfig, device: torch.device) -> int:
    """FLOPs of one matching step (all classes: forward, both gradients, the double backward), counted on IDC's
    plain per-class loop: the work either engine must do (the counter does not see through vmap's batching)."""
    g = torch.Generator().manual_seed(0)
    syn = idc_init.init_synthetic(real, cfg.ipc, cfg.factor, cfg.init).images.to(device).requires_grad_(True)
    net = idc._build_net(cfg, real, 0, device)
    pool, dsa = matching._RealPool(real, device), DSA(cfg.match_dsa, flip=real.flip)
    opt = torch.optim.SGD([syn], lr=1e-4, momentum=cfg.mom_img)
    with FlopCounterMode(display=False) as counter:
        matching.inner_step_sequential(net, pool, syn, opt, cfg, dsa, g)
    return int(counter.get_total_flops())


def set_tf32(on: bool | None) -> None:
    """TF32 for convolutions and matmuls on (True), off (False: IEEE float32), or torch's defaults (None)."""
    torch.backends.cuda.matmul.allow_tf32 = bool(on) if on is not None else False
    torch.backends.cudnn.allow_tf32 = bool(on) if on is not None else True


def tf32_deviation(real: RealDataset, cfg: config.IDCConfig, device: torch.device) -> float:
    """Relative size of the difference TF32 makes to one matching step's image update (same draws, same net)."""
    start = idc_init.init_synthetic(real, cfg.ipc, cfg.factor, cfg.init).images.to(device)
    net = idc._build_net(cfg, real, 0, device)
    pool, dsa = matching._RealPool(real, device), DSA(cfg.match_dsa, flip=real.flip)
    moves = []
    for on in (False, True):
        set_tf32(on)
        syn = start.clone().requires_grad_(True)
        opt = torch.optim.SGD([syn], lr=cfg.effective_lr_img(real.name, start.shape[-1]), momentum=cfg.mom_img)
        matching.inner_step_sequential(net, pool, syn, opt, cfg, dsa, torch.Generator().manual_seed(0))
        moves.append(syn.detach() - start)
    set_tf32(None)
    return float((moves[1] - moves[0]).norm() / moves[0].norm())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="timed inner steps per round (after one warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of the engines")
    ap.add_argument("--engines", default="sequential,batched")
    ap.add_argument("--precisions", default="default",
                    help="comma list of default (torch's: TF32 convolutions on CUDA; yoco's --precision fp32), ieee "
                    "(IEEE float32 everywhere), tf32, bf16 (yoco's --precision choices)")
    ap.add_argument("--net", default="eager", help="comma list of eager, compiled: how the network trains between "
                    "matching steps")
    ap.add_argument("--net-batch", default="1", help="comma list: outer iterations whose networks train side by side")
    ap.add_argument("--sets", default="fashion-mnist,cifar10-sized", help="comma list, timed in this order")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(OUT / "condense_cost.json"))
    args = ap.parse_args()
    dev = resolve_device(args.device)
    engines = args.engines.split(",")
    # each label: the TF32 flags to set (None: torch's defaults) and the IDC config's precision
    modes = {"default": (None, "fp32"), "ieee": (False, "fp32"), "tf32": (None, "tf32"), "bf16": (None, "bf16")}
    variants = [(e, p, n, int(b)) for b in args.net_batch.split(",") for n in args.net.split(",")
                for p in args.precisions.split(",") for e in engines]
    label = {v: " ".join(v[:2]) + (" +compiled net" if v[2] == "compiled" else "") + (f" x{v[3]} nets" if v[3] > 1
             else "") for v in variants}
    known = {"fashion-mnist": (lambda: load_dataset("fashion-mnist"), PRESETS["fashion-mnist"]),
             "cifar10-sized": (cifar10_sized, PRESETS["cifar10"])}
    rate = matmul_rate(dev)
    rows = {}
    for name in args.sets.split(","):
        make, cfg = known[name]
        real = make()
        flops = matching_flops(real, cfg, dev)
        times: dict[str, list[dict]] = {label[v]: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                engine, precision, net, nets = v
                flags, arithmetic = modes[precision]
                set_tf32(flags)
                times[label[v]].append(matching_cost_breakdown(
                    real, dataclasses.replace(cfg, engine=engine, precision=arithmetic), dev, steps=args.steps,
                    compile=net == "compiled", net_batch=nets))
        set_tf32(None)
        rows[name] = {"config": cfg.to_dict(), "matching_flops": flops, "runs": times}
        if dev.type == "cuda":
            rows[name]["tf32_relative_update_difference"] = tf32_deviation(real, cfg, dev)
        write_json(args.out, {"device": str(dev), "threads": torch.get_num_threads(), "matmul_flops_per_s": rate,
                              "rows": rows})  # after every set: a run stopped by its time box keeps what it measured
    print(f"device {dev}, {torch.get_num_threads()} threads, measured matmul {rate / 1e9:.1f} GFLOP/s")
    print(f"{'set':<14}{'engine':<44}{'match s':>9}{'net s':>8}{'inner s':>9}{'GFLOP':>8}{'GFLOP/s':>9}"
          f"{'of matmul':>10}{'match x':>9}{'inner x':>9}")
    for name, r in rows.items():
        base = min(t["match_s"] for t in r["runs"][label[variants[0]]])
        base_inner = min(t["inner_step_s"] for t in r["runs"][label[variants[0]]])
        for variant, runs in r["runs"].items():
            match = min(t["match_s"] for t in runs)
            net = min(t["net_train_s"] for t in runs)
            achieved = r["matching_flops"] / match
            print(f"{name:<14}{variant:<44}{match:>9.3f}{net:>8.3f}{match + net:>9.3f}"
                  f"{r['matching_flops'] / 1e9:>8.1f}{achieved / 1e9:>9.1f}{achieved / rate:>10.0%}{base / match:>9.2f}"
                  f"{base_inner / min(t['inner_step_s'] for t in runs):>9.2f}")
        if "tf32_relative_update_difference" in r:
            print(f"{name}: TF32 changes one matching step's image update by "
                  f"{r['tf32_relative_update_difference']:.2e} of its size")


if __name__ == "__main__":
    main()
