"""The benchmark scripts that put ladders beside each other or beside a paper: what they print is what the files say."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ladder(folder: Path, cells: dict[tuple[str, int], tuple[float, float]], sha: str, departures=()) -> Path:
    rows = [{"rule": rule, "ipc": ipc, "last_mean": m, "last_std": s} for (rule, ipc), (m, s) in cells.items()]
    rows.append({"rule": "source", "ipc": None, "last_mean": 0.9, "last_std": 0.0})
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"rows": rows, "config": {
        "source": f"{folder.name}.safetensors", "source_sha256": sha, "departures": list(departures),
        "score_runs": "separate"}}))
    return folder


def test_the_mdc_table_puts_each_row_where_its_file_says_and_bolds_each_columns_best(tmp_path):
    mdc_table = _script("mdc_table")
    mdc = _ladder(tmp_path / "mdc", {("mdc_prefix_balance", 1): (0.70, 0.01), ("mdc_prefix_balance", 2): (0.74, 0.02),
                                     ("lbpe_easy_balance", 1): (0.71, 0.005)}, "a" * 64)
    idc = _ladder(tmp_path / "idc", {("lbpe_easy_balance", 1): (0.73, 0.002), ("lbpe_easy_balance", 2): (0.75, 0.004),
                                     ("random_balance", 1): (0.68, 0.01)}, "b" * 64, ["evaluation 300 epochs"])
    direct = tmp_path / "ipc1.json"
    direct.write_text(json.dumps({"last_mean": 0.72, "last_std": 0.003, "sha256": "c" * 64}))
    text = mdc_table.table(mdc_table.load_ladders([f"MDC={mdc}", f"IDC={idc}"]),
                           ["MDC:mdc_prefix_balance", "MDC:lbpe_easy_balance", "IDC:lbpe_easy_balance",
                            "IDC:random_balance"], [f"1=IDC at IPC 1={direct}"])
    lines = text.splitlines()
    assert lines[0] == "| set and rule | IPC 1 | IPC 2 |"
    assert "| mdc_prefix_balance on the MDC set | 70.00 ± 1.00 | 74.00 ± 2.00 |" in lines
    assert "| lbpe_easy_balance on the IDC set | **73.00 ± 0.20** | **75.00 ± 0.40** |" in lines
    assert "| IDC at IPC 1 | 72.00 ± 0.30 | - |" in lines
    assert "- IPC 1: best is lbpe_easy_balance on the IDC set (73.00)" in lines
    assert f"`{'a' * 64}`" in text and "the full protocol" in text and "departures: evaluation 300 epochs" in text
    assert f"`{'c' * 64}`" in text
    with pytest.raises(SystemExit, match="no finished cell of ccs_imbalance"):
        mdc_table.table(mdc_table.load_ladders([f"MDC={mdc}"]), ["MDC:ccs_imbalance"], [])
    with pytest.raises(SystemExit, match="no --ladder named IDC"):
        mdc_table.table(mdc_table.load_ladders([f"MDC={mdc}"]), ["IDC:lbpe_easy_balance"], [])


def test_the_paper_table_says_not_read_and_ranks_only_what_was_read(tmp_path):
    paper_table = _script("paper_table")
    ours = json.loads(_ladder(tmp_path / "c10", {("lbpe_easy_balance", 1): (0.42, 0.01), ("random_imbalance", 1):
                                                 (0.30, 0.02), ("ssp_imbalance", 1): (0.35, 0.01),
                                                 ("random_balance", 1): (0.38, 0.01)}, "d" * 64)
                      .joinpath("results.json").read_text())
    published = {"table": "T1", "read_from": "p. 6", "rows": {name: {"1": None} for name in paper_table.RULES}}
    published["rows"]["yoco"]["1"], published["rows"]["random"]["1"] = 40.0, 28.0
    text = paper_table.render(ours, published, [])
    assert "| yoco | 42.00 ± 1.00 | 40.00 |" in text and "| ssp | 35.00 ± 1.00 | not read |" in text
    assert "- IPC 1, yoco: yoco > ssp > random (3 of 8 rules); YOCO over random: +12.00" in text
    assert "- IPC 1, paper: yoco > random (2 of 8 rules); YOCO over random: +12.00" in text
    # the paper's Random is YOCO's imbalanced draw; yoco's balanced reference is beside it, never ranked as a row
    assert "| random | 30.00 ± 2.00 | 28.00 |" in text
    assert "- IPC 1, yoco: YOCO over random balanced subsets (yoco's reference, not a paper row): +4.00" in text
