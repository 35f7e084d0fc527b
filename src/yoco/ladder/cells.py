"""Evaluation cells and where they run: in this process, in local worker processes, or on a Ray cluster.

A :class:`Cell` is one training run of one pruned set: plain data (paths, names, seeds, the evaluation config),
so a worker process or a Ray task can run it. :func:`run_cell` never raises: a failure is recorded in the
cell's result file and the rest of the ladder carries on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from yoco.errors import YocoError
from yoco.files import write_json
from yoco.ladder.cache import read_json
from yoco.runtime import Runtime


@dataclass(frozen=True)
class Cell:
    """One evaluation run: ``rule`` at ``ipc`` (None: the unpruned source), trained with ``seed``."""

    rule: str
    ipc: int | None
    seed: int
    set_path: str
    dataset: str
    data_root: str | None
    eval: dict[str, Any]
    key: str
    out: str
    subset: int | None = None
    runtime: Runtime = field(default_factory=Runtime)  # resolved by the ladder; no progress bars of its own
    threads: int = 0
    run: int | None = None
    test_sha256: str = ""
    set_sha256: str = ""  # the content digest of the set at set_path when the ladder planned the cell

    @property
    def name(self) -> str:
        if self.ipc is None:
            return f"source-seed{self.seed}"
        run = f"-run{self.run}" if self.run is not None else ""
        sub = f"-sub{self.subset}" if self.subset is not None else ""
        return f"{self.rule}-ipc{self.ipc}{run}{sub}-seed{self.seed}"

    def done(self) -> bool:
        """Finished with this cell's key (a changed setting, a failure or a truncated file reruns it)."""
        old = self.recorded()
        return old is not None and old.get("status") == "ok"

    def recorded(self) -> dict[str, Any] | None:
        """The cell's result file (ok or failed) when it was written with this cell's key and reads as a result
        (accuracies are numbers in [0, 1], an error is text) and, when the plan knows it, evaluated the set that is at
        ``set_path`` now (keys name settings, not contents, so a set remade from other dynamics is caught by its
        digest), else None; what it says of its rule, IPC, seed, subset and run is this cell's (its key says so)."""
        old = read_json(Path(self.out))
        if old is None or old.get("key") != self.key or not _well_formed(old):
            return None
        if self.set_sha256 and old.get("status") == "ok" and old.get("sha256") != self.set_sha256:
            return None  # another set under the same key (e.g. remade from re-recorded dynamics): evaluate it again
        return {**old, "rule": self.rule, "ipc": self.ipc, "seed": self.seed, "subset": self.subset, "run": self.run}

    def result(self) -> dict[str, Any]:
        """The cell's result file, checked against its key; a missing or stale file reads as failed."""
        old = self.recorded()
        if old is None:
            return {"status": "failed", "error": "no result (the cell did not run)", "rule": self.rule,
                    "ipc": self.ipc, "seed": self.seed, "subset": self.subset, "run": self.run, "key": self.key}
        return old


def _well_formed(result: dict[str, Any]) -> bool:
    """Whether a cell file's result has what the reports read, of the right kinds."""
    if result.get("status") == "failed":
        return isinstance(result.get("error"), str)
    return result.get("status") == "ok" and all(
        isinstance(result.get(k), (int, float)) and not isinstance(result.get(k), bool) and 0 <= result[k] <= 1
        for k in ("last", "best"))


@lru_cache(maxsize=2)
def _dataset(name: str, root: str | None):
    from yoco.data.datasets import load_dataset

    return load_dataset(name, root=root)


def _tested_on(cell: Cell):
    """The cell's dataset, refused when its test set is not the one the cell was planned (and keyed) with."""
    real = _dataset(cell.dataset, cell.data_root)
    if cell.test_sha256 and real.digest("test") != cell.test_sha256:
        raise YocoError(f"{real.root}: the {real.name} test set changed since the ladder planned this cell (sha256 "
                        f"{real.digest('test')[:12]}, planned {cell.test_sha256[:12]}); rerun the ladder")
    return real


def run_cell(cell: Cell) -> dict[str, Any]:
    """Evaluate one pruned set with one seed and write its JSON; never raises (errors are recorded)."""
    from yoco.data.condensed import load
    from yoco.evaluate import EvalConfig, evaluate_condensed

    if cell.threads:
        torch.set_num_threads(cell.threads)
    t0 = time.perf_counter()
    try:
        cs = load(cell.set_path)
        real = _tested_on(cell)
        cfg = EvalConfig(**{**cell.eval, "repeat": 1, "seed": cell.seed})
        res = evaluate_condensed(cs, real, cfg, runtime=cell.runtime.but(progress=False))
    except Exception as exc:  # noqa: BLE001 - a failed cell is reported in the table, the ladder goes on
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        result.update({"rule": cell.rule, "ipc": cell.ipc, "seed": cell.seed, "subset": cell.subset, "run": cell.run,
                       "key": cell.key, "seconds": time.perf_counter() - t0})
        write_json(cell.out, result)
        return result
    return write_result(cell, res, time.perf_counter() - t0)


