"""Accuracy against condensation budget: one IDC (or MDC, ``--method mdc``) run, the set saved at several points of
its schedule, each evaluated under the full protocol. Tells users how much of IDC's 2000 x 100 schedule they actually
need; an MDC run's sets are the sources of its ladder (``mdc_prefix`` beside YOCO's rule).

Resumable across short GPU loans: the run's checkpoint (``<out>/run.safetensors.ckpt``, a few MB, meant to be
committed) is kept between calls; each call condenses in chunks of ``--chunk`` outer iterations while the next
chunk fits in ``--minutes``, saves the set at every point it passes and at the furthest iteration reached, and then
evaluates every saved set not evaluated yet (``--no-eval``: later, e.g. on the CPU with ``--minutes 0``). Run the
same command again to continue.

    python benchmarks/condense_budget.py --dataset fashion-mnist --ipc 10 --points 25,50,100,200,500,1000,2000 \\
        --minutes 8 --device cuda --out benchmarks/results/condense_budget_fm
    python benchmarks/condense_budget.py --method mdc --dataset fashion-mnist --ipc 10 --points 100,200,500,1000,2000 \\
        --minutes 8 --device cuda --out benchmarks/results/condense_budget_fm_mdc

Writes ``<out>/sets/iter<N>.safetensors``, ``<out>/evals/iter<N>.json``, ``<out>/budget.json``, ``<out>/budget.md``
and ``<out>/budget.png``; prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tarfile
import time
from pathlib import Path

from yoco.condense import METHODS, MDCConfig, condense, condense_mdc, resolve_config, resolve_mdc_config
from yoco.data.condensed import load, save
from yoco.data.datasets import load_dataset
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.files import write_json, write_text
from yoco.ladder.cache import read_json
from yoco.runtime import Runtime
from yoco.train import TrainConfig


def _done(run: Path) -> int:
    """Outer iterations the run has finished (its last saved set logs one matching loss per iteration)."""
    return len(load(run).meta.extra.get("matching_loss", [])) if run.is_file() else 0


def _snapshot(folder: Path, tar: Path | None) -> None:
    """Pack ``folder`` into ``tar`` atomically, so a call cut off by its time limit still returns the run so far."""
    if tar is None:
        return
    tmp = tar.with_name(tar.name + ".part")
    with tarfile.open(tmp, "w") as t:
        t.add(folder, arcname=folder.name)
    os.replace(tmp, tar)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--method", choices=METHODS, default="idc", help="idc, or mdc (IDC plus MDC's subset loss, mse)")
    ap.add_argument("--mdc-period", type=int, default=None, help="MDC: iterations between subset choices (default 100)")
    ap.add_argument("--mdc-class-wise", action="store_true", help="MDC: each class chooses its own subset")
    ap.add_argument("--points", default="25,50,100,200,500,1000,2000", help="outer iterations at which to save")
    ap.add_argument("--inner", type=int, default=None, help="inner steps per iteration (default: the preset's 100)")
    ap.add_argument("--width", type=int, default=None, help="matching network width (default: the preset's)")
    ap.add_argument("--engine", default="auto", help="IDC engine: auto, batched or sequential")
    ap.add_argument("--minutes", type=float, default=8.0, help="condensation wall time of this call")
    ap.add_argument("--chunk", type=int, default=5, help="outer iterations between checkpoints and time checks")
    ap.add_argument("--no-eval", action="store_true",
                    help="evaluate nothing new (e.g. on a GPU loan: evaluate later on another machine); the table "
                         "and plot are still made from the evaluations there are")
    ap.add_argument("--reference", action="append", default=[], metavar="LABEL=ACCURACY",
                    help="a horizontal reference line on the plot, accuracy in %% (repeatable; default: the lines "
                         "the folder's budget.json was last drawn with)")
    ap.add_argument("--snapshot", type=Path, default=None, help="tar the output folder here after every chunk")
    ap.add_argument("--eval-repeat", type=int, default=3)
    ap.add_argument("--eval-epochs", type=int, default=None, help="default: the protocol's")
    ap.add_argument("--compile", action="store_true", help="the network between matching steps torch.compile-d")
    ap.add_argument("--net-batch", type=int, default=None,
                    help="outer iterations whose networks train side by side (default: the device's; at most --chunk)")
    ap.add_argument("--precision", default=None, help="fp32 (the protocol), tf32 or bf16 (default: fp32); a checkpoint "
                    "resumes under another one")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/condense_budget_fm"))
    args = ap.parse_args()
    points = sorted(int(v) for v in args.points.split(","))
    real = load_dataset(args.dataset, root=args.data_root)
    resolve = resolve_mdc_config if args.method == "mdc" else resolve_config
    base = resolve(real.name, None, ipc=args.ipc, checkpoint_every=args.chunk, engine=args.engine,
                   **{k: v for k, v in {"inner": args.inner, "width": args.width,
                                        "precision": args.precision}.items() if v is not None})
    mdc = MDCConfig(**{k: v for k, v in {"period": args.mdc_period, "class_wise": args.mdc_class_wise or None}.items()
                       if v is not None})
    run = args.out / "run.safetensors"
    sets = args.out / "sets"
    sets.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done, per_chunk = _done(run), 0.0
    while done < points[-1]:
        left = 60 * args.minutes - (time.perf_counter() - start)
        if left < per_chunk or left <= 0:
            break
        upto = min(done + args.chunk, next(p for p in points if p > done))
        t0 = time.perf_counter()
        kw = {"runtime": Runtime.make(args.device, progress=False, compile=args.compile), "resume": True,
              "keep_checkpoint": True, "net_batch": args.net_batch}
        cfg = dataclasses.replace(base, iterations=upto)
        cs = condense_mdc(real, cfg, run, mdc, **kw) if args.method == "mdc" else condense(real, cfg, run, **kw)
        per_chunk = (time.perf_counter() - t0) * args.chunk / (upto - done)
        done = upto
        print(f"iteration {done}: matching loss {cs.meta.extra['matching_loss'][-1]:.5g}, "
              f"{per_chunk / args.chunk:.2f} s per outer iteration, {time.perf_counter() - start:.0f} s so far",
              flush=True)
        if done in points:
            save(cs, sets / f"iter{done}.safetensors")
        _snapshot(args.out, args.snapshot)
    if done and not (sets / f"iter{done}.safetensors").exists():  # the furthest state reached is a point too
        save(load(run), sets / f"iter{done}.safetensors")
        _snapshot(args.out, args.snapshot)
    if done < points[-1]:
        print(f"stopped at iteration {done} of {points[-1]}; run the command again to continue")
    rows = []
    cfg = EvalConfig(repeat=args.eval_repeat, train=TrainConfig(epochs=args.eval_epochs))
    saved = sorted(sets.glob("iter*.safetensors"), key=lambda p: int(p.stem[4:]))
    for target in reversed(saved):  # the furthest set first: the one a user would ship
        result_path = args.out / "evals" / f"{target.stem}.json"
        if not result_path.exists() and not args.no_eval:
            write_json(result_path, evaluate_condensed(load(target), real, cfg, runtime=Runtime.make(args.device)))
    for target in saved:
        point = int(target.stem[4:])
        result_path = args.out / "evals" / f"{target.stem}.json"
        if not result_path.exists():
            print(f"{target.name}: not evaluated yet")
            continue
        res = json.loads(result_path.read_text())
        rows.append({"iterations": point, "last_mean": res["last_mean"], "last_std": res["last_std"],
                     "best_mean": res["best_mean"], "best_std": res["best_std"], "sha256": res["sha256"]})
    if not args.reference:  # an evaluation-only rerun draws the lines the folder was last drawn with
        args.reference = (read_json(args.out / "budget.json") or {}).get("references", [])
    write_json(args.out / "budget.json", {"config": base.to_dict(), "dataset": real.name, "method": args.method,
                                          **({"mdc": mdc.to_dict()} if args.method == "mdc" else {}),
                                          "rows": rows, "references": args.reference})
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
        for i, ref in enumerate(args.reference):
            label, value = ref.rsplit("=", 1)
            ax.axhline(float(value), color=f"C{i + 1}", linestyle="--", linewidth=1, label=label)
        if args.reference:
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xscale("log")
        ticks = [t for t in (1, 10, 25, 50, 100, 200, 500, 1000, 2000, 5000) if t <= points[-1]]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlim(1, points[-1] * 1.1)  # the whole schedule, so the reached part reads as a fraction of it
        ax.set_xlabel(f"{args.method.upper()} outer iterations (each {base.inner} inner steps)")
        ax.set_ylabel("test accuracy (%), last epoch")
        ax.set_title(f"{real.name} IPC {args.ipc}: accuracy against condensation budget")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.out / "budget.png")


if __name__ == "__main__":
    main()
