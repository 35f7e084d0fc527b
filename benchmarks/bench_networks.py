"""Networks trained per second: one at a time, batched (one stacked computation), and in worker processes.

N fresh ConvNet-3s (width 128) are trained on the same 100-image Fashion-MNIST-shaped set (the size of a
ladder cell) for E epochs with the evaluation recipe (DSA + CutMix, batch 64): one after another in this
process, as one batched computation (``yoco.train.train_batched``), and split over ``--workers`` processes;
``--vmap`` adds the batched way as it was before grouped convolutions (``torch.func.vmap`` over the networks).
All in one run, each way timed ``--rounds`` times interleaved; FLOPs of one training step are counted with
torch's FlopCounterMode and compared with the measured matmul rate.

    python benchmarks/bench_networks.py [--nets 4] [--epochs 20] [--width 128] [--workers 2] [--rounds 2]
        [--compile] [--vmap] [--device auto]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from yoco import train as train_mod
from yoco.files import write_json
from yoco.models import create_model, stacked
from yoco.runtime import resolve_device, seeded
from yoco.train import TrainConfig, train, train_batched

OUT = Path(__file__).parent / "results"


def _data(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(100, 1, 28, 28, generator=g).to(device), (torch.arange(100) % 10).to(device)


def _models(n: int, device: torch.device, width: int) -> list[torch.nn.Module]:
    out = []
    for seed in range(n):
        with seeded(seed):
            out.append(create_model("convnet3", 10, 1, 28, width=width).to(device))
    return out


def _cfgs(n: int, epochs: int) -> list[TrainConfig]:
    return [TrainConfig(epochs=epochs, seed=s) for s in range(n)]


def one_by_one(n: int, epochs: int, device: str, width: int, compile: bool = False) -> float:
    dev = torch.device(device)
    x, y = _data(dev)
    t0 = time.perf_counter()
    for model, cfg in zip(_models(n, dev, width), _cfgs(n, epochs), strict=True):
        train(model, x, y, cfg, progress=False, compile=compile)
    _sync(dev)
    return time.perf_counter() - t0


def batched(n: int, epochs: int, device: str, width: int, compile: bool = False, vmap: bool = False) -> float:
    dev = torch.device(device)
    x, y = _data(dev)
    with _vmapped() if vmap else contextlib.nullcontext():
        t0 = time.perf_counter()
        train_batched(_models(n, dev, width), [x] * n, [y] * n, _cfgs(n, epochs), progress=False, compile=compile)
        _sync(dev)
        return time.perf_counter() - t0


_VMAP_STEPS: dict = {}
_VMAP_FORWARDS: dict = {}


@contextlib.contextmanager
def _vmapped() -> Iterator[None]:
    """The batched step as before grouped convolutions: ``stacked_forward``'s vmap fallback, with its own caches
    of forwards and (compiled) steps, so neither serves the grouped ones here or the other way round."""
    with mock.patch.object(stacked, "groupable", lambda model: False), \
            mock.patch.object(stacked, "_FORWARDS", _VMAP_FORWARDS), \
            mock.patch.object(train_mod, "_STEPS", _VMAP_STEPS):
        yield


def _worker(args: tuple[int, int, str, int, int]) -> float:
    n, epochs, device, threads, width = args
    torch.set_num_threads(threads)
    return one_by_one(n, epochs, device, width)


def workers(n: int, epochs: int, device: str, k: int, width: int) -> float:
    import multiprocessing as mp
    import os

    threads = max(1, (os.cpu_count() or 1) // k)
    share = [n // k + (i < n % k) for i in range(k)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(k, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_worker, [(s, epochs, device, threads, width) for s in share if s]))
    return time.perf_counter() - t0


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def step_flops(device: torch.device, width: int) -> int:
    """FLOPs of one training step (forward + backward) of ConvNet-3 on a batch of 64."""
    model = create_model("convnet3", 10, 1, 28, width=width).to(device)
    x, y = torch.randn(64, 1, 28, 28, device=device), torch.arange(64, device=device) % 10
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return int(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--width", type=int, default=128, help="ConvNet width (128: the protocol; 32: the demo)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also both ways through torch.compile (compiled once, "
                    "before the timed rounds; the compile time is reported apart)")
    ap.add_argument("--vmap", action="store_true", help="also the batched way(s) through vmap, as before grouped "
                    "convolutions")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(OUT / "networks.json"))
    args = ap.parse_args()
    dev = resolve_device(args.device)
    from bench_condense import matmul_rate

    rate = matmul_rate(dev)
    flops = step_flops(dev, args.width) * 100 / 64 * args.epochs * args.nets  # 100 images per epoch (batches of 64 and 36)
    ways = {"one by one": lambda: one_by_one(args.nets, args.epochs, str(dev), args.width),
            "batched": lambda: batched(args.nets, args.epochs, str(dev), args.width)}
    if dev.type == "cpu" and args.workers > 1:
        ways[f"{args.workers} workers"] = lambda: workers(args.nets, args.epochs, str(dev), args.workers, args.width)
    if args.vmap:
        ways["batched, vmap"] = lambda: batched(args.nets, args.epochs, str(dev), args.width, vmap=True)
    compile_s = {}
    if args.compile:
        ways["one by one, compiled"] = lambda: one_by_one(args.nets, args.epochs, str(dev), args.width, True)
        ways["batched, compiled"] = lambda: batched(args.nets, args.epochs, str(dev), args.width, True)
        compile_s["one by one, compiled"] = one_by_one(1, 1, str(dev), args.width, True)
        compile_s["batched, compiled"] = batched(args.nets, 1, str(dev), args.width, True)
        if args.vmap:
            ways["batched, vmap, compiled"] = lambda: batched(args.nets, args.epochs, str(dev), args.width, True, True)
            compile_s["batched, vmap, compiled"] = batched(args.nets, 1, str(dev), args.width, True, True)
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(args.rounds):
        for name, fn in ways.items():
            times[name].append(fn())
    write_json(args.out, {"device": str(dev), "threads": torch.get_num_threads(), "nets": args.nets,
                          "epochs": args.epochs, "width": args.width, "matmul_flops_per_s": rate, "flops": flops,
                          "seconds": times, "compile_warm_up_seconds": compile_s})
    base = min(times["one by one"])
    print(f"device {dev}, {args.nets} width-{args.width} networks x {args.epochs} epochs of 100 images; matmul {rate / 1e9:.1f} GFLOP/s")
    print(f"{'way':<25}{'seconds':>9}{'nets/s':>9}{'GFLOP/s':>9}{'of matmul':>10}{'vs one by one':>14}")
    for name, t in compile_s.items():
        print(f"warm-up of {name} (compiling, one epoch): {t:.1f} s")
    for name, ts in times.items():
        t = min(ts)
        print(f"{name:<25}{t:>9.1f}{args.nets / t:>9.3f}{flops / t / 1e9:>9.1f}{flops / t / rate:>10.0%}{base / t:>14.2f}x")


if __name__ == "__main__":
    main()
