"""Compare two runs of the same ladder (e.g. one on the CPU, one on a GPU) cell by cell.

Cells with the same name in both folders (same rule, IPC and training seed, so the same pruned subset and
seed) are paired; per (rule, IPC) the table shows each run's mean ± std of the last accuracy over the paired
seeds and the difference of the means. Cells missing or failed in either run are left out.

    python benchmarks/compare_ladders.py benchmarks/results/ladder_fm_real10 \\
        benchmarks/results/ladder_fm_real10_h100
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def device_of(cell: dict) -> str:
    return cell.get("config", {}).get("device", "?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="first ladder folder")
    ap.add_argument("b", help="second ladder folder")
    args = ap.parse_args()
    pairs: dict[tuple[str, int | None], list[tuple[float, float]]] = defaultdict(list)
    devices = set()
    for fa in sorted(Path(args.a, "cells").glob("*.json")):
        fb = Path(args.b, "cells", fa.name)
        if not fb.exists():
            continue
        ca, cb = json.loads(fa.read_text()), json.loads(fb.read_text())
        if ca.get("status") != "ok" or cb.get("status") != "ok":
            continue
        devices.add((device_of(ca), device_of(cb)))
        pairs[ca["rule"], ca["ipc"]].append((100 * ca["last"], 100 * cb["last"]))
    da = "/".join(sorted({d for d, _ in devices})) or "a"
    db = "/".join(sorted({d for _, d in devices})) or "b"
    print(f"| rule | IPC | seeds | {da} | {db} | difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (rule, ipc), v in pairs.items():
        x, y = np.array(v).T
        print(f"| {rule} | {ipc if ipc is not None else 'source'} | {len(v)} | {x.mean():.2f} ± {x.std():.2f} | "
              f"{y.mean():.2f} ± {y.std():.2f} | {x.mean() - y.mean():+.2f} |")


if __name__ == "__main__":
    main()
