"""The size ladder end to end on a tiny MNIST-format dataset written to disk."""

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fail_evaluations_of, rt, separable_images, tiny_condensed, tiny_real, write_mnist_like

from yoco import cli, evaluate
from yoco.data.condensed import CondensedMeta, CondensedSet, load, save
from yoco.data.datasets import load_dataset
from yoco.dynamics import DynamicsConfig, load_dynamics
from yoco.errors import YocoError
from yoco.evaluate import EvalConfig
from yoco.ladder import LadderConfig, run_ladder
from yoco.train import TrainConfig


def _setup(tmp_path):
    real = tiny_real(n_per_class=20, num_classes=10, size=16)
    write_mnist_like(tmp_path / "data", real)
    x, y = separable_images(4, 10, 16, seed=3)
    cs = CondensedSet(x, y, CondensedMeta("mnist", 10, method="test", ipc=4, factor=1), source="src")
    cfg = LadderConfig(
        dataset="mnist", ipcs=(1, 2), rules=("yoco", "forgetting"), repeat=2, score_runs="averaged",
        dynamics=DynamicsConfig(model="convnet", width=8, runs=2, train=TrainConfig(epochs=6, batch_size=16)),
        eval=EvalConfig(model="convnet", width=8, test_points=1, train=TrainConfig(epochs=3)),
        lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2,
    )
    return cs, cfg, str(tmp_path / "data")


def _count_evals(monkeypatch):
    calls = []
    real_eval = evaluate.evaluate_condensed

    def counting(*a, **k):
        calls.append(1)
        return real_eval(*a, **k)

    monkeypatch.setattr(evaluate, "evaluate_condensed", counting)
    return calls


def test_tiny_ladder_end_to_end_and_resume(tmp_path, monkeypatch):
    cs, cfg, root = _setup(tmp_path)
    calls = _count_evals(monkeypatch)
    out = tmp_path / "run"
    doc = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    for name in ("results.csv", "results.json", "results.md", "ladder.png"):
        assert (out / name).exists(), name
    assert len(calls) == 2 * 2 * 2 + 2  # rules x ipcs x repeats + the unpruned source
    rows = {(r["rule"], r["ipc"]): r for r in doc["rows"]}
    assert set(rows) == {("lbpe_easy_balance", 1), ("lbpe_easy_balance", 2), ("forgetting_hard_imbalance", 1),
                         ("forgetting_hard_imbalance", 2), ("source", None)}
    # the numbers agree across the outputs
    r = rows[("lbpe_easy_balance", 2)]
    assert len(r["repeats"]) == 2
    assert r["last_mean"] == pytest.approx(sum(r["repeats"]) / 2)
    md = (out / "results.md").read_text()
    assert f"{100 * r['last_mean']:.2f} ± {100 * r['last_std']:.2f}" in md
    csv = (out / "results.csv").read_text()
    assert f"lbpe_easy_balance,2,2,{';'.join(f'{100 * a:.2f}' for a in r['repeats'])}," in csv
    assert (out / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # pruned sets: balanced keeps ipc per class
    (pruned,) = (out / "pruned").glob("lbpe_easy_balance-ipc2-*.safetensors")
    assert load(pruned).meta.extra["selection"]["class_counts"] == [2] * 10

    # interrupted ladder: drop two finished cells, rerun, only those two are trained again
    cells = sorted((out / "cells").glob("*.json"))
    for c in cells[:2]:
        c.unlink()
    calls.clear()
    doc2 = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert len(calls) == 2
    assert json.loads((out / "results.json").read_text())["rows"] == doc2["rows"]

    # a changed evaluation config reruns the cells, not the dynamics
    calls.clear()
    dyn_files = sorted((out / "cache").glob("dynamics-*"))
    cfg3 = dataclasses.replace(cfg, ipcs=(1,), eval=dataclasses.replace(cfg.eval, train=TrainConfig(epochs=2)))
    run_ladder(cs, cfg3, out, data_root=root, runtime=rt())
    assert len(calls) == 2 * 1 * 2 + 2
    assert sorted((out / "cache").glob("dynamics-*")) == dyn_files
    # the dynamics' time is kept with them, as each cell keeps its own (the GPU goals are timed from these)
    assert load_dynamics(dyn_files[0]).config["seconds"] > 0


def test_other_source_refused_without_force(tmp_path):
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("random_balance",), ipcs=(1,), repeat=1, reference=False)
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    other = CondensedSet(cs.images.flip(0), cs.labels.flip(0), cs.meta, source="other")
    with pytest.raises(YocoError, match="--force"):
        run_ladder(other, cfg, out, data_root=root, runtime=rt())
    run_ladder(other, cfg, out, data_root=root, runtime=rt(), force=True)


def test_failed_cell_is_reported_and_rest_completes(tmp_path, monkeypatch):
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("random_balance", "yoco"), ipcs=(1,), repeat=1, reference=False)
    fail_evaluations_of(monkeypatch, "random_balance", "simulated out-of-memory")
    doc = run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt())
    assert doc["failed_cells"] == 1 and doc["failed"] == ["random_balance IPC 1 seed 0"]
    md = (tmp_path / "run" / "results.md").read_text()
    assert "failed" in md and "simulated out-of-memory" in md
    ok = next(r for r in doc["rows"] if r["rule"] == "lbpe_easy_balance")
    assert ok["last_mean"] is not None


