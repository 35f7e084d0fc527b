"""Compare two runs of the same ladder (e.g. one on the CPU, one on a GPU) cell by cell.

Cells with the same rule, IPC, subset seed and training seed in both folders (so the same pruned subset and
seed; their file names differ by the key, which includes the device) are paired; per (rule, IPC) the table shows each run's mean ± std of the last accuracy over the paired
seeds and the difference of the means. Cells missing or failed in either run are left out.

    python benchmarks/compare_ladders.py runs/ladder_cpu runs/ladder_gpu

Two ladders on two sets (an MDC set and the IDC set of the same dataset and IPC): ``--labels MDC,IDC --unpaired``
names the columns and also lists the rules only one folder ran (``mdc_prefix``: MDC's own subsets), so one table
holds MDC's subsets, YOCO's rule on the MDC set and YOCO's rule on the IDC set.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def device_of(cell: dict) -> str:
    return cell.get("config", {}).get("device", "?")


def cells(folder: str) -> dict[tuple, dict]:
    """A ladder folder's finished cells by (rule, IPC, subset seed, training seed)."""
    out = {}
    for f in Path(folder, "cells").glob("*.json"):
        c = json.loads(f.read_text())
        if c.get("status") == "ok":
            out[c["rule"], c["ipc"], c.get("subset"), c["seed"]] = c
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="first ladder folder")
    ap.add_argument("b", help="second ladder folder")
    ap.add_argument("--labels", default=None, help="column names for a and b, e.g. MDC,IDC (default: their devices)")
    ap.add_argument("--unpaired", action="store_true", help="also list the (rule, IPC) cells only one folder holds")
    args = ap.parse_args()
    pairs: dict[tuple[str, int | None], list[tuple[float, float]]] = defaultdict(list)
    devices = set()
    a, b = cells(args.a), cells(args.b)
    for name in sorted(set(a) & set(b), key=str):
        ca, cb = a[name], b[name]
        devices.add((device_of(ca), device_of(cb)))
        pairs[ca["rule"], ca["ipc"]].append((100 * ca["last"], 100 * cb["last"]))
    da = "/".join(sorted({d for d, _ in devices})) or "a"
    db = "/".join(sorted({d for _, d in devices})) or "b"
    if args.labels:
        da, db = (v.strip() for v in args.labels.split(",", 1))
    print(f"| rule | IPC | seeds | {da} | {db} | difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (rule, ipc), v in pairs.items():
        x, y = np.array(v).T
        print(f"| {rule} | {ipc if ipc is not None else 'source'} | {len(v)} | {x.mean():.2f} ± {x.std():.2f} | "
              f"{y.mean():.2f} ± {y.std():.2f} | {x.mean() - y.mean():+.2f} |")
    if args.unpaired:
        for side, mine in ((0, a), (1, b)):
            alone: dict[tuple[str, int | None], list[float]] = defaultdict(list)
            for c in mine.values():
                if (c["rule"], c["ipc"]) not in pairs:
                    alone[c["rule"], c["ipc"]].append(100 * c["last"])
            for (rule, ipc), v in sorted(alone.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
                x = np.array(v)
                cell = f"{x.mean():.2f} ± {x.std():.2f}"
                cols = (cell, "-") if side == 0 else ("-", cell)
                print(f"| {rule} | {ipc if ipc is not None else 'source'} | {len(v)} | {cols[0]} | {cols[1]} | - |")


if __name__ == "__main__":
    main()
