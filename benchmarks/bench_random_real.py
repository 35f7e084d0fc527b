"""Accuracy of random real Fashion-MNIST images under the full evaluation protocol (issue: evaluation).

IPC 1 and IPC 10 random real training images (subset seed 0), ConvNet-3, 1000 epochs, batch 64, DSA + CutMix,
3 repeats (seeds 0, 1, 2). Published references for random real images with ConvNet-3: about 51% (IPC 1) and
74% (IPC 10). Writes benchmarks/results/random_real_<ipc>.json and prints a table.

    python benchmarks/bench_random_real.py [--ipcs 1,10] [--repeat 3] [--epochs 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yoco.data.datasets import load_dataset
from yoco.data.subset import random_real_subset
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.io import write_json

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipcs", default="1,10")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    real = load_dataset("fashion-mnist")
    rows = []
    for ipc in (int(v) for v in args.ipcs.split(",")):
        cs = random_real_subset(real, ipc, seed=0)
        res = evaluate_condensed(cs, real, EvalConfig(repeat=args.repeat, epochs=args.epochs, device=args.device))
        write_json(OUT / f"random_real_ipc{ipc}.json", res)
        rows.append((ipc, res))
    print(f"{'IPC':>4} {'last (mean ± std)':>20} {'best (mean ± std)':>20} {'runs':>5} {'min/run':>8}")
    for ipc, r in rows:
        mins = sum(x["seconds"] for x in r["runs"]) / len(r["runs"]) / 60
        print(f"{ipc:>4} {100 * r['last_mean']:>11.2f} ± {100 * r['last_std']:<6.2f} "
              f"{100 * r['best_mean']:>11.2f} ± {100 * r['best_std']:<6.2f} {len(r['runs']):>5} {mins:>8.1f}")


if __name__ == "__main__":
    main()
