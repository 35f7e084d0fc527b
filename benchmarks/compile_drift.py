"""Does ``torch.compile`` move a full-length training's accuracy? The same evaluation, eager and compiled.

``bench_compile.py`` measures the speed; this measures what compiling does to the result: a condensed set (by
default the shipped one) is evaluated with the protocol's recipe for ``--epochs`` epochs and ``--seeds`` training
seeds, once with eager networks and once with every network passed through ``torch.compile``, and the per-seed
last-epoch accuracies are compared. Float reordering makes the two trainings drift apart; the question is whether
the drift is inside the seed-to-seed spread.

    python benchmarks/compile_drift.py [--set FILE] [--width 32] [--epochs 1000] [--seeds 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from yoco import runner
from yoco.data.condensed import load
from yoco.data.datasets import load_dataset
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.files import write_json
from yoco.ladder.config import DEMO_SET
from yoco.runtime import Runtime
from yoco.train import TrainConfig

OUT = Path(__file__).parent / "results"


@contextlib.contextmanager
def compiled_networks() -> Iterator[None]:
    """Every network the runner builds inside the block is a ``torch.compile``-d module."""
    build = runner.create_model
    runner.create_model = lambda *a, **k: torch.compile(build(*a, **k))
    try:
        yield
    finally:
        runner.create_model = build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", type=Path, default=DEMO_SET)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(OUT / "compile_drift.json"))
    args = ap.parse_args()
    cs = load(args.set)
    real = load_dataset(cs.meta.dataset)
    cfg = EvalConfig(repeat=args.seeds, width=args.width, train=TrainConfig(epochs=args.epochs))
    results, seconds = {}, {}
    for mode in ("eager", "compiled"):
        t0 = time.perf_counter()
        with compiled_networks() if mode == "compiled" else contextlib.nullcontext():
            results[mode] = evaluate_condensed(cs, real, cfg, runtime=Runtime.make(args.device))
        seconds[mode] = time.perf_counter() - t0
    eager, comp = ([r["last"] for r in results[m]["runs"]] for m in ("eager", "compiled"))
    write_json(args.out, {"set": str(args.set), "sha256": results["eager"]["sha256"], "width": args.width,
                          "epochs": args.epochs, "seeds": args.seeds, "torch": torch.__version__,
                          "seconds": seconds, "results": results})
    print(f"{args.set.name}: width {args.width}, {args.epochs} epochs, last-epoch test accuracy per training seed")
    print(f"{'seed':>5}{'eager':>9}{'compiled':>10}{'difference':>12}")
    for s, (a, b) in enumerate(zip(eager, comp, strict=True)):
        print(f"{s:>5}{100 * a:>9.2f}{100 * b:>10.2f}{100 * (b - a):>+12.2f}")
    print(f"seconds: eager {seconds['eager']:.0f}, compiled {seconds['compiled']:.0f} (compiling included)")


if __name__ == "__main__":
    main()
