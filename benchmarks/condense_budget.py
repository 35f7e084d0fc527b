"""Accuracy against condensation budget: one IDC run, the set saved at several points of its schedule, each
evaluated under the full protocol. Tells users how much of IDC's 2000 x 100 schedule they actually need.

Resumable across short GPU loans: the run's checkpoint (``<out>/run.safetensors.ckpt``, a few MB, meant to be
committed) is kept between calls, each call condenses until ``--minutes`` run out (finishing the point it is
on) and then evaluates every saved point not evaluated yet. Run the same command again to continue.

    python benchmarks/condense_budget.py --dataset fashion-mnist --ipc 10 --points 25,50,100,200,500,1000,2000 \\
        --minutes 8 --device cuda --out benchmarks/results/condense_budget_fm

Writes ``<out>/sets/iter<N>.safetensors``, ``<out>/evals/iter<N>.json``, ``<out>/budget.json``, ``<out>/budget.md``
and ``<out>/budget.png``; prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from yoco.condense import condense, resolve_config
from yoco.data.condensed import load, save
from yoco.data.datasets import load_dataset
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.files import write_json, write_text
from yoco.train import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--points", default="25,50,100,200,500,1000,2000", help="outer iterations at which to save")
    ap.add_argument("--inner", type=int, default=None, help="inner steps per iteration (default: the preset's 100)")
    ap.add_argument("--width", type=int, default=None, help="matching network width (default: the preset's)")
    ap.add_argument("--minutes", type=float, default=8.0, help="condensation wall time of this call")
    ap.add_argument("--eval-repeat", type=int, default=3)
    ap.add_argument("--eval-epochs", type=int, default=None, help="default: the protocol's")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/condense_budget_fm"))
    args = ap.parse_args()
    points = sorted(int(v) for v in args.points.split(","))
    real = load_dataset(args.dataset, root=args.data_root)
    base = resolve_config(real.name, None, ipc=args.ipc, checkpoint_every=5,
                          **{k: v for k, v in {"inner": args.inner, "width": args.width}.items() if v is not None})
    run = args.out / "run.safetensors"
    (args.out / "sets").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for point in points:
        target = args.out / "sets" / f"iter{point}.safetensors"
        if target.exists():
            continue
        if time.perf_counter() - start > 60 * args.minutes:
            print(f"time is up before iteration {point}; run the command again to continue")
            break
        cs = condense(real, dataclasses.replace(base, iterations=point), run, device=args.device, resume=True,
                      keep_checkpoint=True)
        save(cs, target)
    rows = []
    cfg = EvalConfig(repeat=args.eval_repeat, train=TrainConfig(epochs=args.eval_epochs))
    for point in points:
        target = args.out / "sets" / f"iter{point}.safetensors"
        result_path = args.out / "evals" / f"iter{point}.json"
        if not target.exists():
            continue
        if not result_path.exists():
            write_json(result_path, evaluate_condensed(load(target), real, cfg, device=args.device))
        res = json.loads(result_path.read_text())
        rows.append({"iterations": point, "last_mean": res["last_mean"], "last_std": res["last_std"],
                     "best_mean": res["best_mean"], "best_std": res["best_std"], "sha256": res["sha256"]})
    write_json(args.out / "budget.json", {"config": base.to_dict(), "dataset": real.name, "rows": rows})
    lines = ["| outer iterations | last | best |", "| --- | --- | --- |"]
    lines += [f"| {r['iterations']} | {100 * r['last_mean']:.2f} ± {100 * r['last_std']:.2f} | "
              f"{100 * r['best_mean']:.2f} ± {100 * r['best_std']:.2f} |" for r in rows]
    write_text(args.out / "budget.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    if rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
        ax.errorbar([r["iterations"] for r in rows], [100 * r["last_mean"] for r in rows],
                    yerr=[100 * r["last_std"] for r in rows], marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("IDC outer iterations (each 100 inner steps)")
        ax.set_ylabel("test accuracy (%), last epoch")
        ax.set_title(f"{real.name} IPC {args.ipc}: accuracy against condensation budget")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.out / "budget.png")


if __name__ == "__main__":
    main()
