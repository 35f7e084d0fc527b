"""Accuracy of random real images per class under the full evaluation protocol: the floor a condensed set and
every pruning rule is read against (Fashion-MNIST by default; issue 27 asks for CIFAR-10 at IPC 1/2/5/10).

For each IPC, ``--subsets`` random real subsets (subset seeds 0..S-1), each trained ``--repeat`` times (training
seeds 0..R-1): ConvNet-3, the protocol's epochs (1000 outside ImageNet), batch 64, DSA + CutMix, tested 4 times.
The pooled std covers both the training noise and the subset-to-subset spread. Published references for random
real images with ConvNet-3: Fashion-MNIST about 51% (IPC 1) and 74% (IPC 10). Each subset's result is written as
soon as it is done (``<out>/ipc<K>-subset<S>.json``) and reused on a rerun with the same settings, so a killed run
resumes; a file made with other settings is an error, never overwritten.

    python benchmarks/bench_random_real.py [--dataset fashion-mnist] [--ipcs 1,10] [--subsets 5] [--repeat 3]
    python benchmarks/bench_random_real.py --dataset cifar10 --data-root data/cifar10 --ipcs 1,2,5,10 --subsets 3 \\
        --repeat 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from yoco import protocol
from yoco.data.datasets import load_dataset
from yoco.data.subset import random_real_subset
from yoco.errors import YocoError
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.files import write_json
from yoco.runtime import Runtime
from yoco.train import TrainConfig

RESULTS = Path(__file__).parent / "results"


def default_out(dataset: str) -> Path:
    """Where a dataset's floor is kept: ``random_real`` for Fashion-MNIST (its first home), else
    ``random_real_<dataset>``."""
    return RESULTS / ("random_real" if dataset == "fashion-mnist" else f"random_real_{dataset}")


def reusable(path: Path, dataset: str, epochs: int, repeat: int) -> dict[str, Any] | None:
    """The result in ``path`` when it was made with these settings, None when there is none; an error naming the
    file when it was made otherwise (a rerun never overwrites a result it cannot reuse)."""
    if not path.exists():
        return None
    try:
        res = json.loads(path.read_text())
        made = (res["dataset"], res["config"]["train"]["epochs"], len(res["runs"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise YocoError(f"{path}: not a result of this benchmark ({exc}); move it or give another --out") from exc
    if made != (dataset, epochs, repeat):
        raise YocoError(f"{path}: made for {made[0]} with {made[1]} epochs and {made[2]} run(s), not {dataset} with "
                        f"{epochs} and {repeat}; give another --out")
    return res


def summary(ipc: int, results: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    """One IPC's row: last and best over every run of every subset, the spread between subsets and within them."""
    last = np.array([[r["last"] for r in res["runs"]] for res in results])
    best = np.array([[r["best"] for r in res["runs"]] for res in results])
    return {"ipc": ipc, "dataset": results[0]["dataset"], "subsets": len(results), "repeat": repeat,
            "last_mean": float(last.mean()), "last_std": float(last.std()),
            "best_mean": float(best.mean()), "best_std": float(best.std()),
            "subset_means_std": float(last.mean(1).std()), "train_std_within_subset": float(last.std(1).mean()),
            "minutes_per_run": float(np.mean([r["seconds"] for res in results for r in res["runs"]]) / 60),
            "sha256": [res["sha256"] for res in results],
            "test_sha256": results[0].get("test_sha256")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist", help="default: %(default)s")
    ap.add_argument("--data-root", default=None, help="folder holding the dataset (default: yoco's for it)")
    ap.add_argument("--ipcs", default="1,10", help="default: %(default)s")
    ap.add_argument("--subsets", type=int, default=5, help="random subsets per IPC, subset seeds 0..S-1 "
                    "(default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="training seeds per subset (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=None, help="default: the protocol's for the dataset")
    ap.add_argument("--device", default="auto", help="default: %(default)s")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/random_real[_DATASET]")
    args = ap.parse_args(argv)
    real = load_dataset(args.dataset, args.data_root)
    out = args.out or default_out(real.name)
    cfg = EvalConfig(repeat=args.repeat, train=TrainConfig(epochs=args.epochs))
    table = []
    for ipc in (int(v) for v in args.ipcs.split(",")):
        epochs = args.epochs or protocol.eval_epochs(real.name, ipc, real.num_classes)
        results = []
        for subset in range(args.subsets):
            path = out / f"ipc{ipc}-subset{subset}.json"
            res = reusable(path, real.name, epochs, args.repeat)
            if res is None:
                res = {**evaluate_condensed(random_real_subset(real, ipc, seed=subset), real, cfg,
                                            runtime=Runtime.make(args.device)), "subset_seed": subset}
                write_json(path, res)
            results.append(res)
        row = summary(ipc, results, args.repeat)
        table.append(row)
        write_json(out / f"ipc{ipc}-summary.json", row)
    print(f"{real.name}: {'IPC':>4} {'last (mean ± std)':>18} {'best (mean ± std)':>18} {'subset std':>10} "
          f"{'train std':>9} {'runs':>5} {'min/run':>7}")
    for r in table:
        print(f"{'':>{len(real.name) + 1}} {r['ipc']:>4} {100 * r['last_mean']:>9.2f} ± {100 * r['last_std']:<5.2f} "
              f"{100 * r['best_mean']:>9.2f} ± {100 * r['best_std']:<5.2f} {100 * r['subset_means_std']:>10.2f} "
              f"{100 * r['train_std_within_subset']:>9.2f} {r['subsets'] * r['repeat']:>5} {r['minutes_per_run']:>7.1f}")


if __name__ == "__main__":
    main()
