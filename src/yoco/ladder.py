"""The size ladder: one condensed set in, a family of smaller ones out, each evaluated, for every rule.

Stages: dynamics (once) -> scores (once) -> for every (rule, target IPC): prune -> evaluate ``repeat`` times.
Every stage's output is stored under a key that hashes its inputs and config, so rerunning an interrupted or
changed ladder redoes only what is missing or affected. Evaluations are independent cells that run in this
process, in local worker processes (``workers``), or on a Ray cluster (``ray``); a failing cell is recorded
with its error and the rest carry on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoco import protocol
from yoco.data.condensed import CondensedSet, content_sha256, load, save
from yoco.dynamics import DynamicsConfig, load_dynamics, record_dynamics, save_dynamics, ssp_embeddings
from yoco.errors import YocoError
from yoco.evaluate import EvalConfig, check_compatible, evaluate_condensed
from yoco.io import write_json
from yoco.protocol import lbpe_window
from yoco.prune import prune_condensed
from yoco.scores import compute_scores
from yoco.scoretable import read_scores_csv, write_scores_csv
from yoco.select import parse_rule

log = logging.getLogger(__name__)

DEFAULT_RULES = ("yoco", "random_balance", "forgetting", "el2n", "aum", "entropy", "ssp", "ccs")


@dataclass
class LadderConfig:
    """Everything that decides a ladder's numbers (serialised into every result file)."""

    dataset: str
    ipcs: tuple[int, ...] = (1, 2, 5)
    rules: tuple[str, ...] = DEFAULT_RULES
    repeat: int = 3
    seed: int = 0
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lbpe_epochs: int | None = None
    lbpe_top_k: int | None = None
    el2n_epochs: int = 10
    hard_cut: float | None = None
    reference: bool = True

    def __post_init__(self) -> None:
        # every cell is one evaluation run seeded from the ladder's own seed range: the saved eval config says so
        self.eval = dataclasses.replace(self.eval, repeat=self.repeat, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fingerprint(cs: CondensedSet) -> str:
    """Short content hash of a condensed set (images, labels, metadata): the prefix of its content sha256."""
    return content_sha256(cs)[:16]


def key(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts: the cache key of a stage."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_name(rule: str, ipc: int | None, seed: int) -> str:
    return f"{rule}-ipc{ipc}-seed{seed}" if ipc is not None else f"source-seed{seed}"


@lru_cache(maxsize=2)
def _dataset(name: str, root: str | None):
    from yoco.data.datasets import load_dataset

    return load_dataset(name, root=root)


def run_cell(task: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one pruned set with one seed and write its JSON; never raises (errors are recorded).

    Top-level and self-contained (paths and plain dicts in, a dict out) so a worker process or a Ray task
    can run it.
    """
    out = Path(task["out"])
    if task.get("threads"):
        torch.set_num_threads(task["threads"])
    t0 = time.perf_counter()
    try:
        cs = load(task["set"])
        real = _dataset(task["dataset"], task.get("data_root"))
        cfg = EvalConfig(**{**task["eval"], "repeat": 1, "seed": task["seed"]})
        res = evaluate_condensed(cs, real, cfg, progress=False)
        result = {"status": "ok", "last": res["last_mean"], "best": res["best_mean"], "curve": res["runs"][0]["curve"],
                  "config": res["config"]}
    except Exception as exc:  # noqa: BLE001 - a failed cell is reported in the table, the ladder goes on
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    result.update({"rule": task["rule"], "ipc": task["ipc"], "seed": task["seed"], "key": task["key"],
                   "seconds": time.perf_counter() - t0})
    write_json(out, result)
    return result


def run_ladder(
    cs: CondensedSet,
    cfg: LadderConfig,
    out_dir: str | Path,
    *,
    data_root: str | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    force: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the whole ladder into ``out_dir`` and write results.{csv,json,md} and ladder.png."""
    from yoco.report import write_ladder_reports

    out = Path(out_dir)
    source_fp = fingerprint(cs)
    _claim(out, source_fp, cfg, force)
    real = _dataset(cfg.dataset, data_root)
    check_compatible(cs, real)
    for rule in cfg.rules:
        parse_rule(rule)
    bad = [k for k in cfg.ipcs if k < 1 or (cs.meta.ipc and k >= cs.meta.ipc)]
    if bad:
        raise YocoError(f"target IPCs {bad} must be at least 1 and below the source IPC {cs.meta.ipc}")

    dyn_cfg = cfg.dynamics
    dyn_path = out / "cache" / f"dynamics-{key(source_fp, dyn_cfg.to_dict())}.safetensors"
    if dyn_path.exists():
        dyn = load_dynamics(dyn_path)
    else:
        log.info("recording training dynamics (%d runs x %d epochs)", dyn_cfg.runs, dyn_cfg.epochs)
        dyn = record_dynamics(cs, dyn_cfg, device=device, progress=progress)
        save_dynamics(dyn, dyn_path)

    e_default, k_default = lbpe_window(cfg.dataset, cs.meta.method)
    score_kw = {"lbpe_epochs": cfg.lbpe_epochs or e_default, "lbpe_top_k": cfg.lbpe_top_k or k_default,
                "el2n_epochs": cfg.el2n_epochs, "seed": cfg.seed}
    score_key = key(dyn_path.name, score_kw)
    score_path = out / "cache" / f"scores-{score_key}.csv"
    if score_path.exists():
        scores, _, _ = read_scores_csv(score_path)
    else:
        scores = compute_scores(dyn, **score_kw)
        write_scores_csv(score_path, scores, dyn.labels, {"dynamics": dyn_path.name, **score_kw})
    embeddings = ssp_embeddings(dyn)

    tasks = []
    eval_cfg = {**cfg.eval.to_dict(), "device": device}
    if cfg.reference:
        src_path = out / "cache" / f"source-{source_fp}.safetensors"
        if not src_path.exists():
            save(cs, src_path)
        tasks += _cells(out, "source", None, src_path, key(source_fp), cfg, eval_cfg, data_root)
    for rule in cfg.rules:
        name = parse_rule(rule).name
        for ipc in cfg.ipcs:
            pkey = key(score_key, name, ipc, cfg.hard_cut, cfg.seed)
            ppath = out / "pruned" / f"{name}-ipc{ipc}.safetensors"
            rec_path = ppath.with_suffix(".json")
            if not (rec_path.exists() and json.loads(rec_path.read_text()).get("key") == pkey and ppath.exists()):
                pruned, record = prune_condensed(cs, scores, name, ipc, embeddings=embeddings, hard_cut=cfg.hard_cut,
                                                 seed=cfg.seed)
                save(pruned, ppath)
                write_json(rec_path, {**record, "key": pkey, "config": cfg.to_dict()})
            tasks += _cells(out, name, ipc, ppath, pkey, cfg, eval_cfg, data_root)

    todo = [t for t in tasks if not _done(t)]
    log.info("%d evaluation cells, %d already done, %d to run", len(tasks), len(tasks) - len(todo), len(todo))
    _execute(todo, workers, ray_address, progress)
    cells = [json.loads(Path(t["out"]).read_text()) for t in tasks]
    return write_ladder_reports(out, cells, {**cfg.to_dict(), "source": cs.source, "source_fingerprint": source_fp})


def _cells(out: Path, rule: str, ipc: int | None, set_path: Path, set_key: str, cfg: LadderConfig,
           eval_cfg: dict[str, Any], data_root: str | None) -> list[dict[str, Any]]:
    return [
        {"rule": rule, "ipc": ipc, "seed": s, "set": str(set_path), "dataset": cfg.dataset, "data_root": data_root,
         "eval": eval_cfg, "key": key(set_key, eval_cfg, s),
         "out": str(out / "cells" / f"{cell_name(rule, ipc, s)}.json")}
        for s in range(cfg.seed, cfg.seed + cfg.repeat)
    ]


def _done(task: dict[str, Any]) -> bool:
    """A cell is done when its file exists, finished, with the same key (a changed config reruns it)."""
    path = Path(task["out"])
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    return old.get("key") == task["key"] and old.get("status") == "ok"


def _execute(tasks: list[dict[str, Any]], workers: int, ray_address: str | None, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc="ladder", disable=not progress or not tasks, dynamic_ncols=True)
    if ray_address:
        for _ in _ray_map(tasks, ray_address):
            bar.update()
    elif workers <= 1:
        for t in tasks:
            run_cell(t)
            bar.update()
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(run_cell, {**t, "threads": threads}) for t in tasks]
            for _ in as_completed(futures):
                bar.update()
    bar.close()


def _ray_map(tasks: list[dict[str, Any]], address: str):
    try:
        import ray
    except ImportError:
        raise YocoError("--ray needs the ray package: pip install 'yoco[ray]'") from None
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(run_cell)
    # one thread per task, as local workers get: results then match the local pool for the same seeds
    pending = [remote.remote({**t, "threads": 1}) for t in tasks]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def _claim(out: Path, source_fp: str, cfg: LadderConfig, force: bool) -> None:
    """Refuse a folder that holds a ladder of another source set or dataset, unless ``force``."""
    manifest = out / "ladder.json"
    if manifest.exists() and not force:
        try:
            old = json.loads(manifest.read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("source_fingerprint") != source_fp or old.get("dataset") != cfg.dataset:
            raise YocoError(f"{out}: holds a ladder of another condensed set or dataset; use --force to reuse it")
    write_json(manifest, {"source_fingerprint": source_fp, "dataset": cfg.dataset, "config": cfg.to_dict()})


def summarize_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group cell results by (rule, ipc): each repeat, mean and std (np.std) of last and best accuracy."""
    groups: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["rule"], c["ipc"]), []).append(c)
    rows = []
    for (rule, ipc), cs in groups.items():
        ok = [c for c in cs if c["status"] == "ok"]
        last = np.array([c["last"] for c in ok]) if ok else np.array([])
        best = np.array([c["best"] for c in ok]) if ok else np.array([])
        rows.append({
            "rule": rule, "ipc": ipc, "repeats": [c["last"] for c in ok], "seeds": [c["seed"] for c in ok],
            "last_mean": float(last.mean()) if ok else None, "last_std": float(last.std()) if ok else None,
            "best_mean": float(best.mean()) if ok else None, "best_std": float(best.std()) if ok else None,
            "failed": [c["error"] for c in cs if c["status"] != "ok"],
        })
    return rows


def quick(cfg: LadderConfig, width: int = 64, dyn_epochs: int = 150, eval_epochs: int = 300) -> LadderConfig:
    """A first look on a CPU: narrower networks and far fewer epochs (numbers are NOT the protocol's)."""
    return dataclasses.replace(
        cfg,
        dynamics=dataclasses.replace(cfg.dynamics, width=width, epochs=dyn_epochs, runs=2),
        eval=dataclasses.replace(cfg.eval, width=width, epochs=eval_epochs, test_points=2),
        lbpe_epochs=min(cfg.lbpe_epochs or dyn_epochs, dyn_epochs // 2),
        lbpe_top_k=min(cfg.lbpe_top_k or 10, 10),
    )


PRESETS = protocol.PAPER_LADDERS


def preset_config(name: str, **overrides: Any) -> LadderConfig:
    """The ladder config of a paper experiment (:data:`yoco.protocol.PAPER_LADDERS`), with overrides."""
    if name not in PRESETS:
        raise YocoError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    p = PRESETS[name]
    e, k = protocol.lbpe_window(p["dataset"], p["method"])
    return LadderConfig(dataset=p["dataset"], ipcs=p["ipcs"], lbpe_epochs=e, lbpe_top_k=k, **overrides)


DEMO_SET = Path(__file__).parent / "assets" / "fashion-mnist-idc-ipc10.safetensors"


def demo_config() -> LadderConfig:
    """The README's main job: Fashion-MNIST IPC 10 -> 1, 2, 5 with every rule, sized for ~15 min on 2 cores.

    The shipped set decodes to 400 images, so the demo's networks are narrower (width 32) than ``--quick``'s.
    """
    return quick(LadderConfig(dataset="fashion-mnist", ipcs=(1, 2, 5), repeat=2), width=32)


def demo(out: str | Path, *, data_root: str | None = None, workers: int = 1, device: str = "auto",
         progress: bool = True) -> dict[str, Any]:
    """Run the demo ladder on the shipped condensed Fashion-MNIST set (random real images if it is absent)."""
    if DEMO_SET.exists():
        cs = load(DEMO_SET)
    else:
        from yoco.data.subset import random_real_subset

        log.warning("shipped condensed set %s not found; using 10 random real images per class", DEMO_SET)
        cs = random_real_subset(_dataset("fashion-mnist", data_root), 10, seed=0)
    return run_ladder(cs, demo_config(), out, data_root=data_root, workers=workers, device=device, progress=progress)
