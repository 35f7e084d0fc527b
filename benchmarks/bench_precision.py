"""The training loop at each arithmetic precision, measured side by side in one run (issue 28).

For ConvNet-3 (width 128 or ``--width``, batch 64) on 28x28x1 and 32x32x3 inputs, yoco's own loop (`yoco.train.train`: batched
DSA + CutMix, the protocol's recipe) is timed at fp32 (PyTorch's defaults), tf32 (CUDA only) and bf16 (autocast,
float32 weights) in interleaved rounds (median). Each row gives ms per step, the time relative to fp32, and the
achieved TFLOP/s (forward+backward FLOPs from torch's FlopCounterMode) as a share of this machine's measured
matrix-multiply rate at that precision. On a CPU with AMX or AVX512-BF16, bf16 autocast runs the convolutions in
oneDNN's bfloat16 kernels.

    python benchmarks/bench_precision.py [--steps 28] [--rounds 5] [--width 128] [--device auto] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from measure import matmul_tflops, step_flops, sync

from yoco.files import write_json
from yoco.models import create_model
from yoco.provenance import device_name, provenance
from yoco.runtime import resolve_device, seeded
from yoco.train import TrainConfig, train

BATCH = 64


def bench(channels: int, size: int, precisions: list[str], steps: int, rounds: int, device: torch.device,
          width: int) -> dict[str, float]:
    """Median seconds per training step of yoco's loop at each precision, the same model and data for all."""
    n = BATCH * max(1, steps)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, channels, size, size, generator=g).to(device), (torch.arange(n) % 10).to(device)
    with seeded(0):
        model = create_model("convnet3", 10, channels, (size, size), width=width).to(device)
    flops = step_flops(model, x[:BATCH], y[:BATCH])
    recipe = TrainConfig(epochs=1, dsa="color_crop_flip_scale_rotate", mix="cutmix", mix_p=0.5, base_aug="none",
                         flip=True)

    def run(p: str) -> None:
        train(model, x, y, TrainConfig(**{**recipe.__dict__, "precision": p}), progress=False)

    for p in precisions:
        run(p)  # warm-up (oneDNN and cuDNN pick their kernels on the first calls)
    sync(device)
    times: dict[str, list[float]] = {p: [] for p in precisions}
    for r in range(rounds):  # interleaved, order rotated, so load drift hits every precision alike
        for p in precisions[r % len(precisions):] + precisions[: r % len(precisions)]:
            t = time.perf_counter()
            run(p)
            sync(device)
            times[p].append((time.perf_counter() - t) / (n // BATCH))
    return {"flops_per_step": flops, **{p: statistics.median(ts) for p, ts in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=28, help="training steps per timed epoch")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds; the median is reported")
    ap.add_argument("--width", type=int, default=128, help="ConvNet-3's width (the protocol's 128; the demo's 32)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--out", default=None, help="also write the figures as JSON")
    args = ap.parse_args()
    device = resolve_device(args.device)
    precisions = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    peaks = {p: matmul_tflops(device, p) for p in precisions}
    print(f"device: {device_name(device)}, {torch.get_num_threads()} threads, torch {torch.__version__} "
          f"({platform.machine()})")
    print("measured matmul: " + ", ".join(f"{p} {v:.2f} TFLOP/s" for p, v in peaks.items()))
    print(f"{'input':<9} {'precision':<9} {'ms/step':>8} {'vs fp32':>8} {'TFLOP/s':>8} {'of its peak':>12}")
    rows = {}
    for c, s in ((1, 28), (3, 32)):
        res = bench(c, s, precisions, args.steps, args.rounds, device, args.width)
        rows[f"{s}x{s}x{c}"] = res
        for p in precisions:
            tf = res["flops_per_step"] / res[p] / 1e12
            print(f"{f'{s}x{s}x{c}':<9} {p:<9} {1e3 * res[p]:8.1f} {res['fp32'] / res[p]:7.2f}x {tf:8.3f} "
                  f"{tf / peaks[p]:11.0%}")
        if args.out:  # after each input, so a run stopped at its time limit keeps what it measured
            write_json(args.out, {"matmul_tflops": peaks, "width": args.width, "rows": rows,
                                  "provenance": provenance(device)})


if __name__ == "__main__":
    main()