def test_parallel_workers_match_in_process(tmp_path):
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=2, reference=False)
    a = run_ladder(cs, cfg, tmp_path / "serial", data_root=root, runtime=rt())
    b = run_ladder(cs, cfg, tmp_path / "parallel", data_root=root, runtime=rt(workers=2))
    torch.set_num_threads(2)
    assert [r["repeats"] for r in a["rows"]] == [r["repeats"] for r in b["rows"]]


_ORPHAN_SCRIPT = """
import os, signal, sys, time
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from yoco.ladder.cells import exit_with_parent
watch = sys.argv[1] == "watch"
kw = dict(initializer=exit_with_parent, initargs=(os.getpid(), 0.05)) if watch else {}
pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), **kw)
open(sys.argv[2], "w").write(str(pool.submit(os.getpid).result()))
pool.submit(time.sleep, 60)
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGKILL)  # stopped from outside: no cleanup of its own runs
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended; only its entry waits to be reaped


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
@pytest.mark.parametrize("watch", [True, False])
def test_local_workers_end_when_the_ladder_is_killed(watch, tmp_path):
    """A worker whose ladder was killed mid-cell stops at once instead of finishing the cell (the control without
    the watcher shows the worker would otherwise still be running)."""
    pid_file = tmp_path / "worker.pid"
    subprocess.run([sys.executable, "-c", _ORPHAN_SCRIPT, "watch" if watch else "plain", str(pid_file)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)  # killed: -9
    worker = int(pid_file.read_text())  # no pipe above that a worker could hold open
    deadline = time.monotonic() + 5
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert _running(worker) != watch
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)


def test_ray_matches_local_workers(tmp_path):
    ray = pytest.importorskip("ray")
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=2, reference=False)
    local = run_ladder(cs, cfg, tmp_path / "local", data_root=root, runtime=rt(workers=2))
    try:
        on_ray = run_ladder(cs, cfg, tmp_path / "ray", data_root=root, runtime=rt(),
                            ray_address="local")
    finally:
        ray.shutdown()
    assert [r["repeats"] for r in local["rows"]] == [r["repeats"] for r in on_ray["rows"]]


def test_saved_eval_config_follows_the_ladder_repeat_and_seed():
    # cells run one evaluation each, seeded from the ladder's seed: the eval block says how many a table cell
    # averages (runs x repeat with separate runs, repeat with averaged scores), never another count
    cfg = LadderConfig(dataset="mnist", repeat=2, seed=4, eval=EvalConfig(repeat=5, seed=0), score_runs="averaged")
    assert (cfg.eval.repeat, cfg.eval.seed) == (2, 4)
    moved = dataclasses.replace(cfg, repeat=7)
    assert moved.to_dict()["eval"]["repeat"] == 7
    separate = LadderConfig(dataset="mnist", repeat=2, seed=4)
    assert separate.score_runs == "separate" and separate.eval.repeat == 3 * 2
    # the defaults: the paper's one evaluation per run's set, three seeds per averaged set
    assert LadderConfig(dataset="mnist").repeat == 1 and LadderConfig(dataset="mnist").eval.repeat == 3
    assert LadderConfig(dataset="mnist", score_runs="averaged").repeat == 3
    assert LadderConfig(dataset="mnist", score_runs="averaged").departures()[0].startswith("averaged-scores")
    assert LadderConfig(dataset="mnist").departures() == []


def test_a_second_ladder_on_a_locked_folder_is_refused(tmp_path):
    from yoco.ladder.cache import FolderLock

    cs, cfg, root = _setup(tmp_path)
    out = tmp_path / "run"
    with FolderLock(out), pytest.raises(YocoError, match="another yoco ladder is running in this folder \\(pid"):
        run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert not (out / "ladder.json").exists()


def test_two_settings_in_one_folder_never_read_each_others_files(tmp_path):
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=1, reference=False)
    out = tmp_path / "run"
    a = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    other = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, train=TrainConfig(epochs=4)))
    b = run_ladder(cs, other, out, data_root=root, runtime=rt())
    again = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert again["rows"] == a["rows"]  # the first settings' cells, untouched by the second run
    assert b["config"]["eval"]["train"]["epochs"] == 4 and len(list((out / "cells").glob("*.json"))) == 2


def test_truncated_or_corrupt_cached_files_are_made_again(tmp_path, monkeypatch):
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=1, reference=False)
    out = tmp_path / "run"
    first = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    (pruned,) = (out / "pruned").glob("*.safetensors")
    pruned.write_bytes(pruned.read_bytes()[:100])  # a crash mid-copy, say
    (cell,) = (out / "cells").glob("*.json")
    cell.write_text(cell.read_text()[:30])
    (table,) = (out / "cache").glob("scores-*.safetensors")
    table.write_bytes(b"garbage")
    calls = _count_evals(monkeypatch)
    again = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert len(calls) == 1 and again["rows"] == first["rows"]
    assert load(pruned).meta.extra["cache_key"]


def test_a_ladder_that_fails_to_start_leaves_no_claim(tmp_path):
    cs, cfg, root = _setup(tmp_path)
    out = tmp_path / "run"
    wrong = dataclasses.replace(cfg, ipcs=(4,))  # the source holds 4 per class: nothing to prune to
    with pytest.raises(YocoError, match="below the source IPC 4"):
        run_ladder(cs, wrong, out, data_root=root, runtime=rt())
    assert not (out / "ladder.json").exists()


@pytest.mark.parametrize(("change", "words"), [
    ({"repeat": 0}, "repeat must be a whole number >= 1"),
    ({"rules": ()}, "at least one rule"),
    ({"ipcs": ()}, "at least one target IPC"),
    ({"ipcs": (0,)}, "target IPCs must be whole numbers >= 1"),
    ({"rules": ("yoco", "lbpe_easy_balance")}, "listed twice"),
    ({"options": {"hardcut": 0.1}}, "unknown rule option"),
    ({"score_runs": "mean"}, "score_runs must be one of separate, averaged"),
    ({"options": {"pick": "lowest"}}, "ccs option pick must be one of highest, random, got 'lowest'"),
])
def test_bad_ladder_settings_are_refused(change, words):
    with pytest.raises(YocoError, match=words):
        LadderConfig(dataset="mnist", **change)


def test_gain_over_random_against_several_random_subsets(tmp_path):
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco", "random_balance"), ipcs=(1,), repeat=1, reference=False,
                              random_subsets=3)
    doc = run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt())
    rows = {r["rule"]: r for r in doc["rows"]}
    rnd, yoco = rows["random_balance"], rows["lbpe_easy_balance"]
    assert len(rnd["repeats"]) == 3 and rnd["subsets"] == [0, 1, 2]  # three subsets, one training seed each
    assert yoco["gain_over_random"] == pytest.approx(yoco["last_mean"] - rnd["last_mean"])
    assert yoco["random_std"] == pytest.approx(rnd["last_std"])
    md = (tmp_path / "run" / "results.md").read_text()
    assert "Gain over random balanced subsets" in md and "3 subset(s) x 1 training seed(s)" in md
    header = (tmp_path / "run" / "results.csv").read_text().splitlines()[0]
    assert "gain_over_random,random_std" in header


def test_batched_cells_give_the_cells_one_by_one(tmp_path):
    # on a GPU the cells of one IPC train together; forced here, the table must match the one-by-one run
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco", "random_balance"), ipcs=(1,), repeat=2, reference=False)
    apart = run_ladder(cs, cfg, tmp_path / "apart", data_root=root, runtime=rt(), batch_cells=False)
    together = run_ladder(cs, cfg, tmp_path / "together", data_root=root, runtime=rt(),
                          batch_cells=True)
    cells = [json.loads(p.read_text()) for p in (tmp_path / "together" / "cells").glob("*.json")]
    assert len(cells) == 4 and all(c["batched"] == 4 for c in cells)
    for a, b in zip(apart["rows"], together["rows"]):
        assert a["rule"] == b["rule"] and a["seeds"] == b["seeds"]
        assert all(abs(x - y) <= 0.05 for x, y in zip(a["repeats"], b["repeats"]))


def test_cells_run_smallest_ipc_first_and_source_last(tmp_path, monkeypatch):
    """A ladder stopped part-way must leave whole rows: every rule at IPC 1 before any cell at IPC 2."""
    from yoco.ladder import run as ladder_run

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("random_balance", "ssp"), repeat=1)
    order = []

    def record(cells, *a, **k):
        order.extend((c.rule, c.ipc) for c in cells)
        raise KeyboardInterrupt  # stop before training anything

    monkeypatch.setattr(ladder_run, "execute", record)
    with pytest.raises(KeyboardInterrupt):
        run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt())
    assert order == [("random_balance", 1), ("ssp_imbalance", 1), ("random_balance", 2), ("ssp_imbalance", 2),
                     ("source", None)]


def test_report_tabulates_a_ladder_stopped_part_way(tmp_path, monkeypatch):
    """`yoco report` on a folder whose ladder was stopped: the finished cells only, marked partial."""
    from yoco.ladder import report_ladder
    from yoco.ladder import run as ladder_run
    from yoco.ladder.cells import run_cell

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("random_balance", "ssp"), repeat=2)
    out = tmp_path / "run"

    def stop_after_three(cells, *a, **k):
        for c in cells[:3]:
            run_cell(c)
        raise KeyboardInterrupt

    monkeypatch.setattr(ladder_run, "execute", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert not (out / "results.md").exists()
    doc = report_ladder(out)
    assert (doc["cells"], doc["planned_cells"]) == (3, 2 * 2 * 2 + 2)
    rows = {(r["rule"], r["ipc"]): len(r["repeats"]) for r in doc["rows"]}
    assert rows == {("random_balance", 1): 2, ("ssp_imbalance", 1): 1}
    md = (out / "results.md").read_text()
    assert md.startswith("**Partial:** 3 of 10 planned cells")
    assert "IPC 2" not in md
    # the folder can move: the plan names cell files relative to it
    moved = tmp_path / "moved"
    out.rename(moved)
    assert report_ladder(moved)["cells"] == 3


def test_report_refuses_a_folder_without_a_plan(tmp_path):
    from yoco.ladder import report_ladder

    with pytest.raises(YocoError, match="plan.json: no ladder plan"):
        report_ladder(tmp_path)


def test_compiled_ladder_is_cached_apart_from_the_eager_one(tmp_path, monkeypatch):
    """--compile reaches every network (dynamics and cells), and compiled results never stand in for eager ones."""
    from yoco import train as train_mod

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=1, reference=False)
    compiled = []
    monkeypatch.setattr(train_mod, "compiled", lambda model, device: compiled.append(type(model).__name__) or model)
    monkeypatch.setattr(train_mod, "_STEPS", {})
    calls = _count_evals(monkeypatch)
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert (len(calls), len(compiled)) == (1, 0)
    doc = run_ladder(cs, cfg, out, data_root=root, runtime=rt(compile=True))
    assert len(calls) == 2 and len(compiled) == cfg.dynamics.runs + 1  # new dynamics and a new cell
    assert doc["config"]["compiled"] and "torch.compile" in (out / "results.md").read_text()
    assert len(list((out / "cache").glob("dynamics-*"))) == 2
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())  # the eager results are still there
    assert len(calls) == 2
    # two new cells trained together compile their one batched step, once
    compiled.clear()
    run_ladder(cs, dataclasses.replace(cfg, repeat=3), out, data_root=root, runtime=rt(compile=True), batch_cells=True)
    assert compiled == ["_BatchedStep"]


def test_a_folder_with_its_score_table_resumes_without_the_dynamics(tmp_path, monkeypatch):
    """The dynamics file is the folder's largest; once the score table is made it is not needed again (so a
    stopped ladder can be kept, or committed, without it)."""
    from yoco.ladder import run as ladder_run

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, ipcs=(1,), repeat=1, reference=False)
    out = tmp_path / "run"
    first = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    for f in (out / "cache").glob("dynamics-*"):
        f.unlink()
    for f in (out / "cells").glob("*.json"):
        f.unlink()
    monkeypatch.setattr(ladder_run, "record_dynamics", lambda *a, **k: pytest.fail("dynamics recorded again"))
    again = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert [r["repeats"] for r in again["rows"]] == [r["repeats"] for r in first["rows"]]
    assert not list((out / "cache").glob("dynamics-*"))


def test_gain_note_names_the_reference_columns_still_being_filled():
    """A partial table: the random reference at IPC 2 has 5 of its 9 runs, and the note must say so."""
    from yoco.report import ladder_markdown

    def row(rule, ipc, n, subsets):
        return {"rule": rule, "ipc": ipc, "repeats": [0.7] * n, "last_mean": 0.7, "last_std": 0.01,
                "subsets": subsets, "gain_over_random": 0.0, "random_std": 0.01, "failed": []}

    full = [row("random_balance", 1, 9, [0, 1, 2]), row("random_balance", 2, 9, [0, 1, 2])]
    assert "fewer where" not in ladder_markdown(full)
    partial = [row("random_balance", 1, 9, [0, 1, 2]), row("random_balance", 2, 5, [0, 1])]
    md = ladder_markdown(partial)
    assert "3 subset(s) x 3 training seed(s), fewer where still being filled (IPC 2: 5 run(s))" in md


def test_plan_records_the_score_windows_the_protocol_chose(tmp_path, monkeypatch):
    """Windows left to the protocol are resolved (here shrunk to the 6-epoch dynamics) and the plan and results
    must say which were used: a config of None would leave readers guessing the LBPE window."""
    from yoco.ladder import run as ladder_run

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=1, lbpe_epochs=None, lbpe_top_k=None,
                              el2n_epochs=None)

    def stop(cells, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ladder_run, "execute", stop)
    with pytest.raises(KeyboardInterrupt):
        run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt())
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["config"]["score_windows"] == {"lbpe_epochs": 6, "lbpe_top_k": 6, "el2n_epochs": 6}


def test_another_dynamics_seed_reruns_only_what_reads_the_scores(tmp_path, monkeypatch):
    """--dynamics-seed records the dynamics with other networks; the score-based cells follow them, while a random
    subset (which reads no score) and the unpruned source are the same cells and stay cached."""
    from yoco.ladder import build_config

    assert build_config(dataset="mnist", dynamics_seed=7).dynamics.seed == 7
    assert build_config(dataset="mnist").dynamics.seed == 0
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco", "random_balance"), ipcs=(1,), repeat=1)
    calls = _count_evals(monkeypatch)
    out = tmp_path / "run"
    first = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert len(calls) == 3  # yoco, random, source
    calls.clear()
    other = dataclasses.replace(cfg, dynamics=dataclasses.replace(cfg.dynamics, seed=7))
    second = run_ladder(cs, other, out, data_root=root, runtime=rt())
    assert len(calls) == 1  # only the score-based rule's cell
    seeds = sorted(load_dynamics(f).config["seed"] for f in (out / "cache").glob("dynamics-*"))
    assert seeds == [0, 7]
    rows = [{(r["rule"], r["ipc"]): r["repeats"] for r in doc["rows"]} for doc in (first, second)]
    assert rows[0][("random_balance", 1)] == rows[1][("random_balance", 1)]
    assert second["config"]["dynamics"]["seed"] == 7


def test_an_option_of_one_method_reruns_only_that_methods_cells(tmp_path, monkeypatch):
    """An option keys the sets of the rules whose method owns it (herding's pick): the other rules' sets and cells,
    random's and the source's, are the same as without it and stay cached."""
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("herding", "random_balance"), ipcs=(1,), repeat=1)
    calls = _count_evals(monkeypatch)
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert len(calls) == 3  # herding, random, source
    before = {p.name for p in (out / "pruned").iterdir()}
    calls.clear()
    nearest = dataclasses.replace(cfg, options={"herding_pick": "nearest"})
    run_ladder(cs, nearest, out, data_root=root, runtime=rt())
    assert len(calls) == 1  # only herding's cell
    added = {p.name for p in (out / "pruned").iterdir()} - before
    assert len(added) == 1 and next(iter(added)).startswith("herding_balance-")
    # the rule's name reads the same under either pick, so the table and the plot name the option given
    from yoco.report import ladder_title

    assert "herding_pick=nearest" in (out / "results.md").read_text()
    assert ladder_title(json.loads((out / "results.json").read_text())["config"]).endswith("herding_pick=nearest]")


def test_source_cells_are_read_off_the_dynamics_when_they_train_the_same_networks(tmp_path, monkeypatch):
    """At the protocol's settings the dynamics runs (seeds 0..) train exactly the unpruned source's evaluation
    networks, so the ladder tests them on the way instead of training them again; each such cell equals its own
    evaluation."""
    cs, cfg, root = _setup(tmp_path)
    same = TrainConfig(epochs=4, batch_size=16)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=2,
                              dynamics=dataclasses.replace(cfg.dynamics, runs=3, train=same),
                              eval=dataclasses.replace(cfg.eval, test_points=2, train=same))
    calls = _count_evals(monkeypatch)
    doc = run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt())
    assert len(calls) == 2  # the two yoco cells; the source's two came with the dynamics
    source = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("source-*.json")]
    assert sorted(c["seed"] for c in source) == [0, 1] and all(c["from_dynamics"] for c in source)
    real = load_dataset("mnist", root=root)
    for cell in source:
        alone = evaluate.evaluate_condensed(cs, real, dataclasses.replace(cfg.eval, repeat=1, seed=cell["seed"]),
                                            runtime=rt())
        assert cell["curve"] == [list(p) for p in alone["runs"][0]["curve"]] and cell["last"] == alone["last_mean"]
        assert cell["config"] == json.loads(json.dumps(alone["config"]))
    (row,) = [r for r in doc["rows"] if r["rule"] == "source"]
    assert row["seeds"] == [0, 1]

    # settings that differ (another evaluation length) train the source's cells as before
    calls.clear()
    other = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, train=TrainConfig(epochs=3, batch_size=16)))
    run_ladder(cs, other, tmp_path / "other", data_root=root, runtime=rt())
    assert len(calls) == 4


def test_cells_are_keyed_by_the_device_they_train_on_not_its_spelling(tmp_path, monkeypatch):
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("random_balance",), ipcs=(1,), repeat=1, reference=False)
    calls = _count_evals(monkeypatch)
    run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt())
    assert len(calls) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # `auto` is this CPU
    run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt("auto", progress=False))
    assert len(calls) == 1


def test_paper_cells_each_dynamics_run_makes_its_own_scores_and_pruned_set(tmp_path, monkeypatch):
    """YOCO's cells (``reproduce_1..3``): run i's scores alone choose run i's set, each set is evaluated once, and the
    cell is mean ± std over the runs; the averaged-scores option shares the same dynamics and names itself."""
    from yoco.rules import select
    from yoco.scores import compute_scores

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco", "random_balance"), ipcs=(1,), repeat=1, score_runs="separate")
    assert cfg.evaluations == 2
    calls = _count_evals(monkeypatch)
    out = tmp_path / "run"
    doc = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert len(calls) == 2 + 2 + 2  # yoco per run, random per run, the source's two seeds
    names = sorted(p.name.rsplit("-", 1)[0] for p in (out / "cells").glob("*.json"))
    assert names == ["lbpe_easy_balance-ipc1-run0-sub0-seed0", "lbpe_easy_balance-ipc1-run1-sub1-seed1",
                     "random_balance-ipc1-sub0-seed0", "random_balance-ipc1-sub1-seed1", "source-seed0", "source-seed1"]
    (dyn_file,) = (out / "cache").glob("dynamics-*")
    dyn = load_dynamics(dyn_file)
    kept = {}
    for p in (out / "pruned").glob("lbpe_easy_balance-*.safetensors"):
        sel = load(p).meta.extra["selection"]
        kept[sel["score_config"]["run"]] = sel["indices"]
    assert sorted(kept) == [0, 1]
    for run in (0, 1):
        alone = compute_scores(dyn.run(run), lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
        assert kept[run] == select(alone, dyn.labels, "yoco", 1).tolist()
    assert kept[0] != kept[1]  # two recordings, two sets (else this test could not tell the modes apart)
    rows = {r["rule"]: r for r in doc["rows"]}
    yoco = rows["lbpe_easy_balance"]
    assert yoco["runs"] == [0, 1] and sorted(yoco["seeds"]) == [0, 1] and len(yoco["repeats"]) == 2
    assert yoco["last_std"] == pytest.approx(float(np.std(yoco["repeats"])))
    assert rows["random_balance"]["subsets"] == [0, 1]
    md = (out / "results.md").read_text()
    assert "over the 2 dynamics runs, each with its own scores and pruned set" in md
    assert "NOT the full protocol" in md and "averaged-scores" not in md

    # the averaged-scores option: the same dynamics (not recorded again), one set from the mean scores, named
    calls.clear()
    avg = dataclasses.replace(cfg, score_runs="averaged", repeat=2)
    doc2 = run_ladder(cs, avg, out, data_root=root, runtime=rt())
    assert list((out / "cache").glob("dynamics-*")) == [dyn_file]
    mean_set = select(compute_scores(dyn, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2), dyn.labels, "yoco", 1)
    (p,) = [p for p in (out / "pruned").glob("lbpe_easy_balance-*")
            if load(p).meta.extra["selection"]["score_config"]["run"] is None]
    assert load(p).meta.extra["selection"]["indices"] == mean_set.tolist()
    assert "averaged-scores cells" in (out / "results.md").read_text()
    # its random subset 0 with seed 0 and the source's seed-0 cell train exactly what the separate ladder trained
    assert next(r for r in doc2["rows"] if r["rule"] == "source")["seeds"] == [0, 1]
    assert len(calls) == 2 + 1  # yoco's two seeds and random's seed 1; random seed 0 and the source were cached


def test_precision_reaches_the_cache_keys_the_results_and_the_title(tmp_path, monkeypatch):
    """A bf16 ladder in the folder of an fp32 one records its dynamics and cells apart (nothing reused across
    precisions), says bf16 in its results, heading and plot title, and the fp32 ladder's files are left as they were."""
    from yoco.ladder import build_config

    assert build_config(dataset="mnist", precision="bf16").dynamics.train.precision == "bf16"
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco",), ipcs=(1,), repeat=1)
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    before = {p.name for p in (out / "cells").iterdir()} | {p.name for p in (out / "cache").iterdir()}
    calls = _count_evals(monkeypatch)
    half = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, train=dataclasses.replace(
        cfg.eval.train, precision="bf16")), dynamics=dataclasses.replace(cfg.dynamics, train=dataclasses.replace(
            cfg.dynamics.train, precision="bf16")))
    doc = run_ladder(cs, half, out, data_root=root, runtime=rt())
    assert len(calls) == 1 + 1  # yoco's cell and the source's: nothing of the fp32 ladder reused
    after = {p.name for p in (out / "cells").iterdir()} | {p.name for p in (out / "cache").iterdir()}
    assert before < after and len(after - before) >= 4  # dynamics, score table, two cells
    (dyn,) = [load_dynamics(p) for p in (out / "cache").glob("dynamics-*") if p.name not in before]
    assert dyn.config["train"]["precision"] == "bf16"
    cells = [json.loads((out / "cells" / n).read_text()) for n in after - before if n.endswith(".json")]
    assert cells and all(c["config"]["train"]["precision"] == "bf16" for c in cells)
    assert doc["config"]["eval"]["train"]["precision"] == "bf16"
    assert "evaluation in bf16 (protocol fp32)" in (out / "results.md").read_text()
    from yoco.report import ladder_title

    assert ladder_title(doc["config"]).endswith("(NOT the full protocol) [averaged-scores cells, bf16]")
    assert ladder_title({**doc["config"], "score_runs": "separate"}).endswith("[bf16]")


