"""What ``ladder --compile`` pays before its faster steps: how often a ladder's groups compile the batched step.

A full-protocol ladder trains its networks in groups of one set size each (24 networks on 40, 80 and 200 decoded
images for IPC 1 / 2 / 5 of a Fashion-MNIST IPC-10 factor-2 set, then 3 on all 400 for the dynamics and the
unpruned source). Each group is trained here for one epoch through ``train_batched(compile=True)`` in one process,
in the ladder's order, and the unique graphs torch.compile has made so far and each group's seconds (compiling
included) are printed; the last group repeats a shape, so its time is the steps alone. Inductor keeps compiled
code in an on-disk cache across processes, so a first run's cost shows only with an empty one. Writes
benchmarks/results/compile_groups.json (or --out).

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python benchmarks/bench_compile_groups.py [--width 16] [--device auto]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch._dynamo.utils import counters

from yoco.files import write_json
from yoco.models import create_model
from yoco.runtime import resolve_device, seeded
from yoco.train import TrainConfig, train_batched

OUT = Path(__file__).parent / "results"
GROUPS = [(24, 40), (24, 80), (24, 200), (3, 400), (3, 400)]  # (networks, images), the ladder's order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=16, help="ConvNet-3 width (the graph count does not depend on it)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(OUT / "compile_groups.json"))
    args = ap.parse_args()
    dev = resolve_device(args.device)
    rows = []
    print(f"{'networks':>9}{'images':>8}{'graphs so far':>15}{'seconds':>9}")
    for n_nets, n_images in GROUPS:
        nets = []
        for s in range(n_nets):
            with seeded(s):
                nets.append(create_model("convnet3", 10, 1, 28, width=args.width).to(dev))
        x, y = torch.rand(n_images, 1, 28, 28, device=dev), (torch.arange(n_images) % 10).to(dev)
        start = time.perf_counter()
        train_batched(nets, [x] * n_nets, [y] * n_nets, [TrainConfig(epochs=1, seed=s) for s in range(n_nets)],
                      progress=False, compile=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        row = {"networks": n_nets, "images": n_images, "graphs": counters["stats"]["unique_graphs"],
               "seconds": time.perf_counter() - start}
        rows.append(row)
        print(f"{n_nets:>9}{n_images:>8}{row['graphs']:>15}{row['seconds']:>9.1f}")
    write_json(args.out, {"device": str(dev), "threads": torch.get_num_threads(), "width": args.width,
                          "torch": torch.__version__, "groups": rows})


if __name__ == "__main__":
    main()
