"""A ladder's table beside a published one (issue 27): per rule and target IPC, yoco's last-epoch accuracy (mean ±
std over the cell's evaluations) and the paper's value, the rank order of the rules in both, YOCO's gain over
random in both, and random real images per class as the floor.

    python benchmarks/paper_table.py runs/ladder_cifar10 \\
        --published benchmarks/published/yoco_table1_cifar10_idc10.json \\
        --floor 'benchmarks/results/random_real_cifar10/ipc*-summary.json'

A published value that was not read stays ``null`` in its file and prints as "not read"; the rank order and the
gain of the published side use only the values that were read, and say how many.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
from pathlib import Path

# the paper's row names -> the rules of yoco's ladder (results.json), in the paper's order. The paper's Random is
# YOCO's `--pruning_key random`: balance off (argument.py:363-366), a uniform draw of target IPC x factor^2 x classes
# decoded images from the whole decoded set (utils/img_loader.py:295-310), i.e. yoco's random_imbalance; yoco's own
# gain-over-random reference, random balanced subsets, is printed beside it.
REFERENCE = "random_balance"
RULES = {"random": "random_imbalance", "ssp": "ssp_imbalance", "entropy": "entropy_hard_imbalance",
         "aum": "aum_hard_imbalance", "forgetting": "forgetting_hard_imbalance", "el2n": "el2n_hard_imbalance",
         "ccs": "ccs_imbalance", "yoco": "lbpe_easy_balance"}


def ours(results: dict) -> dict[tuple[str, int], tuple[float, float | None]]:
    """(paper row, IPC) -> yoco's last-epoch mean and std in %, from a ladder's results.json."""
    by_rule = {v: k for k, v in RULES.items()} | {REFERENCE: REFERENCE}
    out = {}
    for row in results["rows"]:
        name = by_rule.get(row["rule"])
        if name is not None and row.get("last_mean") is not None:
            std = row.get("last_std")
            out[name, int(row["ipc"])] = (100 * row["last_mean"], None if std is None else 100 * std)
    return out


def published(doc: dict) -> dict[tuple[str, int], float]:
    """(paper row, IPC) -> the published value, for the values that were read."""
    return {(name, int(ipc)): float(v) for name, cells in doc["rows"].items() for ipc, v in cells.items()
            if v is not None}


def ranking(values: dict[tuple[str, int], float], ipc: int) -> tuple[list[str], int]:
    """The rules at ``ipc`` from best to worst, and how many values that order rests on."""
    at = {name: v for (name, k), v in values.items() if k == ipc}
    return sorted(at, key=lambda n: -at[n]), len(at)


def floor(pattern: str | None) -> list[str]:
    """Lines for random real images per class, from bench_random_real.py summaries (``ipcK-summary.json``)."""
    if not pattern:
        return []
    lines = []
    for f in sorted(glob.glob(pattern), key=lambda p: int(Path(p).name.split("-")[0][3:])):
        d = json.loads(Path(f).read_text())
        lines.append(f"- random real, IPC {Path(f).name.split('-')[0][3:]}: {100 * d['last_mean']:.2f} ± "
                     f"{100 * (d.get('last_std') or 0):.2f} ({f})")
    return lines


def render(results: dict, doc: dict, floor_lines: list[str]) -> str:
    mine, theirs = ours(results), published(doc)
    ipcs = sorted({k for _, k in mine} | {k for _, k in theirs})
    head = "| rule | " + " | ".join(f"IPC {k} yoco | IPC {k} paper" for k in ipcs) + " |"
    lines = [f"Beside: {doc['table']}; read from: {doc.get('read_from') or 'not read yet'}.", "", head,
             "| --- |" + " --- | --- |" * len(ipcs)]
    for name in RULES:
        cells = []
        for k in ipcs:
            m = mine.get((name, k))
            cells.append("-" if m is None else f"{m[0]:.2f}" + ("" if m[1] is None else f" ± {m[1]:.2f}"))
            p = theirs.get((name, k))
            cells.append("not read" if p is None else f"{p:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    mean_of = {key: v[0] for key, v in mine.items()}
    rows = {key: v for key, v in mean_of.items() if key[0] in RULES}
    for k in ipcs:
        for side, values in (("yoco", rows), ("paper", theirs)):
            order, n = ranking(values, k)
            gain = (values[("yoco", k)] - values[("random", k)]
                    if ("yoco", k) in values and ("random", k) in values else math.nan)
            lines.append(f"- IPC {k}, {side}: " + (" > ".join(order) if order else "no values") +
                         f" ({n} of {len(RULES)} rules); YOCO over random: " +
                         ("not available" if math.isnan(gain) else f"{gain:+.2f}"))
        if ("yoco", k) in mean_of and (REFERENCE, k) in mean_of:
            lines.append(f"- IPC {k}, yoco: YOCO over random balanced subsets (yoco's reference, not a paper row): "
                         f"{mean_of[('yoco', k)] - mean_of[(REFERENCE, k)]:+.2f}")
    return "\n".join(lines + ([""] + floor_lines if floor_lines else [])) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ladder", help="a ladder folder (its results.json)")
    ap.add_argument("--published", required=True, help="the published table as JSON (null = not read)")
    ap.add_argument("--floor", default=None, help="glob of random-real summaries (bench_random_real.py)")
    args = ap.parse_args()
    results = json.loads(Path(args.ladder, "results.json").read_text())
    print(render(results, json.loads(Path(args.published).read_text()), floor(args.floor)), end="")


if __name__ == "__main__":
    main()