def test_a_method_added_after_a_folder_was_made_joins_it(tmp_path, monkeypatch):
    """A score and a selector registered after a ladder folder exists (through the public registration, as a user's
    own file would) are added to its score tables as new columns; nothing made before is made again."""
    from yoco.scores import SCORES, register_score
    from yoco.scoretable import load_table
    from yoco.selectors import SELECTORS, register_selector

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=("yoco", "random_balance"), ipcs=(1,), repeat=1, score_runs="separate")
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}

    @register_score("spread", harder="high")
    def spread(dyn, score_cfg):
        """How much the log-probability of the label moves over the run."""
        y = dyn.labels.view(1, 1, -1, 1).expand(dyn.runs, dyn.epochs, -1, 1)
        return dyn.log_probs.float().gather(-1, y).squeeze(-1).std(1).double()

    def centre(dyn):
        return dyn.embeddings.mean(0)

    @register_selector("nearest", prepare=centre)
    def nearest(members, budget, ctx):
        """The images nearest the embeddings' mean."""
        d = (ctx.features[members] - ctx.features.mean(0)).norm(dim=1)
        return members[torch.sort(d, stable=True).indices[:budget]]

    try:
        calls = _count_evals(monkeypatch)
        more = dataclasses.replace(cfg, rules=("yoco", "random_balance", "spread", "nearest"))
        doc = run_ladder(cs, more, out, data_root=root, runtime=rt())
        assert len(calls) == 2 * 2  # the two new rules, one set per dynamics run each; nothing else again
        assert all((out / "cells" / n).stat().st_mtime_ns == t for n, t in before.items())
        rows = {r["rule"]: r for r in doc["rows"]}
        assert rows["spread_hard_imbalance"]["last_mean"] is not None and rows["nearest_imbalance"]["runs"] == [0, 1]
        for path in (out / "cache").glob("scores-run*"):
            table = load_table(path)
            assert "spread" in table.scores and "nearest" in table.features
            assert table.config["methods"]["scores"]["spread"] == 1 and table.config["methods"]["scores"]["lbpe"] == 1
    finally:
        SCORES.remove("spread")
        SELECTORS.remove("nearest")


