"""Does ``torch.compile`` pay for yoco's training loop? Eager vs compiled ConvNet-3, side by side in one run.

One network per width is trained with the evaluation recipe (DSA + CutMix, batch 64) on a 100-image
Fashion-MNIST-shaped set for ``--epochs`` epochs, eager and ``torch.compile``-d, interleaved for ``--rounds``
rounds after one warm-up of the compiled model (its compile time is reported apart).

    python benchmarks/bench_compile.py [--widths 32,128] [--epochs 20] [--rounds 2] [--mode MODE] [--device auto]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_networks import _data, _models

from yoco.files import write_json
from yoco.runtime import resolve_device
from yoco.train import TrainConfig, train

OUT = Path(__file__).parent / "results"


def timed(width: int, epochs: int, compiled: bool, device: torch.device, mode: str | None = None) -> float:
    x, y = _data(device)
    (model,) = _models(1, device, width)
    net = torch.compile(model, mode=mode) if compiled else model
    t0 = time.perf_counter()
    train(net, x, y, TrainConfig(epochs=epochs, seed=0), progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default="32,128")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mode", default=None, help="torch.compile mode (reduce-overhead: CUDA graphs on a GPU)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(OUT / "compile.json"))
    args = ap.parse_args()
    dev = resolve_device(args.device)
    rows = {}
    print(f"device {dev}, {torch.get_num_threads()} threads, {args.epochs} epochs of 100 images")
    print(f"{'width':>6}{'compile s':>11}{'eager s':>9}{'compiled s':>12}{'speed-up':>10}")
    for width in (int(w) for w in args.widths.split(",")):
        warm = timed(width, 2, True, dev, args.mode)
        eager, comp = [], []
        for _ in range(args.rounds):
            eager.append(timed(width, args.epochs, False, dev))
            comp.append(timed(width, args.epochs, True, dev, args.mode))
        rows[width] = {"warm_up_s": warm, "eager_s": eager, "compiled_s": comp}
        print(f"{width:>6}{warm:>11.1f}{min(eager):>9.2f}{min(comp):>12.2f}{min(eager) / min(comp):>9.2f}x")
    write_json(args.out, {"device": str(dev), "threads": torch.get_num_threads(), "epochs": args.epochs,
                          "mode": args.mode, "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