def write_result(cell: Cell, res: dict[str, Any], seconds: float, **extra: Any) -> dict[str, Any]:
    """Write a finished cell's JSON from its evaluation ``res`` (one run, :func:`yoco.evaluate.evaluate_sets`'s
    layout) and return it."""
    result = {"status": "ok", "last": res["last_mean"], "best": res["best_mean"], "curve": res["runs"][0]["curve"],
              "sha256": res["sha256"], "config": res["config"], "rule": cell.rule, "ipc": cell.ipc, "seed": cell.seed,
              "subset": cell.subset, "run": cell.run, "key": cell.key, "seconds": seconds,
              **({"test_sha256": cell.test_sha256} if cell.test_sha256 else {}), "digests": res.get("digests"),
              "provenance": res.get("provenance"), **extra}
    write_json(cell.out, result)
    return result


def run_group(cells: list[Cell]) -> list[dict[str, Any]]:
    """Evaluate cells of one target IPC and evaluation config as one batched computation (their networks train
    together on a GPU) and write each cell's JSON; if the group fails, each cell runs on its own instead, so
    one bad cell still cannot take the others down."""
    from yoco.data.condensed import load
    from yoco.evaluate import EvalConfig, evaluate_sets

    first = cells[0]
    t0 = time.perf_counter()
    try:
        sets = [load(c.set_path) for c in cells]
        real = _tested_on(first)
        results = evaluate_sets(sets, real, EvalConfig(**{**first.eval, "repeat": 1}), seeds=[c.seed for c in cells],
                                runtime=first.runtime.but(progress=False, batched=True))
    except Exception:  # noqa: BLE001 - fall back to one by one, where each failure is recorded on its own cell
        return [run_cell(c) for c in cells]
    seconds = (time.perf_counter() - t0) / len(cells)
    return [write_result(cell, res, seconds, batched=len(cells)) for cell, res in zip(cells, results, strict=True)]


def groups(cells: list[Cell]) -> list[list[Cell]]:
    """Cells that can train together: the same target IPC (so sets of one size), evaluation config and runtime."""
    by: dict[tuple, list[Cell]] = {}
    for c in cells:
        by.setdefault((c.ipc, c.dataset, c.test_sha256, c.runtime, json.dumps(c.eval, sort_keys=True, default=str)),
                      []).append(c)
    return list(by.values())


def execute(cells: list[Cell], runtime: Runtime, ray_address: str | None = None, batch_cells: bool = False) -> None:
    """Run ``cells`` here (the runtime's ``workers`` 1), in ``workers`` local processes, or on the Ray cluster at
    ``ray_address``; a progress bar when the runtime has them.

    Worker processes and Ray tasks get one thread each (local workers: the cores shared out), so the same seeds
    give the same numbers whichever way the cells run. With ``batch_cells`` (in this process) the cells of one
    target IPC train as one batched computation (:func:`run_group`), which keeps a GPU busy.
    """
    from yoco.progress import tqdm

    workers = runtime.workers
    bar = tqdm(total=len(cells), desc="ladder", disable=not runtime.progress or not cells, dynamic_ncols=True)
    if batch_cells and not ray_address and workers == 1:
        for group in groups(cells):
            run_group(group)
            bar.update(len(group))
    elif ray_address:
        for _ in _ray_map(cells, ray_address):
            bar.update()
    elif workers == 1:
        for c in cells:
            run_cell(c)
            bar.update()
    else:
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=exit_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(run_cell, dataclasses.replace(c, threads=threads)) for c in cells]
            for _ in as_completed(futures):
                bar.update()
    bar.close()


def exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """Worker initializer: end this process as soon as ``parent`` is gone.

    A ladder stopped from outside (``kill``, ``timeout``) ends its own process only; without this, each worker
    would finish its current cell, minutes of work nobody reads, before noticing its queue is closed. A daemon
    thread polls the parent's pid (a child outliving its parent is re-parented) and exits at once.
    """
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _ray_map(cells: list[Cell], address: str):
    try:
        import ray
    except ImportError:
        raise YocoError("--ray needs the ray package: pip install 'yoco[ray]'") from None
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(run_cell)
    pending = [remote.remote(dataclasses.replace(c, threads=1)) for c in cells]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
