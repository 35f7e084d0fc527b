"""Host time of the random draws of one batched training step, this tree beside an earlier revision, in one run.

``train_batched`` draws every network's batch order, DSA parameters and CutMix from the network's own generator
on the CPU, so the host's time per step grows with the number of networks N whatever the device does; on a GPU
that time is spent before any kernel of the step is launched. For each N, the evaluation recipe's draws for a
batch of 64 Fashion-MNIST-shaped images (``_draw_many``, CutMix with the protocol's p = 0.5) are timed in a
subprocess per revision, the revisions alternating round by round so both see the same machine load; the best
round of each is kept. The earlier revision is checked out with ``git archive`` into a temporary folder.

    python benchmarks/bench_draws.py [--base d2564f9] [--nets 1,16,30,75] [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from yoco.files import write_json

OUT = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent

# run in a fresh interpreter on one thread: prints {N: seconds per step} for the yoco found on PYTHONPATH
_TIMER = """
import dataclasses, json, sys, time, torch
torch.set_num_threads(1)
from yoco.train import TrainConfig, _Recipe, _draw_many
cfg = TrainConfig().resolve("fashion-mnist", "eval", epochs=1000, mean=(0.286,), std=(0.353,), flip=True)
out = {}
for n in json.loads(sys.argv[1]):
    recipes = [_Recipe(dataclasses.replace(cfg, seed=s)) for s in range(n)]
    for _ in range(10):
        _draw_many(recipes, 64, 28, 28, torch.device("cpu"))
    steps, start = max(20, 2000 // n), time.perf_counter()
    for _ in range(steps):
        _draw_many(recipes, 64, 28, 28, torch.device("cpu"))
    out[n] = (time.perf_counter() - start) / steps
print(json.dumps(out))
"""


def time_tree(src: Path, nets: list[int]) -> dict[int, float]:
    """Seconds per step for each N with the ``yoco`` package under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _TIMER, json.dumps(nets)], env=env, check=True,
                          capture_output=True, text=True)
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="d2564f9", help="the earlier revision to compare with")
    ap.add_argument("--nets", type=lambda v: [int(n) for n in v.split(",")], default=[1, 16, 30, 75],
                    help="numbers of networks drawn for per step")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per revision (the best is kept)")
    ap.add_argument("--out", default=str(OUT / "draws.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "base.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), args.base, "src"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        trees = {args.base: Path(tmp) / "src", "this tree": ROOT / "src"}
        best: dict[str, dict[int, float]] = {name: {} for name in trees}
        for _ in range(args.rounds):
            for name, src in trees.items():
                for n, sec in time_tree(src, args.nets).items():
                    best[name][n] = min(best[name].get(n, sec), sec)
    rows = [{"networks": n, "base_us": 1e6 * best[args.base][n], "now_us": 1e6 * best["this tree"][n],
             "speedup": best[args.base][n] / best["this tree"][n]} for n in args.nets]
    write_json(args.out, {"base": args.base, "rounds": args.rounds, "batch": 64, "recipe": "fashion-mnist eval",
                          "rows": rows})
    print(f"{'networks':>8}  {args.base + ' (ms/step)':>18}  {'now (ms/step)':>14}  {'us/network now':>14}  speed-up")
    for r in rows:
        print(f"{r['networks']:>8}  {r['base_us'] / 1e3:>18.2f}  {r['now_us'] / 1e3:>14.2f}  "
              f"{r['now_us'] / r['networks']:>14.1f}  {r['speedup']:>7.2f}x")


if __name__ == "__main__":
    main()
