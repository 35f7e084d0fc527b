"""Issue 30's comparison as one table: MDC's own subsets, YOCO's rule on the MDC set, YOCO's rule on the IDC set,
random subsets, and sets condensed directly at the small IPC, per target IPC, with the winner of each column.

    python benchmarks/mdc_table.py \\
        --ladder MDC=runs/ladder_fm_mdc --ladder IDC=benchmarks/results/ladder_fm_idc10 \\
        --row MDC:mdc_prefix_balance --row MDC:lbpe_easy_balance --row IDC:lbpe_easy_balance \\
        --row IDC:random_balance --direct 1='IDC at IPC 1'=benchmarks/results/condense_budget_fm_ipc1/evals/iter95.json

Each ``--ladder NAME=DIR`` is a ladder folder (its ``results.json``); each ``--row NAME:RULE`` one of its rules; each
``--direct IPC=LABEL=EVAL.json`` an evaluation (``yoco evaluate`` or ``condense_budget.py``'s ``evals/``) of a set
condensed at that IPC directly, the paper's "condense again" baseline. Values are last-epoch test accuracy, mean ±
std over each cell's evaluations. Below the table: the best row per IPC, and every source's content sha256 and the
ladder's departures from the protocol, so a table is never read without what made it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _pair(text: str, sep: str, what: str) -> tuple[str, str]:
    name, found, value = text.partition(sep)
    if not found or not name or not value:
        raise SystemExit(f"mdc_table: {what} must be NAME{sep}VALUE, got {text!r}")
    return name, value


def load_ladders(specs: list[str]) -> dict[str, dict[str, Any]]:
    """NAME -> the ladder's results.json, from ``NAME=DIR`` items."""
    out = {}
    for spec in specs:
        name, folder = _pair(spec, "=", "--ladder")
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise SystemExit(f"mdc_table: {path}: no ladder results here")
        out[name] = json.loads(path.read_text())
    return out


def table(ladders: dict[str, dict[str, Any]], rows: list[str], direct: list[str]) -> str:
    """The markdown table, the best row per IPC and what every number came from."""
    cells: dict[str, dict[int, tuple[float, float]]] = {}
    for spec in rows:
        name, rule = _pair(spec, ":", "--row")
        if name not in ladders:
            raise SystemExit(f"mdc_table: --row {spec}: no --ladder named {name}")
        found = {int(r["ipc"]): (100 * r["last_mean"], 100 * (r.get("last_std") or 0.0))
                 for r in ladders[name]["rows"] if r["rule"] == rule and r["ipc"] is not None
                 and r.get("last_mean") is not None}
        if not found:
            raise SystemExit(f"mdc_table: --row {spec}: the {name} ladder has no finished cell of {rule}")
        cells[f"{rule} on the {name} set"] = found
    sources = []
    for spec in direct:
        ipc, rest = _pair(spec, "=", "--direct")
        label, path = _pair(rest, "=", "--direct IPC=LABEL")
        res = json.loads(Path(path).read_text())
        cells.setdefault(label, {})[int(ipc)] = (100 * res["last_mean"], 100 * (res.get("last_std") or 0.0))
        sources.append(f"- {label}: {path}, set sha256 `{res.get('sha256', 'not recorded')}`")
    ipcs = sorted({k for by_ipc in cells.values() for k in by_ipc})
    lines = ["| set and rule | " + " | ".join(f"IPC {k}" for k in ipcs) + " |", "| --- |" + " --- |" * len(ipcs)]
    best = {k: max((c[k][0], label) for label, c in cells.items() if k in c) for k in ipcs}
    for label, by_ipc in cells.items():
        shown = []
        for k in ipcs:
            if k not in by_ipc:
                shown.append("-")
                continue
            text = f"{by_ipc[k][0]:.2f} ± {by_ipc[k][1]:.2f}"
            shown.append(f"**{text}**" if best[k][1] == label else text)
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    lines += ["", *(f"- IPC {k}: best is {best[k][1]} ({best[k][0]:.2f})" for k in ipcs), ""]
    for name, res in ladders.items():
        cfg = res["config"]
        departures = cfg.get("departures") or []
        lines.append(f"- {name} ladder: source {cfg.get('source')}, content sha256 `{cfg.get('source_sha256')}`, "
                     f"{cfg.get('score_runs', 'separate')} score runs; "
                     + ("the full protocol" if not departures else "departures: " + "; ".join(departures)))
    return "\n".join(lines + sources) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ladder", action="append", default=[], metavar="NAME=DIR", help="a ladder folder, named")
    ap.add_argument("--row", action="append", default=[], metavar="NAME:RULE", help="a rule of a named ladder")
    ap.add_argument("--direct", action="append", default=[], metavar="IPC=LABEL=EVAL.json",
                    help="the evaluation of a set condensed directly at IPC")
    args = ap.parse_args()
    if not args.row and not args.direct:
        raise SystemExit("mdc_table: nothing to tabulate; give --row and/or --direct")
    print(table(load_ladders(args.ladder), args.row, args.direct), end="")


if __name__ == "__main__":
    main()
