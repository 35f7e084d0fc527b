"""Cost of one IDC outer iteration, split into its parts, next to a plain forward/backward (issue: condensation).

For Fashion-MNIST (the real files) and a CIFAR-10-sized set (random uint8 images of CIFAR-10's shapes, since
only the sizes matter for time), with each dataset's IDC preset at IPC 10, factor 2: seconds per inner step of
data preparation (sampling, decoding, DSA), gradient matching (both gradients and the double backward to the
images), the image update and the real-data network pass, and the ratio of the matching part to one ordinary
forward/backward of the same network on the same batches. Writes benchmarks/results/condense_cost.json
(or --out).

    python benchmarks/bench_condense.py [--steps 3] [--device auto] [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from yoco.condense.idc import PRESETS, matching_cost_breakdown
from yoco.data.datasets import RealDataset, load_dataset
from yoco.io import write_json

OUT = Path(__file__).parent / "results"


def cifar10_sized(per_class: int = 600) -> RealDataset:
    """Random images with CIFAR-10's shapes (3x32x32, 10 classes): timing needs sizes, not content."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat_interleave(per_class)
    x = torch.randint(0, 256, (len(y), 3, 32, 32), generator=g, dtype=torch.uint8)
    return RealDataset(name="cifar10-sized", train_images=x, train_labels=y, test_images=x[:10], test_labels=y[:10],
                       classes=[str(c) for c in range(10)], mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26),
                       flip=True, root="<random>")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(OUT / "condense_cost.json"))
    args = ap.parse_args()
    cases = [("fashion-mnist", load_dataset("fashion-mnist"), PRESETS["fashion-mnist"]),
             ("cifar10-sized", cifar10_sized(), PRESETS["cifar10"])]
    rows = {}
    for name, real, cfg in cases:
        rows[name] = {"config": cfg.to_dict(), **matching_cost_breakdown(real, cfg, args.device, steps=args.steps)}
    write_json(args.out, {"device": args.device, "threads": torch.get_num_threads(), "rows": rows})
    parts = ("data", "match", "update", "net_train", "plain")
    print(f"{'set':<14}" + "".join(f"{p + ' s':>12}" for p in parts) + f"{'inner s':>10}{'outer s':>10}{'match/plain':>12}{'inner/plain':>12}")
    for name, r in rows.items():
        print(f"{name:<14}" + "".join(f"{r[p + '_s']:>12.3f}" for p in parts)
              + f"{r['inner_step_s']:>10.2f}{r['outer_iteration_s']:>10.1f}{r['match_over_plain']:>12.2f}"
              + f"{r['inner_step_s'] / r['plain_s']:>12.2f}")


if __name__ == "__main__":
    main()
