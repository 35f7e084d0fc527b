"""Compare two runs of the same ladder (e.g. one on the CPU, one on a GPU) cell by cell.

Cells with the same rule, IPC, subset seed and training seed in both folders (so the same pruned subset and
seed; their file names differ by the key, which includes the device) are paired; per (rule, IPC) the table shows each run's mean ± std of the last accuracy over the paired
seeds and the difference of the means. Cells missing or failed in either run are left out.

    python benchmarks/compare_ladders.py runs/ladder_cpu runs/ladder_gpu
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
    print(f"| rule | IPC | seeds | {da} | {db} | difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (rule, ipc), v in pairs.items():
        x, y = np.array(v).T
        print(f"| {rule} | {ipc if ipc is not None else 'source'} | {len(v)} | {x.mean():.2f} ± {x.std():.2f} | "
              f"{y.mean():.2f} ± {y.std():.2f} | {x.mean() - y.mean():+.2f} |")


if __name__ == "__main__":
    main()
