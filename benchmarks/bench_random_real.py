"""Accuracy of random real Fashion-MNIST images under the full evaluation protocol.

For each IPC, ``--subsets`` random real subsets (subset seeds 0..S-1), each trained ``--repeat`` times (training
seeds 0..R-1): ConvNet-3, 1000 epochs, batch 64, DSA + CutMix, tested 4 times. The pooled std covers both the
training noise and the subset-to-subset spread. Published references for random real images with ConvNet-3:
about 51% (IPC 1) and 74% (IPC 10). Each subset's result is written as soon as it is done and reused on a
rerun (benchmarks/results/random_real/ipc<K>-subset<S>.json), so a killed run resumes.

    python benchmarks/bench_random_real.py [--ipcs 1,10] [--subsets 5] [--repeat 3] [--epochs 1000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from yoco.data.datasets import load_dataset
from yoco.data.subset import random_real_subset
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.files import write_json
from yoco.runtime import Runtime
from yoco.train import TrainConfig

OUT = Path(__file__).parent / "results" / "random_real"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipcs", default="1,10")
    ap.add_argument("--subsets", type=int, default=5, help="random subsets per IPC (subset seeds 0..S-1)")
    ap.add_argument("--repeat", type=int, default=3, help="training seeds per subset")
    ap.add_argument("--epochs", type=int, default=None, help="default: the protocol's 1000")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    real = load_dataset("fashion-mnist")
    cfg = EvalConfig(repeat=args.repeat, train=TrainConfig(epochs=args.epochs))
    table = []
    for ipc in (int(v) for v in args.ipcs.split(",")):
        results = []
        for subset in range(args.subsets):
            path = args.out / f"ipc{ipc}-subset{subset}.json"
            if path.exists() and json.loads(path.read_text())["config"]["train"]["epochs"] == (args.epochs or 1000):
                results.append(json.loads(path.read_text()))
                continue
            res = evaluate_condensed(random_real_subset(real, ipc, seed=subset), real, cfg,
                                     runtime=Runtime.make(args.device))
            write_json(path, {**res, "subset_seed": subset})
            results.append(res)
        last = np.array([[r["last"] for r in res["runs"]] for res in results])
        best = np.array([[r["best"] for r in res["runs"]] for res in results])
        row = {"ipc": ipc, "subsets": args.subsets, "repeat": args.repeat,
               "last_mean": float(last.mean()), "last_std": float(last.std()),
               "best_mean": float(best.mean()), "best_std": float(best.std()),
               "subset_means_std": float(last.mean(1).std()), "train_std_within_subset": float(last.std(1).mean()),
               "minutes_per_run": float(np.mean([r["seconds"] for res in results for r in res["runs"]]) / 60),
               "sha256": [res["sha256"] for res in results]}
        table.append(row)
        write_json(args.out / f"ipc{ipc}-summary.json", row)
    print(f"{'IPC':>4} {'last (mean ± std)':>18} {'best (mean ± std)':>18} {'subset std':>10} {'train std':>9} "
          f"{'runs':>5} {'min/run':>7}")
    for r in table:
        print(f"{r['ipc']:>4} {100 * r['last_mean']:>9.2f} ± {100 * r['last_std']:<5.2f} "
              f"{100 * r['best_mean']:>9.2f} ± {100 * r['best_std']:<5.2f} {100 * r['subset_means_std']:>10.2f} "
              f"{100 * r['train_std_within_subset']:>9.2f} {r['subsets'] * r['repeat']:>5} {r['minutes_per_run']:>7.1f}")


if __name__ == "__main__":
    main()