@pytest.mark.parametrize(("rule", "option"), [("tdds", "tdds_epochs"), ("dual", "dual_epochs")])
def test_a_rule_reading_more_epochs_than_the_dynamics_record_stops_the_ladder_before_them(tmp_path, monkeypatch,
                                                                                          rule, option):
    """TDDS and DUAL read the first 30 epochs: with 6 recorded, the ladder is refused at once, naming the option
    that fits, instead of failing every cell after the dynamics."""
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, rules=(rule,), ipcs=(1,), repeat=1, reference=False)
    monkeypatch.setattr("yoco.ladder.run.record_dynamics", lambda *a, **k: pytest.fail("dynamics were recorded"))
    with pytest.raises(YocoError, match=f"reads the first 30 epochs.*record 6.*--option {option}=N with N <= 6"):
        run_ladder(cs, cfg, tmp_path / "run", data_root=root, runtime=rt())
    assert not (tmp_path / "run" / "cache").exists()
    fits = dataclasses.replace(cfg, options={option: 6, option.replace("epochs", "window"): 3})
    monkeypatch.undo()
    assert run_ladder(cs, fits, tmp_path / "fits", data_root=root, runtime=rt())["failed_cells"] == 0


@pytest.mark.parametrize(("flags", "said"), [
    (["--condense", "ipc=2", "--ipcs", "1,2"], "target IPCs [2] must be below the source IPC 2"),
    (["--condense", "ipc=10", "--rules", "mdc_prefix"], "is not an MDC set"),
    (["--condense", "ipc=10", "--rules", "tdds", "--dynamics-epochs", "4"], "reads the first 30 epochs"),
    (["--condense", "ipc=10", "--dynamics-epochs", "20", "--lbpe-epochs", "75"], "shorter than --lbpe-epochs 75"),
    (["--condense", "method=mdc,ipc=2", "--rules", "mdc_prefix", "--ipcs", "2"], "must be below the source IPC 2"),
])
def test_a_ladder_that_cannot_run_on_the_set_it_would_condense_is_refused_before_condensing(tmp_path, capsys, flags,
                                                                                           said):
    """``ladder --condense``: what the ladder checks of its source (IPCs, rules that cannot cut the set, windows longer
    than the dynamics) is checked on the set the spec will make, before any data is read or any condensation runs;
    the data root does not even exist, and the output folder stays empty."""
    out = tmp_path / "lad"
    code = cli.main(["ladder", "--dataset", "mnist", "--data-root", str(tmp_path / "absent"), "--device", "cpu",
                     "--quiet", *flags, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and said in err and "absent" not in err
    assert not (out / "condensed.safetensors").exists() and not any(out.glob("**/*.safetensors"))


def test_a_ladder_that_cannot_run_on_a_given_set_is_refused_by_its_name_before_any_data_is_read(tmp_path, capsys):
    cs = tiny_condensed(ipc=2, num_classes=10)
    save(cs, tmp_path / "two.safetensors")
    code = cli.main(["ladder", str(tmp_path / "two.safetensors"), "--dataset", "mnist", "--data-root",
                     str(tmp_path / "absent"), "--ipcs", "1,2", "--device", "cpu", "--quiet", "--out", str(tmp_path / "l")])
    err = capsys.readouterr().err
    assert code == 2 and "absent" not in err
    assert f"{tmp_path / 'two.safetensors'}: target IPCs [2] must be below the source IPC 2" in err


def test_a_stopped_condense_ladder_resumes_its_condensation_and_never_condenses_twice(tmp_path, monkeypatch, capsys,
                                                                                      caplog):
    """``ladder --condense``, run again into its folder: a condensation stopped part-way continues from its checkpoint
    (the same set, bit for bit on the CPU, as one uninterrupted run), a finished set is reused, never condensed again
    (its cells are reused too), and a set condensed with other settings is refused by name, nothing overwritten."""
    from yoco import condense as condense_pkg
    from yoco.condense import condense, config_from_spec, resolve_config

    real = tiny_real(n_per_class=8, num_classes=10, size=16)
    write_mnist_like(tmp_path / "data", real)
    spec = "ipc=2,preset=cpu-quick,iterations=2,inner=1,width=8,checkpoint_every=1"
    ladder = ["ladder", "--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--ipcs", "1", "--rules",
              "yoco", "--epochs", "2", "--width", "8", "--dynamics-epochs", "4", "--dynamics-runs", "1",
              "--lbpe-epochs", "3", "--lbpe-top-k", "2", "--device", "cpu", "--quiet"]
    loaded = load_dataset("mnist", root=tmp_path / "data")
    whole = condense(loaded, config_from_spec("mnist", {k: v for k, v in (i.split("=") for i in spec.split(","))},
                                              resolve_config), tmp_path / "whole.safetensors", runtime=rt())
    out = tmp_path / "lad"
    half = spec.replace("iterations=2", "iterations=1")
    condense(loaded, config_from_spec("mnist", {k: v for k, v in (i.split("=") for i in half.split(","))},
                                      resolve_config), out / "condensed.safetensors", runtime=rt(),
             keep_checkpoint=True)
    (out / "condensed.safetensors").unlink()  # stopped after iteration 1 of 2: only the checkpoint is left
    caplog.set_level(logging.INFO, logger="yoco.condense.idc")
    assert cli.main([*ladder, "--condense", spec, "--out", str(out)]) == 0
    assert "from iteration 1" in caplog.text  # continued, not begun again
    made = load(out / "condensed.safetensors")
    assert torch.equal(made.images, whole.images) and made.meta.extra["matching_loss"] == whole.meta.extra[
        "matching_loss"]
    first = (out / "results.json").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("condensed again")

    monkeypatch.setattr(condense_pkg.spec, "condense", refuse)
    monkeypatch.setattr(evaluate, "evaluate_condensed", refuse)
    assert cli.main([*ladder, "--condense", spec, "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["rows"] == json.loads(first)["rows"]
    capsys.readouterr()
    assert cli.main([*ladder, "--condense", spec.replace("iterations=2", "iterations=3"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "condensed with other settings" in err and "iterations: 2 there, 3 asked" in err
    assert torch.equal(load(out / "condensed.safetensors").images, whole.images)


def test_a_cell_is_evaluated_again_when_its_set_was_remade_with_other_content(tmp_path, monkeypatch):
    """Keys name settings, not contents: a pruned set made again under the same key with other images (its scores
    re-recorded on another machine, whose float rounding picks other images) must not inherit the old set's
    result. The cell's recorded digest is checked against the set on disk: only that set's cell runs again."""
    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, ipcs=(1,), rules=("yoco", "random_balance"), repeat=1)
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    calls = _count_evals(monkeypatch)
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert calls == []  # everything reused
    path = next((out / "pruned").glob("lbpe_easy_balance-ipc1-*.safetensors"))
    remade = load(path)
    remade.images[0] = remade.images[0].flip(-1)  # other content, the same key inside
    from yoco.data.condensed import save

    save(remade, path)
    doc = run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert len(calls) == 1
    row = next(r for r in doc["rows"] if r["rule"] == "lbpe_easy_balance" and r["ipc"] == 1)
    cell = json.loads(next((out / "cells").glob("lbpe_easy_balance-ipc1-*.json")).read_text())
    from yoco.data.condensed import content_sha256

    assert cell["sha256"] == content_sha256(remade) and row["last_mean"] == pytest.approx(cell["last"])


def test_dynamics_recorded_again_with_other_contents_remake_what_their_scores_chose(tmp_path, monkeypatch):
    """A folder committed without its score tables, resumed where the dynamics come out otherwise (another machine):
    the tables are made from the new record, every set a score chose is made again from them (it records the
    dynamics it was chosen by), and only those sets' cells run again; the random subsets, which read no score, stay."""
    from yoco.dynamics import load_dynamics, save_dynamics

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, ipcs=(1,), rules=("yoco", "random_balance"), repeat=1)
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    [dyn_path] = (out / "cache").glob("dynamics-*.safetensors")
    dyn = load_dynamics(dyn_path)
    old_digest = dyn.digest()
    assert load(next((out / "pruned").glob("lbpe_easy_balance-*"))).meta.extra["dynamics_sha256"] == old_digest
    other = dataclasses.replace(dyn, log_probs=dyn.log_probs.flip(1))  # the same settings, another record
    save_dynamics(other, dyn_path)
    for table in (out / "cache").glob("scores-*.safetensors"):
        table.unlink()
    calls = _count_evals(monkeypatch)
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert len(calls) == 1  # the YOCO set's cell; the random subset's is reused
    remade = load(next((out / "pruned").glob("lbpe_easy_balance-*")))
    assert remade.meta.extra["dynamics_sha256"] == other.digest() != old_digest
    assert "dynamics_sha256" not in load(next((out / "pruned").glob("random_balance-*"))).meta.extra


def test_a_folder_made_before_sets_and_tables_recorded_their_dynamics_resumes_whole(tmp_path, monkeypatch):
    """Score tables and pruned sets written before they recorded their dynamics' digest are taken as they are: the
    folder resumes with every cell reused, nothing made again."""
    from yoco.ladder import run as ladder_run

    cs, cfg, root = _setup(tmp_path)
    cfg = dataclasses.replace(cfg, ipcs=(1,), rules=("yoco", "random_balance"), repeat=1)
    made_pruned, made_table = ladder_run._pruned, ladder_run.build_table

    def old_pruned(*args):
        pruned = made_pruned(*args)
        pruned.meta.extra.pop("dynamics_sha256", None)
        return pruned

    def old_table(*args, **kwargs):
        table = made_table(*args, **kwargs)
        table.config.pop("dynamics_sha256", None)
        return table

    monkeypatch.setattr(ladder_run, "_pruned", old_pruned)
    monkeypatch.setattr(ladder_run, "build_table", old_table)
    out = tmp_path / "run"
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert all("dynamics_sha256" not in load(p).meta.extra for p in (out / "pruned").glob("*.safetensors"))
    monkeypatch.undo()
    calls = _count_evals(monkeypatch)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    assert calls == [] and {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == stamps


def test_every_line_of_an_all_rules_plot_can_be_told_apart(tmp_path, monkeypatch):
    """Fourteen rules (the all-rules ladder) outrun the ten colours of matplotlib's cycle: no two lines of the plot
    may share colour, marker and dashes, YOCO's rule stays black, and the first ten others keep the cycle's colours
    with round markers and solid lines (a plot of the default nine rules looks as before)."""
    import matplotlib.colors
    import matplotlib.figure

    from yoco.report import YOCO_RULE, save_ladder_plot

    rules = [YOCO_RULE, "tdds_hard_imbalance", "dual_imbalance", "kcenter_balance", "herding_balance",
             "moderate_imbalance", "random_balance", "random_imbalance", "ssp_imbalance", "ccs_imbalance",
             "forgetting_hard_imbalance", "el2n_hard_imbalance", "aum_hard_imbalance", "entropy_hard_imbalance"]
    rows = [{"rule": r, "ipc": k, "last_mean": 0.5 + 0.01 * i, "last_std": 0.01} for i, r in enumerate(rules)
            for k in (1, 2, 5)] + [{"rule": "source", "ipc": None, "last_mean": 0.85, "last_std": 0.0}]
    figures = []
    saving = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: (figures.append(fig),
                                                                                     saving(fig, *a, **k)))
    save_ladder_plot(rows, tmp_path / "ladder.png")
    lines = [ln for ln in figures[0].axes[0].get_lines() if ln.get_label() != "unpruned source"]
    assert len(lines) == len(rules)
    looks = [(matplotlib.colors.to_hex(ln.get_color()), ln.get_marker(), ln.get_linestyle()) for ln in lines]
    assert len(set(looks)) == len(rules), looks
    assert looks[0][0] == "#000000"
    cycle = [matplotlib.colors.to_hex(f"C{i}") for i in range(10)]
    assert [c for c, _, _ in looks[1:11]] == cycle
    assert {(m, s) for _, m, s in looks[1:11]} == {("o", "-")}
