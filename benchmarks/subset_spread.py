"""Subset-to-subset spread of the seeded rules in a ladder run with several ``--seed`` values.

A ladder's std is over training seeds for ONE pruned subset per rule. Rules that draw (random, ssp's k-means,
ccs's strata) give another subset for another ``--seed``; this reads the ladder folders given and prints, per
rule and IPC, each subset's mean (over its training seeds) and the mean ± std over subsets.

    python benchmarks/subset_spread.py benchmarks/results/ladder_fm_real10_h100 \\
        benchmarks/results/ladder_fm_real10_h100/subset_seeds/s*
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ladders", nargs="+", help="ladder output folders (each with results.json)")
    args = ap.parse_args()
    per_subset: dict[tuple[str, int], list[float]] = defaultdict(list)
    ipcs: set[int] = set()
    for folder in args.ladders:
        doc = json.loads((Path(folder) / "results.json").read_text())
        for row in doc["rows"]:
            if row["ipc"] is not None:
                per_subset[row["rule"], row["ipc"]].append(100 * row["last_mean"])
                ipcs.add(row["ipc"])
    cols = sorted(ipcs)
    print("| rule | subsets | " + " | ".join(f"IPC {k}" for k in cols) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in cols) + " |")
    for rule in dict.fromkeys(r for r, _ in per_subset):
        cells = []
        for k in cols:
            v = np.array(per_subset.get((rule, k), []))
            cells.append(f"{v.mean():.2f} ± {v.std():.2f} ({v.min():.1f}-{v.max():.1f})" if len(v) > 1
                         else f"{v[0]:.2f}" if len(v) else "")
        print(f"| {rule} | {len(per_subset[rule, cols[0]])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
